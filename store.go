package tally

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// Store is the storage a ledger runs on. Adapters (sqlite, postgres) implement it; the business rules
// live in package ledger, written once over this interface.
//
// Every method returns a *Error with code EUNAVAILABLE when the database cannot be reached or reports a
// transient fault, so that callers can answer 503 and retry.
type Store interface {
	// Update runs fn in one read-write database transaction and commits it. When the database reports a
	// serialization failure or a deadlock, Update rolls back and calls fn again, a bounded number of
	// times; fn must therefore derive everything from what it reads through tx. Customer accounts are
	// locked by LockAccounts until the transaction ends (SELECT ... FOR UPDATE on PostgreSQL; SQLite has
	// a single writer).
	Update(ctx context.Context, fn func(ctx context.Context, tx WriteTx) error) error

	// Account returns one account (customer or system; a system account's Balance is the sum of its
	// shards). ENOTFOUND when absent.
	Account(ctx context.Context, id string) (Account, error)
	// Transaction returns one transaction with its postings. ENOTFOUND when absent.
	Transaction(ctx context.Context, seq int64) (Transaction, error)
	// TransactionByKey returns the transaction written under an idempotency key, with its postings.
	// ENOTFOUND when none was.
	TransactionByKey(ctx context.Context, channel, key string) (Transaction, error)
	// History returns up to limit transactions of a customer account with Seq < beforeSeq (all when
	// beforeSeq <= 0), newest first, with postings.
	History(ctx context.Context, accountID string, beforeSeq int64, limit int) ([]Transaction, error)

	// Outcome returns the remembered outcome of an idempotency key. ENOTFOUND when absent or still pending.
	Outcome(ctx context.Context, channel, key string) (Outcome, error)
	// PurgeOutcomes deletes the outcomes of events (channels that begin with EventChannelPrefix) created
	// before the given time and returns how many it deleted. Explicit transactions' outcomes are kept:
	// they are the API's idempotency record, which promises a replay of every key.
	PurgeOutcomes(ctx context.Context, before time.Time) (int64, error)

	// Rewards lists the reward catalog ordered by id; PutReward inserts or replaces one.
	Rewards(ctx context.Context) ([]Reward, error)
	PutReward(ctx context.Context, r Reward) error
	// Redemption returns one redemption by receipt id. ENOTFOUND when absent.
	Redemption(ctx context.Context, receiptID string) (Redemption, error)
	// CatalogStore administers the catalog and the fulfillment queue (see catalog.go).
	CatalogStore
	// ReportStore reads the aggregates of the finance reports from one snapshot (see report.go).
	ReportStore
	// LotStore reads the points lots (see lot_store.go).
	LotStore
	// ErasureStore re-keys forgotten customers' accounts (see erasure.go).
	ErasureStore
	// WebhookStore keeps webhook subscriptions and their outbox (see webhook.go).
	WebhookStore

	// Audit reads the whole ledger for verification; it never writes.
	Audit() Auditor

	// ChainSeal returns the stored seal of the chains' unkeyed part; ENOTFOUND when none is stored yet.
	ChainSeal(ctx context.Context) (ChainSeal, error)
	// InitChainSeal stores the seal that seal returns for the highest sequence number handed out so far,
	// unless a seal is stored already, in one transaction; it returns the stored seal either way.
	InitChainSeal(ctx context.Context, seal func(highestSeq int64) ChainSeal) (ChainSeal, error)
	// Checkpoint runs fn in one transaction, which sees committed ledger writes while they go on.
	// Checkpoints are serialised: a concurrent Checkpoint, from any process, waits for this one to end.
	Checkpoint(ctx context.Context, fn func(ctx context.Context, tx CheckpointTx) error) error

	// Ping checks that the database answers; MigrationsCurrent that every embedded migration is applied.
	Ping(ctx context.Context) error
	MigrationsCurrent(ctx context.Context) (bool, error)
	Close() error
}

// Auditor reads the ledger in the orders that verification needs.
type Auditor interface {
	// CountTransactions returns how many transactions the ledger holds (for progress reports).
	CountTransactions(ctx context.Context) (int64, error)
	// ScanAccounts calls fn for every account ordered by id. A system account's Balance is the sum of its
	// shards.
	ScanAccounts(ctx context.Context, fn func(Account) error) error
	// ScanTransactions calls fn for every transaction with its postings (in posting order), ordered by
	// (AccountID, Seq). A transaction whose postings were all deleted is still reported, with none.
	ScanTransactions(ctx context.Context, fn func(Transaction) error) error
	// ChainSeal is Store.ChainSeal.
	ChainSeal(ctx context.Context) (ChainSeal, error)
	// ScanRecordedHeads calls fn for every head recorded by the checkpoints numbered up to through,
	// ordered by checkpoint number, then account id.
	ScanRecordedHeads(ctx context.Context, through int64, fn func(checkpoint int64, h Head) error) error
	// ScanLots calls fn for every lot, ordered by (AccountID, Seq).
	ScanLots(ctx context.Context, fn func(Lot) error) error
	// QualifyingShortfalls calls fn, in account order, for every customer account whose qualifying bound
	// (Account.QualifyingBound) is below its qualifying points (its accruals not reversed) since the
	// bound's start: the accounts whose tier upgrades the ledger could miss.
	QualifyingShortfalls(ctx context.Context, fn func(account string, bound, points int64) error) error
	// StrayAccrualRules calls fn, in seq order, for every rule line (which rule version paid what of an
	// accrual) whose seq is no accrual: account and kind are its transaction's, both "" when there is none.
	StrayAccrualRules(ctx context.Context, fn func(seq int64, rule, account string, kind Kind) error) error
	// Erasures is Store.Erasures: which checkpoints' roots an erasure re-keyed away.
	Erasures(ctx context.Context) ([]Erasure, error)
}

// CheckpointTx is the work of one checkpoint (see Checkpoint).
type CheckpointTx interface {
	// LastCheckpoint returns the number of the newest recorded checkpoint, 0 when none.
	LastCheckpoint(ctx context.Context) (int64, error)
	// MaxSeq returns the highest committed transaction number, 0 when none.
	MaxSeq(ctx context.Context) (int64, error)
	// ScanHeads calls fn for every customer account in id order, from one snapshot, with its current head
	// and the head recorded for it by the newest checkpoint that recorded one (nil when none did).
	ScanHeads(ctx context.Context, fn func(current Head, recorded *Head) error) error
	// RecordCheckpoint stores c and the heads it recorded (those that changed since they were last
	// recorded). ECONFLICT when c.No is taken.
	RecordCheckpoint(ctx context.Context, c Checkpoint, changed []Head) error
}

// OutcomeKey names an idempotency record: the key within a channel (an event source, or "api").
type OutcomeKey struct {
	Channel string
	Key     string
}

// EventChannelPrefix begins the stored channel of every event's write ("event:genesys") and of no other:
// explicit channels are plain tokens without a colon, so events and explicit transactions never share an
// idempotency namespace, however either is spelled.
const EventChannelPrefix = "event:"

// IsEventChannel reports whether a stored channel is an event's.
func IsEventChannel(channel string) bool { return strings.HasPrefix(channel, EventChannelPrefix) }

// Outcome is what an idempotent write produced, remembered so that a replay returns it unchanged.
// It is the processed_events row.
type Outcome struct {
	OutcomeKey
	RequestHash string
	TxSeq       int64           // 0 when the write produced no transaction
	Code        Code            // "" for success
	Response    json.RawMessage // the result as first returned, replayed verbatim
	CreatedAt   time.Time
}

// SystemDelta adds Delta to one shard of a system account.
type SystemDelta struct {
	AccountID string
	Shard     int
	Delta     int64
}

// WriteTx is the set of row operations a ledger write is made of. Methods that take several keys expect
// them sorted and distinct (accounts by id, outcomes by channel then key) so that concurrent transactions
// lock rows in one global order: outcome claims first, then customer accounts, then system shards.
//
// Every store keeps the contracts below alike; storetest holds them to it. An error of a method fails the
// whole write: fn returns it and Update rolls back. A call that the ledger's own logic should never make
// (updating an account it did not lock, saving an outcome it did not claim, a balance below zero) is
// EINTERNAL: the ledger is broken, not the request. Stores may defer writes and send them with the next
// read or at commit (PostgreSQL does), so an error of UpdateAccounts, SaveOutcomes, ReleaseClaims,
// EnsureAccounts, InsertTransactions or AddSystemBalances may surface from a later method or from Update.
type WriteTx interface {
	// ClaimOutcomes inserts a pending outcome row for every key that has none and returns, in key order,
	// the stored outcomes (pending or done) of keys that already had one. On PostgreSQL a key claimed by
	// a concurrent uncommitted transaction blocks until that transaction ends; the unique key settles
	// races between replicas.
	ClaimOutcomes(ctx context.Context, claims []Outcome) (existing []Outcome, err error)
	// SaveOutcomes fills in rows claimed as pending with their final outcome. A key without a pending row
	// (never claimed, released, or saved before) is EINTERNAL: the outcome would be lost, or would
	// overwrite one already given.
	SaveOutcomes(ctx context.Context, outcomes []Outcome) error
	// ReleaseClaims deletes the pending rows of keys whose outcome is not to be remembered. Keys without a
	// row, and saved outcomes, are left as they are without error: a saved outcome is never released.
	ReleaseClaims(ctx context.Context, keys []OutcomeKey) error

	// EnsureAccounts creates the customer accounts that do not exist yet (active, zero balance, created
	// at now). Accounts that exist, customer or system, are left unchanged, so calling it again is harmless.
	EnsureAccounts(ctx context.Context, ids []string, now time.Time) error
	// LockAccounts locks and returns the customer accounts that exist among ids; absent ids and system
	// accounts are left out.
	LockAccounts(ctx context.Context, ids []string) (map[string]Account, error)
	// UpdateAccounts writes the balance, pending, overdraft limit, version, last hash and status of accounts that LockAccounts
	// returned in this transaction. An id that is not an existing customer account is EINTERNAL; so is a
	// negative balance (InvariantViolated, NegativeBalance: the database's BalanceConstraint refused it);
	// a status the schema does not know is EINVALID.
	UpdateAccounts(ctx context.Context, accounts []Account) error

	// Transactions returns the given transactions with their postings in order; absent ones are left out.
	Transactions(ctx context.Context, seqs []int64) (map[int64]Transaction, error)
	// ReversedBy maps each given seq that has been reversed to the seq of its reversal; the others are
	// left out.
	ReversedBy(ctx context.Context, seqs []int64) (map[int64]int64, error)
	// NextSeqs reserves n distinct ledger sequence numbers, ascending, none for n = 0; a negative n is
	// EINVALID. Numbers reserved after a customer account is locked are greater than every number used by
	// earlier writers of that account. Numbers of a rolled-back transaction may be reused or skipped.
	NextSeqs(ctx context.Context, n int) ([]int64, error)
	// InsertTransactions writes transactions and their postings. A reused Seq, (Channel, IdempotencyKey)
	// or ReversesSeq is a unique violation, reported as ECONFLICT; a kind the schema does not know is
	// EINVALID.
	InsertTransactions(ctx context.Context, txs []Transaction) error
	// AddSystemBalances adds deltas to system account shards, creating shards as needed. Deltas to one
	// shard in one call add up.
	AddSystemBalances(ctx context.Context, deltas []SystemDelta) error

	// LockRewards locks and returns the rewards that exist among ids (sorted); a reward's Inventory is the
	// number of units left (nil: unlimited). Rewards are locked after customer accounts.
	LockRewards(ctx context.Context, ids []string) (map[string]Reward, error)
	// FreeCoupons returns up to n codes of a reward that no redemption holds, in code order. The reward
	// must be locked, so that no concurrent transaction hands out the same codes.
	FreeCoupons(ctx context.Context, rewardID string, n int) ([]string, error)
	// AddInventory adds each delta to its reward's inventory (a negative delta takes units); rewards with
	// unlimited inventory are left unlimited. An inventory that would go below zero is EINTERNAL.
	AddInventory(ctx context.Context, deltas map[string]int64) error
	// InsertRedemptions writes redemptions after their transactions, and gives each one with a CouponCode
	// that code. ECONFLICT when a receipt id or transaction is reused; EINTERNAL when a code is not free.
	InsertRedemptions(ctx context.Context, rs []Redemption) error
	// RedemptionsOf returns the redemptions of the given transactions, by transaction; absent ones are
	// left out.
	RedemptionsOf(ctx context.Context, seqs []int64) (map[int64]Redemption, error)
	// SetRedemptionStatus sets the status of redemptions. EINTERNAL when one does not exist.
	SetRedemptionStatus(ctx context.Context, receiptIDs []string, status string, now time.Time) error

	// LotWriteTx writes the points lots (see lot_store.go).
	LotWriteTx
	// TierWriteTx keeps earning-rule usage and tiers (see earningrules.go).
	TierWriteTx
	// InsertEvents writes events to the webhook outbox: one pending delivery, due at the event's time, for
	// each active subscription of its type (and, for points.expiring_soon, of its Days). An event already
	// written for a subscription is left as it was. With no subscription it writes nothing.
	InsertEvents(ctx context.Context, events []Event) error
	// EventsWanted starts finding out whether any webhook subscription is active, so that a writer need
	// not build the events of a batch that nobody subscribes to; the returned func answers. The answer is
	// as of a moment between this call and the answer (a store may send the question with its next read).
	// A subscription therefore receives the events of the ledger writes that start after it is created.
	EventsWanted(ctx context.Context) func() (bool, error)
}
