package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// runCheckpoint appends one signed checkpoint of the ledger head to a file kept outside the database.
func runCheckpoint(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("checkpoint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := dbFlag(fs)
	out := fs.String("out", "", "append the checkpoint to this file (default: beside an embedded database, DB.checkpoints; required with PostgreSQL)")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("checkpoint takes no arguments, got %q", fs.Arg(0))
	}
	s, err := openExisting(ctx, *db)
	if err != nil {
		return err
	}
	defer s.Close()
	if ok, err := s.MigrationsCurrent(ctx); err != nil {
		return err
	} else if !ok {
		return errors.New("the database schema is not current: run 'tally migrate' first")
	}
	path, err := checkpointPath(s, *out)
	if err != nil {
		return err
	}
	key, err := existingLedgerKey(s)
	if err != nil {
		return err
	}
	cp, err := ledger.TakeCheckpoint(ctx, s.Store, key, time.Now(), false)
	if err != nil {
		return checkpointErr(err)
	}
	if err := appendCheckpoint(path, cp); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "checkpoint %d: %d accounts, %d transactions, through transaction %d, root %s; appended to %s\n",
		cp.No, cp.Accounts, cp.Transactions, cp.MaxSeq, cp.Root, path)
	return nil
}

// checkpointErr gives a breach found while checkpointing the verify exit status.
func checkpointErr(err error) error {
	var breach *ledger.Breach
	if errors.As(err, &breach) {
		return &exitError{code: 3, err: fmt.Errorf("checkpoint refused, the ledger was altered: %w", breach)}
	}
	return err
}

// checkpointPath is the checkpoint file: the one given, else beside an embedded database.
func checkpointPath(s *openedStore, given string) (string, error) {
	if given != "" {
		return given, nil
	}
	if s.kind == "sqlite" {
		return s.sqlitePath + ".checkpoints", nil
	}
	return "", errors.New("name the checkpoint file with --out (it must live outside the database)")
}

// appendCheckpoint appends cp as one JSON line and syncs the file, creating it (mode 0600) if needed.
// One write of one line with O_APPEND keeps concurrent writers' lines whole.
func appendCheckpoint(path string, cp tally.Checkpoint) error {
	line, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("checkpoint file: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("checkpoint file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("checkpoint file: %w", err)
	}
	return f.Close()
}

// readCheckpoints reads a checkpoint file. A line that is not a checkpoint is an error naming it: the
// file is evidence, and a damaged line must not be skipped silently.
func readCheckpoints(path string) ([]tally.Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint file: %w", err)
	}
	var cps []tally.Checkpoint
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var cp tally.Checkpoint
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cp); err != nil || cp.No <= 0 || cp.Signature == "" {
			return nil, fmt.Errorf("checkpoint file %s, line %d: not a checkpoint", path, n)
		}
		cps = append(cps, cp)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("checkpoint file %s: %w", path, err)
	}
	if len(cps) == 0 {
		return nil, fmt.Errorf("checkpoint file %s holds no checkpoint", path)
	}
	return cps, nil
}

// checkpointLoop takes a checkpoint every interval while the ledger changes, appends it to path and
// logs it, so that the log holds a second copy outside the database.
func checkpointLoop(ctx context.Context, store tally.Store, key *tally.LedgerKey, path string, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		keepCheckpoint(ctx, store, key, path, log)
	}
}

// finalCheckpoint is the checkpoint serve takes as it stops, within a bounded time.
func finalCheckpoint(store tally.Store, key *tally.LedgerKey, path string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keepCheckpoint(ctx, store, key, path, log)
}

// keepCheckpoint takes a checkpoint if the ledger changed, appends it to path and logs it.
func keepCheckpoint(ctx context.Context, store tally.Store, key *tally.LedgerKey, path string, log *slog.Logger) {
	cp, err := ledger.TakeCheckpoint(ctx, store, key, time.Now(), true)
	var breach *ledger.Breach
	switch {
	case errors.Is(err, ledger.ErrUnchanged), ctx.Err() != nil:
		return
	case errors.As(err, &breach):
		log.Error("checkpoint refused: the ledger was altered since the last checkpoint", "breach", breach.Error())
		return
	case err != nil:
		log.Warn("checkpoint failed", "err", err)
		return
	}
	if err := appendCheckpoint(path, cp); err != nil {
		log.Error("checkpoint not kept", "no", cp.No, "err", err)
	}
	log.Info("checkpoint", "no", cp.No, "created_at", cp.CreatedAt, "max_seq", cp.MaxSeq, "transactions", cp.Transactions,
		"accounts", cp.Accounts, "root", cp.Root, "key_id", cp.KeyID, "signature", cp.Signature)
}
