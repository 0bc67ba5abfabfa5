// Package csvimport imports opening balances and historical accruals from CSV into the ledger, one
// idempotent write per row: running the same file twice imports it once.
//
// A file has a header row naming its columns, in any order: customer_id and points are required; kind
// (opening | accrual, default accrual), earned_at and expires_at (RFC 3339 or YYYY-MM-DD), and reference
// are optional. Every row is an accrual from the issuance account on the reserved channel "import"; its
// lot expires at expires_at (else by the programme's expiry policy, counted from the import), and its
// metadata records the row's kind, dates and reference. The idempotency key is "ref:" and the reference
// when the row has one, else "row:" and a digest of the row's values and how many identical rows came
// before it in the file, so that re-running a file, even with rows added or reordered, imports each row
// once, while rows that are truly repeated are each imported.
package csvimport

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// Channel is the reserved idempotency channel of imported rows.
const Channel = "import"

// Row kinds.
const (
	KindOpening = "opening" // a balance carried over from another system
	KindAccrual = "accrual" // a historical accrual
)

// Columns of a file.
const (
	colCustomer  = "customer_id"
	colPoints    = "points"
	colKind      = "kind"
	colEarnedAt  = "earned_at"
	colExpiresAt = "expires_at"
	colReference = "reference"
)

var knownColumns = []string{colCustomer, colPoints, colKind, colEarnedAt, colExpiresAt, colReference}

// Options tune an import.
type Options struct {
	// Hasher turns raw customer ids into customer hashes; a value "th_" followed by a hash is taken as is.
	Hasher *tally.CustomerHasher
	// Actor is recorded on every imported transaction (who ran the import).
	Actor string
	// Now is the current time, for the checks on dates (default time.Now).
	Now func() time.Time
	// Concurrency is how many rows are in flight at once (default 64), so that the ledger's group commit
	// writes many per database transaction.
	Concurrency int
	// Progress, when set, is called after each row with the rows done so far.
	Progress func(done int)
}

// Rejection is a row that was not imported, and why.
type Rejection struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// Summary is what an import did.
type Summary struct {
	Rows            int         `json:"rows"`             // data rows read
	Imported        int         `json:"imported"`         // rows written now
	AlreadyImported int         `json:"already_imported"` // rows a previous run wrote (replayed)
	Points          int64       `json:"points"`           // points written now
	Rejected        []Rejection `json:"rejected"`         // by line
}

// Metadata is what each imported transaction's metadata holds, under "import".
type Metadata struct {
	Kind      string `json:"kind"`
	EarnedAt  string `json:"earned_at,omitempty"`
	ExpiresAt string `json:"expires_at,omitempty"`
	Reference string `json:"reference,omitempty"`
}

// row is one data row, parsed.
type row struct {
	line int
	req  ledger.Request
	err  string // why it is rejected before reaching the ledger
}

// Import reads a CSV file and writes its rows. It returns an error, having written nothing more, when
// the header is unusable, the file is not CSV, ctx ends, or the ledger is unavailable: rows written so
// far stay written, and running the import again is safe. A row that is wrong on its own is rejected
// and reported in the summary; the others are imported.
func Import(ctx context.Context, l *ledger.Service, r io.Reader, opts Options) (Summary, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	sum := Summary{Rejected: []Rejection{}}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return sum, tally.Errorf(tally.EINVALID, "the file is empty: it needs a header row (%s)", strings.Join(knownColumns, ","))
	}
	if err != nil {
		return sum, tally.Errorf(tally.EINVALID, "line 1: %v", err)
	}
	cols, err := columns(header)
	if err != nil {
		return sum, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		fatal error
		done  int
		wg    sync.WaitGroup
	)
	work := make(chan row)
	finish := func(line int, reason string, rc *ledger.Receipt) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case reason != "":
			sum.Rejected = append(sum.Rejected, Rejection{Line: line, Reason: reason})
		case rc.Replayed:
			sum.AlreadyImported++
		default:
			sum.Imported++
			sum.Points += rc.Transaction.Amount
		}
		done++
		if opts.Progress != nil {
			opts.Progress(done)
		}
	}
	fail := func(err error) {
		mu.Lock()
		if fatal == nil {
			fatal = err
		}
		mu.Unlock()
		cancel()
	}
	for range opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rw := range work {
				if rw.err != "" {
					finish(rw.line, rw.err, nil)
					continue
				}
				rc, err := l.Write(ctx, rw.req)
				switch {
				case err == nil:
					finish(rw.line, "", &rc)
				case tally.ErrorCode(err) == tally.EIDEMPOTENCY:
					finish(rw.line, "this row's key ("+rw.req.Key+") was imported before with other values", nil)
				case tally.ErrorCode(err) == tally.EUNAVAILABLE || tally.ErrorCode(err) == tally.EINTERNAL || ctx.Err() != nil:
					fail(fmt.Errorf("line %d: %w", rw.line, err))
				default:
					finish(rw.line, tally.ErrorMessage(err), nil)
				}
			}
		}()
	}

	p := parser{cols: cols, opts: opts, now: opts.Now().UTC(), refs: map[string]int{}, identical: map[string]int{}}
	var readErr error
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = tally.Errorf(tally.EINVALID, "the file is not valid CSV: %v", err)
			break
		}
		line, _ = cr.FieldPos(0)
		if blank(rec) {
			continue
		}
		sum.Rows++
		select {
		case work <- p.parse(line, rec):
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	sort.Slice(sum.Rejected, func(i, j int) bool { return sum.Rejected[i].Line < sum.Rejected[j].Line })
	if fatal != nil {
		return sum, fatal
	}
	if readErr != nil {
		return sum, readErr
	}
	return sum, ctx.Err()
}

func blank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// columns maps each known column to its index in the header; unknown or repeated columns are refused,
// so that a misspelt optional column is not silently ignored.
func columns(header []string) (map[string]int, error) {
	cols := map[string]int{}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		known := false
		for _, k := range knownColumns {
			known = known || k == name
		}
		if !known {
			return nil, tally.Errorf(tally.EINVALID, "line 1: unknown column %q: the columns are %s", h, strings.Join(knownColumns, ", "))
		}
		if _, dup := cols[name]; dup {
			return nil, tally.Errorf(tally.EINVALID, "line 1: column %q appears twice", name)
		}
		cols[name] = i
	}
	for _, need := range []string{colCustomer, colPoints} {
		if _, ok := cols[need]; !ok {
			return nil, tally.Errorf(tally.EINVALID, "line 1: the header has no %q column", need)
		}
	}
	return cols, nil
}

// parser turns records into ledger requests; it runs on one goroutine.
type parser struct {
	cols      map[string]int
	opts      Options
	now       time.Time
	refs      map[string]int // reference -> the line that used it first
	identical map[string]int // row digest -> rows seen with it
}

func (p *parser) field(rec []string, col string) string {
	i, ok := p.cols[col]
	if !ok || i >= len(rec) {
		return ""
	}
	return strings.TrimSpace(rec[i])
}

func (p *parser) parse(line int, rec []string) row {
	rw := row{line: line}
	reject := func(format string, args ...any) row {
		rw.err = fmt.Sprintf(format, args...)
		return rw
	}
	if len(rec) != len(p.cols) {
		return reject("has %d fields, the header %d", len(rec), len(p.cols))
	}
	customer := p.field(rec, colCustomer)
	if customer == "" {
		return reject("customer_id is empty")
	}
	if err := tally.CheckText("customer_id", customer); err != nil {
		return reject("%s", tally.ErrorMessage(err))
	}
	account := p.opts.Hasher.Hash(customer)
	if h, ok := strings.CutPrefix(customer, "th_"); ok {
		if !tally.IsCustomerHash(h) {
			return reject("customer_id starts with th_ but is not followed by a customer hash (64 lowercase hex digits)")
		}
		account = h
	}
	points, err := strconv.ParseInt(p.field(rec, colPoints), 10, 64)
	if err != nil || points <= 0 || points > tally.MaxAmount {
		return reject("points must be a whole number from 1 to %d, not %q", tally.MaxAmount, p.field(rec, colPoints))
	}
	kind := strings.ToLower(p.field(rec, colKind))
	if kind == "" {
		kind = KindAccrual
	}
	if kind != KindOpening && kind != KindAccrual {
		return reject("kind must be %q or %q, not %q", KindOpening, KindAccrual, kind)
	}
	earned, err := parseTime(p.field(rec, colEarnedAt))
	if err != nil {
		return reject("earned_at: %v", err)
	}
	expires, err := parseTime(p.field(rec, colExpiresAt))
	if err != nil {
		return reject("expires_at: %v", err)
	}
	if !earned.IsZero() && earned.After(p.now) {
		return reject("earned_at %s is in the future", earned.Format(time.RFC3339))
	}
	if !expires.IsZero() && !earned.IsZero() && !expires.After(earned) {
		return reject("expires_at %s is not after earned_at %s", expires.Format(time.RFC3339), earned.Format(time.RFC3339))
	}
	if !expires.IsZero() && !expires.After(p.now) {
		return reject("expired on %s: there is nothing left to import", expires.Format(time.RFC3339))
	}
	ref := p.field(rec, colReference)
	if err := tally.CheckText("reference", ref); err != nil {
		return reject("%s", tally.ErrorMessage(err))
	}
	if len(ref) > 190 {
		return reject("reference is longer than 190 bytes")
	}
	md := Metadata{Kind: kind, Reference: ref}
	if !earned.IsZero() {
		md.EarnedAt = earned.Format(time.RFC3339)
	}
	if !expires.IsZero() {
		md.ExpiresAt = expires.Format(time.RFC3339)
	}
	var key string
	if ref != "" {
		if first, seen := p.refs[ref]; seen {
			return reject("reference %q is used by line %d already", ref, first)
		}
		p.refs[ref] = line
		key = "ref:" + ref
	} else {
		d := sha256.New()
		for _, f := range []string{account, strconv.FormatInt(points, 10), kind, md.EarnedAt, md.ExpiresAt} {
			d.Write([]byte(f))
			d.Write([]byte{0})
		}
		digest := hex.EncodeToString(d.Sum(nil))[:40]
		n := p.identical[digest]
		p.identical[digest] = n + 1
		key = "row:" + digest + ":" + strconv.Itoa(n)
	}
	meta, err := json.Marshal(map[string]Metadata{"import": md})
	if err != nil {
		return reject("%v", err)
	}
	reason := "import: historical accrual"
	if kind == KindOpening {
		reason = "import: opening balance"
	}
	// The row's values, without the actor: whoever runs the file again replays it.
	id := sha256.New()
	for _, f := range []string{"tally-import-v1", account, strconv.FormatInt(points, 10), string(meta)} {
		id.Write([]byte(strconv.Quote(f)))
		id.Write([]byte{'\n'})
	}
	rw.req = ledger.Request{
		Kind: tally.KindAccrual, Channel: Channel, Internal: true, Key: key, Account: account, Amount: points,
		Reason: reason, Actor: p.opts.Actor, Metadata: meta, Identity: hex.EncodeToString(id.Sum(nil)),
	}
	if !expires.IsZero() {
		rw.req.ExpiresAt = &expires // the row's lot expires then, not by the programme's policy
	}
	return rw
}

// parseTime reads RFC 3339 or a plain date (midnight UTC); empty is the zero time.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2024-05-01T10:00:00Z) nor a date (2024-05-01)", s)
}
