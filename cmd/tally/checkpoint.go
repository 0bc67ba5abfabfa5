package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	fs, db := dbFlagSet("checkpoint", stderr)
	out := fs.String("out", "", "append the checkpoint to this file (default: beside an embedded database, DB.checkpoints; required with PostgreSQL)")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if err := takesNoArgs(fs, "checkpoint"); err != nil {
		return err
	}
	s, err := openCurrent(ctx, *db)
	if err != nil {
		return err
	}
	defer s.Close()
	path, err := checkpointPath(s, *out)
	if err != nil {
		return err
	}
	key, err := existingLedgerKey(s)
	if err != nil {
		return err
	}
	cf, err := openCheckpointFile(path)
	if err != nil {
		return err
	}
	cp, err := ledger.TakeCheckpoint(ctx, s.Store, key, time.Now(), false, cf.last)
	if err != nil {
		return checkpointErr(err)
	}
	if err := cf.append(cp); err != nil {
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

// checkpointFile is the append-only file of checkpoints kept outside the database, and the newest
// checkpoint in it: the next checkpoint is checked against it (see ledger.TakeCheckpoint).
type checkpointFile struct {
	path string
	last *tally.Checkpoint
}

// openCheckpointFile makes sure path can be appended to (creating it, mode 0600) and reads its newest
// checkpoint, if any.
func openCheckpointFile(path string) (*checkpointFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("checkpoint file: %w", err)
	}
	f.Close()
	cf := &checkpointFile{path: path}
	cps, err := readCheckpoints(path)
	switch {
	case errors.Is(err, errNoCheckpoint):
	case err != nil:
		return nil, err
	default:
		for i := range cps {
			if cf.last == nil || cps[i].No > cf.last.No {
				cf.last = &cps[i]
			}
		}
	}
	return cf, nil
}

// append appends cp as one JSON line and syncs the file. One write of one line with O_APPEND keeps
// concurrent writers' lines whole. A last line left torn by a crash (no checkpoint: its write never
// finished, and it was never logged) is cut off first, so that the file stays one checkpoint a line.
func (cf *checkpointFile) append(cp tally.Checkpoint) error {
	line, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(cf.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("checkpoint file: %w", err)
	}
	defer f.Close()
	if err := cutTornLine(f); err != nil {
		return fmt.Errorf("checkpoint file: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("checkpoint file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("checkpoint file: %w", err)
	}
	cf.last = &cp
	return nil
}

// cutTornLine truncates f after its last newline when it does not end with one.
func cutTornLine(f *os.File) error {
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return err
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return err
	}
	if b[len(b)-1] == '\n' {
		return nil
	}
	return f.Truncate(int64(bytes.LastIndexByte(b, '\n') + 1))
}

// errNoCheckpoint is readCheckpoints' error for a file that holds none.
var errNoCheckpoint = errors.New("holds no checkpoint")

// readCheckpoints reads a checkpoint file. A line that is not a checkpoint is an error naming it: the
// file is evidence, and a damaged line must not be skipped silently. The one exception is a last line
// with no end, which a crash during its write leaves behind: it is skipped.
func readCheckpoints(path string) ([]tally.Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint file: %w", err)
	}
	lines := bytes.Split(b, []byte{'\n'})
	var cps []tally.Checkpoint
	for i, raw := range lines {
		line := bytes.TrimSpace(raw)
		if len(line) == 0 {
			continue
		}
		var cp tally.Checkpoint
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cp); err != nil || cp.No <= 0 || cp.Signature == "" {
			if i == len(lines)-1 { // torn: the file does not end with a newline
				continue
			}
			return nil, fmt.Errorf("checkpoint file %s, line %d: not a checkpoint", path, i+1)
		}
		cps = append(cps, cp)
	}
	if len(cps) == 0 {
		return nil, fmt.Errorf("checkpoint file %s %w", path, errNoCheckpoint)
	}
	return cps, nil
}

// checkpointLoop takes a checkpoint every interval while the ledger changes, appends it to the file and
// logs it, so that the log holds a second copy outside the database.
func checkpointLoop(ctx context.Context, store tally.Store, key *tally.LedgerKey, cf *checkpointFile, every time.Duration, log *slog.Logger) {
	runEvery(ctx, every, func() { keepCheckpoint(ctx, store, key, cf, log) })
}

// finalCheckpoint is the checkpoint serve takes as it stops, within a bounded time.
func finalCheckpoint(store tally.Store, key *tally.LedgerKey, cf *checkpointFile, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keepCheckpoint(ctx, store, key, cf, log)
}

// keepCheckpoint takes a checkpoint if the ledger changed, appends it to the file and logs it.
func keepCheckpoint(ctx context.Context, store tally.Store, key *tally.LedgerKey, cf *checkpointFile, log *slog.Logger) {
	cp, err := ledger.TakeCheckpoint(ctx, store, key, time.Now(), true, cf.last)
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
	if err := cf.append(cp); err != nil {
		log.Error("checkpoint not kept", "no", cp.No, "err", err)
	}
	log.Info("checkpoint", "no", cp.No, "created_at", cp.CreatedAt, "max_seq", cp.MaxSeq, "transactions", cp.Transactions,
		"accounts", cp.Accounts, "root", cp.Root, "key_id", cp.KeyID, "signature", cp.Signature)
}
