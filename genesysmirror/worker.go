package genesysmirror

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"time"

	"github.com/tally-ledger/tally"
)

// Fields names the custom fields of the external contact that receive the balance and the tier.
type Fields struct {
	Balance string // a number field, e.g. loyaltyBalance_number
	Tier    string // a text field, e.g. loyaltyTier_text; "" sends no tier
}

// Options configure a Worker. Zero durations take the defaults.
type Options struct {
	Outbox   *Outbox
	Accounts interface {
		Account(ctx context.Context, id string) (tally.Account, error)
	}
	TierOf func(ctx context.Context, account string) (string, error) // the stored tier; nil sends no tier
	Client *Client
	Fields Fields
	Logger *slog.Logger
	// Poll is how long an idle worker waits before looking again (default 1 s).
	Poll time.Duration
	// Lease bounds one row's attempt (default 30 s); the lease outlasts it by as much again, so that a
	// replica whose clock is somewhat ahead does not take the row while it is being sent.
	Lease time.Duration
	// Backoff is the first wait after a failure (default 1 s); it doubles with each failed attempt of a
	// row, up to MaxBackoff (default 5 min).
	Backoff, MaxBackoff time.Duration
	// Batch is how many rows one round leases (default 16).
	Batch int
}

// Worker drains the mirror outbox: for each due row it reads the account's current balance, sends it
// (and its tier) to the contact, and records the version it sent. Sending the current balance rather
// than each write's coalesces a burst of writes into one request. While no token can be had (the token
// endpoint is down, the credentials are wrong) rows stay in the outbox and are retried with backoff.
type Worker struct {
	o     Options
	owner string
}

// New returns a worker with an owner name of its own.
func New(o Options) *Worker {
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	if o.Batch <= 0 {
		o.Batch = 16
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	b := make([]byte, 8)
	rand.Read(b)
	return &Worker{o: o, owner: "mirror-" + hex.EncodeToString(b)}
}

// Run works until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := w.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			w.o.Logger.Warn("genesys mirror: lease", "err", err)
		}
		if n == 0 || err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(w.o.Poll):
			}
		}
	}
}

// RunOnce leases one batch of due rows and sends them; it returns how many it leased. When Genesys
// cannot be used at all (no token can be had, or a 429 asks to wait), the rest of the batch is put
// back to wait as long as the failed row does, rather than each row asking again at once.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	now := time.Now()
	// The rows are sent one after the other, each within Lease: the lease must outlast them all, or a
	// row late in the batch could be leased and sent by another replica meanwhile.
	rows, err := w.o.Outbox.Store.LeaseMirrors(ctx, w.owner, now, now.Add(time.Duration(w.o.Batch+1)*w.o.Lease), w.o.Batch)
	if err != nil {
		return 0, err
	}
	var blocked *tally.MirrorResult
	for _, m := range rows {
		if blocked != nil {
			w.finish(ctx, m, *blocked)
			continue
		}
		res := w.send(ctx, m)
		if res.Error != "" && res.blocksAll {
			blocked = &res.MirrorResult
		}
	}
	return len(rows), nil
}

// outcome is a row's result, and whether its failure is Genesys's as a whole.
type outcome struct {
	tally.MirrorResult
	blocksAll bool
}

// send mirrors one leased row and records the outcome.
func (w *Worker) send(ctx context.Context, m tally.ContactMirror) outcome {
	actx, cancel := context.WithTimeout(ctx, w.o.Lease)
	sent, err := w.mirror(actx, m)
	cancel()
	now := time.Now()
	res := outcome{MirrorResult: tally.MirrorResult{SentVersion: sent, RetryAt: now, At: now}}
	if err != nil {
		res.Error = err.Error()
		res.RetryAt = now.Add(w.backoff(m.Attempts))
		var ra *RetryAfterError
		if errors.As(err, &ra) && ra.Wait > w.backoff(m.Attempts) {
			// Genesys's wait when it asks for longer than the backoff; never less, so that a
			// "Retry-After: 0" to a row that keeps failing is not a loop.
			res.RetryAt = now.Add(ra.Wait)
		}
		res.blocksAll = ra != nil || errors.Is(err, ErrNoToken)
		w.o.Logger.Warn("genesys mirror: attempt failed", "account", m.AccountID, "attempts", m.Attempts+1, "err", err)
	}
	w.finish(ctx, m, res.MirrorResult)
	return res
}

// finish records a row's result and ends its lease.
func (w *Worker) finish(ctx context.Context, m tally.ContactMirror, res tally.MirrorResult) {
	if err := w.o.Outbox.Store.FinishMirror(context.WithoutCancel(ctx), m.AccountID, w.owner, res); err != nil {
		w.o.Logger.Warn("genesys mirror: record attempt", "account", m.AccountID, "err", err)
	}
}

// mirror sends the account's current balance and tier to the contact and returns the balance version
// it sent.
func (w *Worker) mirror(ctx context.Context, m tally.ContactMirror) (int64, error) {
	contact, err := w.o.Outbox.open(m)
	if err != nil {
		return 0, errors.New("the sealed contact id does not open with this ledger key")
	}
	acct, err := w.o.Accounts.Account(ctx, m.AccountID)
	if err != nil {
		return 0, err
	}
	// Genesys shows what the customer can spend, as the lookup's balance does (pending points left out).
	fields := map[string]any{w.o.Fields.Balance: acct.Spendable()}
	if w.o.Fields.Tier != "" && w.o.TierOf != nil {
		tier, err := w.o.TierOf(ctx, m.AccountID)
		if err != nil {
			return 0, err
		}
		fields[w.o.Fields.Tier] = tier
	}
	if err := w.o.Client.SetCustomFields(ctx, contact, fields); err != nil {
		return 0, err
	}
	return acct.BalanceVersion, nil
}

// backoff is the wait after a row's attempts-th failure.
func (w *Worker) backoff(attempts int) time.Duration {
	d := w.o.Backoff
	for i := 0; i < attempts && d < w.o.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, w.o.MaxBackoff)
}
