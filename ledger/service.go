// Package ledger is the points ledger: every operation (accrue, redeem, expire, adjust, reverse,
// balance, history) written once over tally.Store, with idempotency, hash chains and group commit.
package ledger

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/tally-ledger/tally"
)

// Options tune the service. Zero values take the defaults.
type Options struct {
	// MaxBatch is the most writes committed in one database transaction (default 256).
	MaxBatch int
	// Workers is how many batches may be in flight at once (default 1). SQLite has one writer, so more
	// gain nothing there; on PostgreSQL a few overlap one batch's fsync with the next one's work. Writes
	// are spread over the workers by customer account, so that one account's writes batch together
	// instead of queueing for its row lock in several database transactions at once.
	Workers int
	// QueueSize bounds the writes waiting for a batch (default 4096). A full queue makes writers wait,
	// within their context's deadline.
	QueueSize int
	// BatchTimeout bounds one batch's database transaction (default 10 s).
	BatchTimeout time.Duration
	// Clock returns the time stamped on transactions (default time.Now).
	Clock func() time.Time
	// Observe, when set, is told of every write's outcome (for metrics).
	Observe func(kind tally.Kind, code tally.Code, replayed bool)
	// ObserveBatch, when set, is told the size of every batch committed.
	ObserveBatch func(size int)
	// Key is the ledger key kept outside the database; it keys the transactions' chain hashes. Required.
	Key *tally.LedgerKey
	// Tiers tells which tier a customer holds, for rewards a tier gates; without it such rewards are
	// refused (ETIER).
	Tiers tally.TierPolicy
	// Lots is the programme's points lifecycle: when new lots expire, and what a clawback may do
	// (zero value: points never expire, clawbacks stay within the balance).
	Lots tally.LotPolicy
	// Earner computes the amount of accruals made for events (Request.Earn); without it they fail
	// (EUNAVAILABLE).
	Earner Earner
}

// Service is the ledger. It is safe for concurrent use; writes from many goroutines are grouped into
// shared database transactions and each caller is answered only after its transaction commits.
type Service struct {
	store tally.Store
	opts  Options

	mu     sync.RWMutex // guards closed against sends on queues
	closed bool
	queues []chan *op // one per worker
	wg     sync.WaitGroup

	chainMu sync.Mutex
	chain   *tally.Chain // loaded (and the seal stored) before the first write
}

// Receipt is the outcome of a successful write: the transaction and the customer balance right after it.
type Receipt struct {
	Transaction tally.Transaction `json:"transaction"`
	// Balance is the spendable balance (pending points left out, see tally.Account.Spendable).
	Balance int64 `json:"balance"`
	// Pending is the points of the balance not spendable yet.
	Pending int64 `json:"pending_points,omitempty"`
	// Lapsed is the points of expired lots that the expiry job has not posted yet: neither spendable
	// nor in Balance.
	Lapsed         int64 `json:"expired_pending_posting,omitempty"`
	BalanceVersion int64 `json:"balance_version"`
	// Redemption is the receipt of a redemption of a reward, as recorded with the transaction (its
	// fulfillment status may have moved on since: see Store.Redemption).
	Redemption *tally.Redemption `json:"redemption,omitempty"`
	// Rules are the earning rules (versions) that paid an event's accrual, and what each paid.
	Rules []tally.AccrualRule `json:"rules,omitempty"`
	// TierChange is the upgrade the accrual earned, if it earned one.
	TierChange *tally.TierChange `json:"tier_change,omitempty"`
	// Tier is the tier the customer holds once the write's batch committed, when the batch read it
	// under the account lock (accruals and tier-gated redemptions of a ledger with tiers); "" otherwise.
	// Not stored with the receipt: a replay does not know it.
	Tier string `json:"-"`
	// Replayed is true when the write was not applied now because its idempotency key had been applied
	// before (or by a concurrent duplicate); the receipt is then the original one.
	Replayed bool `json:"-"`
}

// New starts a ledger over store. Call Close to stop it. opts.Key is required.
func New(store tally.Store, opts Options) *Service {
	if opts.Key == nil {
		panic("ledger: Options.Key is required")
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4096
	}
	if opts.BatchTimeout <= 0 {
		opts.BatchTimeout = 10 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	s := &Service{store: store, opts: opts}
	for i := 0; i < opts.Workers; i++ {
		q := make(chan *op, max(1, opts.QueueSize/opts.Workers))
		s.queues = append(s.queues, q)
		s.wg.Add(1)
		go s.work(q)
	}
	return s
}

// Close stops taking writes, finishes those already queued, and returns when all are answered.
func (s *Service) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		for _, q := range s.queues {
			close(q)
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Store returns the store the ledger runs on.
func (s *Service) Store() tally.Store { return s.store }

// Accrue credits a customer with points issued by the programme.
func (s *Service) Accrue(ctx context.Context, r Request) (Receipt, error) {
	r.Kind = tally.KindAccrual
	return s.Write(ctx, r)
}

// Redeem debits a customer's points towards the redemptions account.
func (s *Service) Redeem(ctx context.Context, r Request) (Receipt, error) {
	r.Kind = tally.KindRedemption
	return s.Write(ctx, r)
}

// Expire debits points that have expired.
func (s *Service) Expire(ctx context.Context, r Request) (Receipt, error) {
	r.Kind = tally.KindExpiry
	return s.Write(ctx, r)
}

// Adjust credits (positive Amount) or debits (negative) a customer by hand; Reason and Actor are required.
func (s *Service) Adjust(ctx context.Context, r Request) (Receipt, error) {
	r.Kind = tally.KindAdjustment
	return s.Write(ctx, r)
}

// Reverse undoes the transaction r.ReversesSeq, once, with postings that mirror it.
func (s *Service) Reverse(ctx context.Context, r Request) (Receipt, error) {
	r.Kind = tally.KindReversal
	return s.Write(ctx, r)
}

// Write applies one write of any kind. Errors are *tally.Error: EINVALID for a malformed request;
// EIDEMPOTENCY when the key was used with another request; ENOTFOUND, EINSUFFICIENT, EFROZEN, ECLOSED,
// EALREADY for remembered business refusals (a retry gets the same); EVERSION for a stale
// balance_version; ECONFLICT, naming the transaction, when the key wrote one whose outcome is no longer
// kept (an event past the retention). EUNAVAILABLE when the store failed or could not be reached: the
// write may or may not have been applied (a commit whose acknowledgement was lost looks the same as one
// that failed), and retrying with the same idempotency key is safe and returns the outcome, as a replay
// if it was applied. The same holds when ctx ends first.
func (s *Service) Write(ctx context.Context, r Request) (Receipt, error) {
	if err := r.normalize(); err != nil {
		s.observe(r.Kind, err, false)
		return Receipt{}, err
	}
	o := &op{req: r, reqHash: r.hash(), done: make(chan result, 1)}
	if err := s.enqueue(ctx, o); err != nil {
		return Receipt{}, err
	}
	select {
	case res := <-o.done:
		s.observe(r.Kind, res.err, res.replayed || res.receipt.Replayed)
		return res.receipt, res.err
	case <-ctx.Done():
		return Receipt{}, ctx.Err()
	}
}

func (s *Service) observe(kind tally.Kind, err error, replayed bool) {
	if s.opts.Observe != nil {
		s.opts.Observe(kind, tally.ErrorCode(err), replayed)
	}
}

func (s *Service) enqueue(ctx context.Context, o *op) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return tally.Errorf(tally.EUNAVAILABLE, "the ledger is shutting down")
	}
	select {
	case s.queues[s.route(o)] <- o:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// route picks the worker of a write: by customer account, or by idempotency key when the account is
// not known before the write is decided (reversals, records), so that duplicates meet in one batch.
func (s *Service) route(o *op) int {
	if len(s.queues) == 1 {
		return 0
	}
	h := fnv.New32a()
	if o.req.Account != "" {
		h.Write([]byte(o.req.Account))
	} else {
		h.Write([]byte(o.req.Channel))
		h.Write([]byte{0})
		h.Write([]byte(o.req.Key))
	}
	return int(h.Sum32() % uint32(len(s.queues)))
}

// Balance returns a customer's account. ENOTFOUND when the customer has none yet.
func (s *Service) Balance(ctx context.Context, account string) (tally.Account, error) {
	if !tally.IsCustomerHash(account) {
		return tally.Account{}, tally.Errorf(tally.EINVALID, "account must be a customer hash (64 lowercase hex digits)")
	}
	a, err := s.store.Account(ctx, account)
	if err != nil {
		return a, err
	}
	// Points whose lots have expired are gone at their expiry time, whether or not the expiry job has
	// posted their expiry yet: they are not spendable (Account.Spendable leaves them out).
	a.Lapsed, err = s.store.LapsedPoints(ctx, account, tally.LedgerTime(s.opts.Clock()))
	return a, err
}

// Page is one page of an account's history, newest first. Next is the cursor of the following page,
// empty on the last one.
type Page struct {
	Transactions []tally.Transaction `json:"transactions"`
	Next         string              `json:"next_cursor,omitempty"`
}

// Paging limits of History.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// History returns a page of a customer's transactions, newest first. cursor is empty for the first
// page, else the Next of the previous page.
func (s *Service) History(ctx context.Context, account, cursor string, limit int) (Page, error) {
	if !tally.IsCustomerHash(account) {
		return Page{}, tally.Errorf(tally.EINVALID, "account must be a customer hash (64 lowercase hex digits)")
	}
	if limit == 0 {
		limit = DefaultPageSize
	}
	if limit < 0 || limit > MaxPageSize {
		return Page{}, tally.Errorf(tally.EINVALID, "limit must be between 1 and %d", MaxPageSize)
	}
	before, err := decodeCursor(cursor)
	if err != nil {
		return Page{}, err
	}
	// One extra row tells whether another page follows.
	txs, err := s.store.History(ctx, account, before, limit+1)
	if err != nil {
		return Page{}, err
	}
	p := Page{Transactions: txs}
	if len(txs) > limit {
		p.Transactions = txs[:limit]
		p.Next = encodeCursor(txs[limit-1].Seq)
	}
	if p.Transactions == nil {
		p.Transactions = []tally.Transaction{}
	}
	return p, nil
}

const cursorPrefix = "seq:"

func encodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(seq, 10)))
}

func decodeCursor(c string) (int64, error) {
	if c == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil && len(b) > len(cursorPrefix) && string(b[:len(cursorPrefix)]) == cursorPrefix {
		if seq, err := strconv.ParseInt(string(b[len(cursorPrefix):]), 10, 64); err == nil && seq > 0 {
			return seq, nil
		}
	}
	return 0, tally.Errorf(tally.EINVALID, "cursor is malformed")
}

// Transaction returns one transaction by its sequence number.
func (s *Service) Transaction(ctx context.Context, seq int64) (tally.Transaction, error) {
	if seq <= 0 {
		return tally.Transaction{}, tally.Errorf(tally.EINVALID, "transaction number must be positive")
	}
	return s.store.Transaction(ctx, seq)
}

// SetStatus freezes, closes or reactivates a customer account. It changes no balance.
func (s *Service) SetStatus(ctx context.Context, account string, status tally.AccountStatus) (tally.Account, error) {
	if !tally.IsCustomerHash(account) {
		return tally.Account{}, tally.Errorf(tally.EINVALID, "account must be a customer hash (64 lowercase hex digits)")
	}
	if !status.Valid() {
		return tally.Account{}, tally.Errorf(tally.EINVALID, "unknown account status %q", status)
	}
	var out tally.Account
	err := s.store.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		accts, err := tx.LockAccounts(ctx, []string{account})
		if err != nil {
			return err
		}
		a, ok := accts[account]
		if !ok {
			return tally.Errorf(tally.ENOTFOUND, "no account for this customer")
		}
		a.Status = status
		out = a
		return tx.UpdateAccounts(ctx, []tally.Account{a})
	})
	return out, err
}

// Outcome returns the remembered result of an idempotency key, as Write would replay it.
func (s *Service) Outcome(ctx context.Context, channel, key string) (Receipt, error) {
	if channel == "" {
		channel = DefaultChannel
	}
	o, err := s.store.Outcome(ctx, channel, key)
	if err != nil {
		return Receipt{}, err
	}
	res := replay(o)
	return res.receipt, res.err
}

// failure is how a remembered refusal is stored.
type failure struct {
	Code    tally.Code       `json:"code"`
	Message string           `json:"message"`
	Details map[string]int64 `json:"details,omitempty"`
}

// errorDetails returns the details a refusal carries.
func errorDetails(err error) map[string]int64 {
	var e *tally.Error
	if errors.As(err, &e) {
		return e.Details
	}
	return nil
}

// replay turns a stored outcome back into the answer first given.
func replay(o tally.Outcome) result {
	if o.Code != "" {
		var f failure
		if err := json.Unmarshal(o.Response, &f); err != nil || f.Code == "" {
			f = failure{Code: o.Code, Message: "refused earlier"}
		}
		return result{err: &tally.Error{Code: f.Code, Message: f.Message, Details: f.Details}, replayed: true}
	}
	var r Receipt
	if err := json.Unmarshal(o.Response, &r); err != nil {
		return result{err: &tally.Error{Code: tally.EINTERNAL, Message: "stored outcome is unreadable", Err: err}}
	}
	r.Replayed = true
	return result{receipt: r, replayed: true}
}

// isTransient reports whether err is a fault worth retrying later, as opposed to a refusal.
func isTransient(err error) bool {
	return tally.ErrorCode(err) == tally.EUNAVAILABLE || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled)
}
