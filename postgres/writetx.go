package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tally-ledger/tally"
)

// writeTx is the tally.WriteTx of one Update attempt. Every method is one statement or one pipelined
// batch, whatever the number of keys.
type writeTx struct {
	tx pgx.Tx
	// retry records that a statement lost a race (serialization failure, deadlock), so that Update runs
	// the attempt again even if fn returned some other error or none.
	retry bool
	// pending are the statements deferred to the next round trip (pipeline.go).
	pending []deferred
	// unlockedAccounts is DB.unlockedAccounts (tests only).
	unlockedAccounts bool
}

var _ tally.WriteTx = (*writeTx)(nil)

func (w *writeTx) fail(ctx context.Context, op string, err error) error {
	if isRetryable(err) {
		w.retry = true
	}
	return classify(ctx, op, err)
}

// claimRounds bounds how often ClaimOutcomes retries keys that were neither inserted nor found: a key
// whose conflicting row was deleted (purged, released) between the two statements.
const claimRounds = 3

// ClaimOutcomes inserts pending rows in key order, so that concurrent batches take the key locks in
// one global order. An insert that conflicts with an uncommitted claim waits for its transaction; under
// READ COMMITTED the following SELECT then sees the committed winner.
func (w *writeTx) ClaimOutcomes(ctx context.Context, claims []tally.Outcome) ([]tally.Outcome, error) {
	var existing []tally.Outcome
	pending := claims
	for round := 0; len(pending) > 0; round++ {
		if round == claimRounds {
			return nil, fmt.Errorf("postgres: claim outcomes: %d keys neither claimed nor found", len(pending))
		}
		claimed, err := w.insertClaims(ctx, pending)
		if err != nil {
			return nil, err
		}
		var lost []tally.OutcomeKey
		for _, c := range pending {
			if !claimed[c.OutcomeKey] {
				lost = append(lost, c.OutcomeKey)
			}
		}
		if len(lost) == 0 {
			break
		}
		found, err := w.outcomes(ctx, lost)
		if err != nil {
			return nil, err
		}
		existing = append(existing, found...)
		have := make(map[tally.OutcomeKey]bool, len(found))
		for _, o := range found {
			have[o.OutcomeKey] = true
		}
		var again []tally.Outcome
		for _, c := range pending {
			if !claimed[c.OutcomeKey] && !have[c.OutcomeKey] {
				again = append(again, c)
			}
		}
		pending = again
	}
	slices.SortFunc(existing, func(a, b tally.Outcome) int {
		return cmp.Or(cmp.Compare(a.Channel, b.Channel), cmp.Compare(a.Key, b.Key))
	})
	return existing, nil
}

func (w *writeTx) insertClaims(ctx context.Context, claims []tally.Outcome) (map[tally.OutcomeKey]bool, error) {
	channels := make([]string, len(claims))
	keys := make([]string, len(claims))
	hashes := make([]string, len(claims))
	times := make([]time.Time, len(claims))
	now := time.Now().UTC()
	for i, c := range claims {
		channels[i], keys[i], hashes[i], times[i] = c.Channel, c.Key, c.RequestHash, c.CreatedAt
		if c.CreatedAt.IsZero() {
			times[i] = now
		}
	}
	rows, err := w.query(ctx, "claim outcomes", `
		INSERT INTO processed_events (channel, event_id, request_hash, state, created_at)
		SELECT u.channel, u.event_id, u.request_hash, 'pending', u.created_at
		FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) AS u(channel, event_id, request_hash, created_at)
		ORDER BY u.channel COLLATE "C", u.event_id COLLATE "C"
		ON CONFLICT (channel, event_id) DO NOTHING
		RETURNING channel, event_id`,
		channels, keys, hashes, times)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	claimed := make(map[tally.OutcomeKey]bool, len(claims))
	for rows.Next() {
		var k tally.OutcomeKey
		if err := rows.Scan(&k.Channel, &k.Key); err != nil {
			return nil, w.fail(ctx, "claim outcomes", err)
		}
		claimed[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, w.fail(ctx, "claim outcomes", err)
	}
	return claimed, nil
}

func (w *writeTx) outcomes(ctx context.Context, keys []tally.OutcomeKey) ([]tally.Outcome, error) {
	channels, events := splitKeys(keys)
	rows, err := w.query(ctx, "claim outcomes", `
		SELECT `+outcomeColumns+`
		FROM processed_events p
		JOIN unnest($1::text[], $2::text[]) AS u(channel, event_id) ON p.channel = u.channel AND p.event_id = u.event_id
		ORDER BY p.channel, p.event_id`,
		channels, events)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, scanOutcome)
	if err != nil {
		return nil, w.fail(ctx, "claim outcomes", err)
	}
	return out, nil
}

// SaveOutcomes marks pending rows done with their code, transaction and response. A key without a
// pending row is an error of the caller: the outcome would be lost, or overwrite one already given.
func (w *writeTx) SaveOutcomes(ctx context.Context, outcomes []tally.Outcome) error {
	if len(outcomes) == 0 {
		return nil
	}
	channels := make([]string, len(outcomes))
	keys := make([]string, len(outcomes))
	codes := make([]string, len(outcomes))
	seqs := make([]int64, len(outcomes))
	responses := make([][]byte, len(outcomes))
	for i, o := range outcomes {
		channels[i], keys[i], codes[i], seqs[i], responses[i] = o.Channel, o.Key, string(o.Code), o.TxSeq, o.Response
	}
	w.pending = append(w.pending, deferred{op: "save outcomes", sql: `
		UPDATE processed_events p
		SET state = 'done', code = u.code, tx_seq = NULLIF(u.tx_seq, 0), response = u.response
		FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bytea[]) AS u(channel, event_id, code, tx_seq, response)
		WHERE p.channel = u.channel AND p.event_id = u.event_id AND p.state = 'pending'`,
		args: []any{channels, keys, codes, seqs, responses},
		check: func(tag pgconn.CommandTag) error {
			if n := tag.RowsAffected(); n != int64(len(outcomes)) {
				return tally.Errorf(tally.EINTERNAL, "%d of %d outcomes to save have no pending claim", int64(len(outcomes))-n, len(outcomes))
			}
			return nil
		}})
	return nil
}

// ReleaseClaims deletes pending claims; a saved outcome is never released.
func (w *writeTx) ReleaseClaims(ctx context.Context, keys []tally.OutcomeKey) error {
	if len(keys) == 0 {
		return nil
	}
	channels, events := splitKeys(keys)
	w.exec("release claims", `
		DELETE FROM processed_events p
		USING unnest($1::text[], $2::text[]) AS u(channel, event_id)
		WHERE p.channel = u.channel AND p.event_id = u.event_id AND p.state = 'pending'`,
		channels, events)
	return nil
}

// EnsureAccounts inserts missing customer accounts in id order (the lock order).
func (w *writeTx) EnsureAccounts(ctx context.Context, ids []string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	w.exec("ensure accounts", `
		INSERT INTO accounts (id, customer_hash, kind, status, created_at)
		SELECT u.id, u.id, 'customer', 'active', $2
		FROM unnest($1::text[]) AS u(id)
		ORDER BY u.id COLLATE "C"
		ON CONFLICT DO NOTHING`,
		ids, now.UTC())
	return nil
}

// LockAccounts locks the existing customer accounts among ids, in id order.
func (w *writeTx) LockAccounts(ctx context.Context, ids []string) (map[string]tally.Account, error) {
	out := make(map[string]tally.Account, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	lock := "FOR UPDATE"
	if w.unlockedAccounts {
		lock = ""
	}
	rows, err := w.query(ctx, "lock accounts", `
		SELECT id, status, balance, balance_version, last_tx_hash, created_at, pending, overdraft_limit, qualifying_bound, qualifying_from
		FROM accounts
		WHERE id = ANY($1) AND kind = 'customer'
		ORDER BY id
		`+lock,
		ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, w.fail(ctx, "lock accounts", err)
		}
		out[a.ID] = a
	}
	if err := rows.Err(); err != nil {
		return nil, w.fail(ctx, "lock accounts", err)
	}
	return out, nil
}

// UpdateAccounts writes balance, version, last hash and status of customer accounts. Updating a row
// that is not there is an error of the caller, which must have locked the account first.
func (w *writeTx) UpdateAccounts(ctx context.Context, accounts []tally.Account) error {
	if len(accounts) == 0 {
		return nil
	}
	ids := make([]string, len(accounts))
	balances := make([]int64, len(accounts))
	versions := make([]int64, len(accounts))
	hashes := make([]string, len(accounts))
	statuses := make([]string, len(accounts))
	pending := make([]int64, len(accounts))
	overdraft := make([]int64, len(accounts))
	bounds := make([]int64, len(accounts))
	from := make([]*time.Time, len(accounts))
	for i, a := range accounts {
		ids[i], balances[i], versions[i], hashes[i], statuses[i] = a.ID, a.Balance, a.BalanceVersion, a.LastTxHash, string(a.Status)
		pending[i], overdraft[i], bounds[i] = a.Pending, a.OverdraftLimit, a.QualifyingBound
		if !a.QualifyingFrom.IsZero() {
			t := a.QualifyingFrom.UTC()
			from[i] = &t
		}
	}
	w.pending = append(w.pending, deferred{op: "update accounts", sql: `
		UPDATE accounts a
		SET balance = u.balance, balance_version = u.balance_version, last_tx_hash = u.last_tx_hash, status = u.status,
			pending = u.pending, overdraft_limit = u.overdraft_limit, qualifying_bound = u.qualifying_bound,
			qualifying_from = u.qualifying_from
		FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[],
			$9::timestamptz[])
			AS u(id, balance, balance_version, last_tx_hash, status, pending, overdraft_limit, qualifying_bound, qualifying_from)
		WHERE a.id = u.id AND a.kind = 'customer'`,
		args: []any{ids, balances, versions, hashes, statuses, pending, overdraft, bounds, from},
		mapErr: func(err error) error {
			return checkViolation(err, func() string {
				for _, a := range accounts {
					if !a.Status.Valid() {
						return fmt.Sprintf("status %q", a.Status)
					}
				}
				return "an account status"
			})
		},
		check: func(tag pgconn.CommandTag) error {
			if n := tag.RowsAffected(); n != int64(len(accounts)) {
				return tally.Errorf(tally.EINTERNAL, "%d of %d accounts to update are not existing customer accounts", int64(len(accounts))-n, len(accounts))
			}
			return nil
		}})
	return nil
}

// Transactions returns the given transactions with their postings.
func (w *writeTx) Transactions(ctx context.Context, seqs []int64) (map[int64]tally.Transaction, error) {
	out := make(map[int64]tally.Transaction, len(seqs))
	if len(seqs) == 0 {
		return out, nil
	}
	rows, err := w.query(ctx, "transactions", `
		SELECT `+joinedColumns+`
		FROM transactions t LEFT JOIN postings p ON p.seq = t.seq
		WHERE t.seq = ANY($1)
		ORDER BY t.seq, p.idx`,
		seqs)
	if err != nil {
		return nil, err
	}
	err = scanJoined(rows, func(t tally.Transaction) error {
		out[t.Seq] = t
		return nil
	})
	if err != nil {
		return nil, w.fail(ctx, "transactions", err)
	}
	return out, nil
}

// ReversedBy maps reversed seqs among seqs to the seq of their reversal.
func (w *writeTx) ReversedBy(ctx context.Context, seqs []int64) (map[int64]int64, error) {
	out := make(map[int64]int64)
	if len(seqs) == 0 {
		return out, nil
	}
	rows, err := w.query(ctx, "reversed by", `SELECT reverses_seq, seq FROM transactions WHERE reverses_seq = ANY($1)`, seqs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var reversed, by int64
		if err := rows.Scan(&reversed, &by); err != nil {
			return nil, w.fail(ctx, "reversed by", err)
		}
		out[reversed] = by
	}
	if err := rows.Err(); err != nil {
		return nil, w.fail(ctx, "reversed by", err)
	}
	return out, nil
}

// NextSeqs takes n numbers from ledger_seq. The sequence has no per-session cache, so numbers grow in
// the order they are taken across sessions.
func (w *writeTx) NextSeqs(ctx context.Context, n int) ([]int64, error) {
	if n < 0 {
		return nil, tally.Errorf(tally.EINVALID, "cannot reserve %d sequence numbers", n)
	}
	if n == 0 {
		return nil, nil
	}
	rows, err := w.query(ctx, "next seqs", `SELECT nextval('ledger_seq') FROM generate_series(1, $1)`, n)
	if err != nil {
		return nil, err
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, w.fail(ctx, "next seqs", err)
	}
	slices.Sort(seqs)
	return seqs, nil
}

// InsertTransactions writes the transactions and then their postings (deferred: see pipeline.go).
func (w *writeTx) InsertTransactions(ctx context.Context, txs []tally.Transaction) error {
	if len(txs) == 0 {
		return nil
	}
	n := len(txs)
	var (
		seqs      = make([]int64, n)
		kinds     = make([]string, n)
		accounts  = make([]string, n)
		channels  = make([]string, n)
		keys      = make([]string, n)
		requests  = make([]string, n)
		amounts   = make([]int64, n)
		reasons   = make([]string, n)
		actors    = make([]string, n)
		metadata  = make([]string, n)
		reverses  = make([]int64, n)
		createdAt = make([]time.Time, n)
		hashes    = make([]string, n)

		pSeqs     []int64
		pIdx      []int32
		pAccounts []string
		pAmounts  []int64
	)
	for i, t := range txs {
		seqs[i], kinds[i], accounts[i], channels[i], keys[i] = t.Seq, string(t.Kind), t.AccountID, t.Channel, t.IdempotencyKey
		requests[i], amounts[i], reasons[i], actors[i], metadata[i] = t.RequestHash, t.Amount, t.Reason, t.Actor, string(t.Metadata)
		reverses[i], createdAt[i], hashes[i] = t.ReversesSeq, t.CreatedAt.UTC(), t.Hash
		for j, p := range t.Postings {
			pSeqs = append(pSeqs, t.Seq)
			pIdx = append(pIdx, int32(j))
			pAccounts = append(pAccounts, p.AccountID)
			pAmounts = append(pAmounts, p.Amount)
		}
	}
	conflict := func(err error) error {
		if code, constraint := pgCode(err); code == codeUniqueViolation {
			return &tally.Error{Code: tally.ECONFLICT, Message: conflictMessage(constraint), Err: err}
		}
		return checkViolation(err, func() string {
			for _, t := range txs {
				if !t.Kind.Valid() {
					return fmt.Sprintf("transaction kind %q", t.Kind)
				}
			}
			return "a transaction kind"
		})
	}
	w.pending = append(w.pending, deferred{op: "insert transactions", mapErr: conflict, sql: `
		INSERT INTO transactions (seq, kind, account_id, channel, idempotency_key, request_hash, amount,
			reason, actor, metadata, reverses_seq, created_at, hash)
		SELECT u.seq, u.kind, u.account_id, u.channel, u.idempotency_key, u.request_hash, u.amount,
			u.reason, u.actor, u.metadata, NULLIF(u.reverses_seq, 0), u.created_at, u.hash
		FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
			$8::text[], $9::text[], $10::text[], $11::bigint[], $12::timestamptz[], $13::text[])
			AS u(seq, kind, account_id, channel, idempotency_key, request_hash, amount,
			reason, actor, metadata, reverses_seq, created_at, hash)`,
		args: []any{seqs, kinds, accounts, channels, keys, requests, amounts, reasons, actors, metadata, reverses, createdAt, hashes}})
	if len(pSeqs) > 0 {
		w.pending = append(w.pending, deferred{op: "insert postings", mapErr: conflict, sql: `
			INSERT INTO postings (seq, idx, account_id, amount)
			SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::bigint[])`,
			args: []any{pSeqs, pIdx, pAccounts, pAmounts}})
	}
	return nil
}

func conflictMessage(constraint string) string {
	switch constraint {
	case "transactions_idempotency_key":
		return "a transaction with this channel and idempotency key already exists"
	case "transactions_reverses_seq_key":
		return "the transaction has already been reversed"
	case "transactions_pkey":
		return "a transaction with this sequence number already exists"
	case "postings_pkey":
		return "a posting of this transaction already exists"
	}
	return "the transaction conflicts with a stored one"
}

type shardKey struct {
	account string
	shard   int
}

// AddSystemBalances adds the deltas to their shards in one upsert, in (account, shard) order. Deltas
// to the same shard are summed first: one statement cannot update a row twice.
func (w *writeTx) AddSystemBalances(ctx context.Context, deltas []tally.SystemDelta) error {
	sums := make(map[shardKey]int64, len(deltas))
	for _, d := range deltas {
		sums[shardKey{d.AccountID, d.Shard}] += d.Delta
	}
	merged := make([]shardKey, 0, len(sums))
	for k, sum := range sums {
		if sum != 0 {
			merged = append(merged, k)
		}
	}
	if len(merged) == 0 {
		return nil
	}
	slices.SortFunc(merged, func(a, b shardKey) int {
		return cmp.Or(cmp.Compare(a.account, b.account), cmp.Compare(a.shard, b.shard))
	})
	accounts := make([]string, len(merged))
	shards := make([]int32, len(merged))
	amounts := make([]int64, len(merged))
	for i, k := range merged {
		accounts[i], shards[i], amounts[i] = k.account, int32(k.shard), sums[k]
	}
	w.exec("add system balances", `
		INSERT INTO account_shards (account_id, shard, balance)
		SELECT u.account_id, u.shard, u.balance
		FROM unnest($1::text[], $2::int[], $3::bigint[]) AS u(account_id, shard, balance)
		ORDER BY u.account_id COLLATE "C", u.shard
		ON CONFLICT (account_id, shard) DO UPDATE SET balance = account_shards.balance + EXCLUDED.balance`,
		accounts, shards, amounts)
	return nil
}

func splitKeys(keys []tally.OutcomeKey) (channels, events []string) {
	channels = make([]string, len(keys))
	events = make([]string, len(keys))
	for i, k := range keys {
		channels[i], events[i] = k.Channel, k.Key
	}
	return channels, events
}
