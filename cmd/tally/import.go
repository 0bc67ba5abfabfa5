package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tally-ledger/tally/csvimport"
	"github.com/tally-ledger/tally/ledger"
)

// exitRejected is the exit status of an import that rejected some rows (and imported the others).
const exitRejected = 4

func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := dbFlagSet("import", stderr)
	actor := fs.String("actor", "", "who runs the import, recorded on every transaction (default: the operating system user)")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	quiet := fs.Bool("quiet", false, "show no progress")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tally import [flags] FILE.csv\n\nColumns: customer_id, points (required); kind (opening|accrual), earned_at, expires_at, reference.\nRunning a file again imports each row once. Exit status 4 when rows were rejected.")
		fs.PrintDefaults()
	}
	path, err := parseWithArg(fs, args, "the CSV file")
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	total, err := countLines(f)
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if *actor == "" {
		*actor = operatingUser()
	}
	s, err := openKeyed(ctx, *db, openExistingMigrated)
	if err != nil {
		return err
	}
	defer s.Close()
	hasher, err := existingCustomerHasher(s.openedStore)
	if err != nil {
		return err
	}
	bar := newImportProgress(stderr, total-1, *quiet)
	start := time.Now()
	sum, err := csvimport.Import(ctx, s.ledger(ledger.Options{}), bufio.NewReaderSize(f, 1<<16), csvimport.Options{
		Hasher: hasher, Actor: *actor, Progress: bar.update,
	})
	bar.finish()
	if err != nil {
		return fmt.Errorf("import stopped: %w (rows imported so far stay imported; running the file again is safe)", err)
	}
	if *asJSON {
		if err := printJSON(stdout, sum); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "%d rows: %d imported (%d points), %d imported before, %d rejected (%s)\n",
			sum.Rows, sum.Imported, sum.Points, sum.AlreadyImported, len(sum.Rejected), time.Since(start).Round(time.Millisecond))
		for _, r := range sum.Rejected {
			fmt.Fprintf(stdout, "line %d: %s\n", r.Line, r.Reason)
		}
	}
	if len(sum.Rejected) > 0 {
		return &exitError{code: exitRejected, err: fmt.Errorf("%d rows rejected; fix them and run the file again (imported rows are not imported twice)", len(sum.Rejected))}
	}
	return nil
}

// countLines counts newline-terminated lines (plus a last unterminated one), for the progress bar: an
// estimate, since a quoted field may span lines.
func countLines(r io.Reader) (int, error) {
	buf := make([]byte, 1<<16)
	n, last := 0, byte('\n')
	for {
		k, err := r.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if k > 0 {
			last = buf[k-1]
		}
		if errors.Is(err, io.EOF) {
			if last != '\n' {
				n++
			}
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// importProgress draws progress on a terminal, redrawn in place at most ten times a second; on anything
// else (a log, a pipe) it writes a plain line every five seconds, so that logs are not flooded.
type importProgress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	off   bool
	total int
	done  int
	last  time.Time
	drawn bool
}

func newImportProgress(w io.Writer, total int, quiet bool) *importProgress {
	return &importProgress{w: w, tty: isTerminal(w), off: quiet, total: max(total, 1), last: time.Now()}
}

func (b *importProgress) update(done int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = done
	every := 5 * time.Second
	if b.tty {
		every = 100 * time.Millisecond
	}
	if b.off || time.Since(b.last) < every {
		return
	}
	b.last = time.Now()
	b.draw()
}

func (b *importProgress) draw() {
	total := max(b.total, b.done)
	if !b.tty {
		fmt.Fprintf(b.w, "import: %d of about %d rows\n", b.done, total)
		return
	}
	const width = 40
	filled := width * b.done / total
	fmt.Fprintf(b.w, "\r[%s%s] %d/%d rows", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), b.done, total)
	b.drawn = true
}

func (b *importProgress) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.off {
		return
	}
	if b.tty {
		b.total = b.done
		b.draw()
		fmt.Fprintln(b.w)
	}
}
