package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tally-ledger/tally"
)

// lotColumns are the columns scanLot reads.
const lotColumns = `seq, account_id, points, remaining, pending_until, expires_at, created_at, activated_at`

// lotOrder is tally.LotLess in SQL.
const lotOrder = `expires_at ASC NULLS LAST, seq`

func scanLot(row pgx.Row) (tally.Lot, error) {
	var l tally.Lot
	err := row.Scan(&l.Seq, &l.AccountID, &l.Points, &l.Remaining, &l.PendingUntil, &l.ExpiresAt, &l.CreatedAt, &l.ActivatedAt)
	return utcLot(l), err
}

func utcLot(l tally.Lot) tally.Lot {
	l.CreatedAt = l.CreatedAt.UTC()
	for _, t := range []*time.Time{l.PendingUntil, l.ExpiresAt, l.ActivatedAt} {
		if t != nil {
			*t = t.UTC()
		}
	}
	return l
}

func collectLots(rows pgx.Rows) ([]tally.Lot, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.Lot, error) { return scanLot(row) })
}

// AccountLots returns the account's open lots in consumption order.
func (db *DB) AccountLots(ctx context.Context, accountID string) ([]tally.Lot, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+lotColumns+` FROM lots WHERE account_id = $1 AND remaining > 0 ORDER BY `+lotOrder, accountID)
	if err != nil {
		return nil, classify(ctx, "account lots", err)
	}
	lots, err := collectLots(rows)
	if err != nil {
		return nil, classify(ctx, "account lots", err)
	}
	return lots, nil
}

// Lot returns one lot. ENOTFOUND when absent.
func (db *DB) Lot(ctx context.Context, seq int64) (tally.Lot, error) {
	l, err := scanLot(db.pool.QueryRow(ctx, `SELECT `+lotColumns+` FROM lots WHERE seq = $1`, seq))
	if errors.Is(err, pgx.ErrNoRows) {
		return tally.Lot{}, tally.Errorf(tally.ENOTFOUND, "lot %d not found", seq)
	}
	if err != nil {
		return tally.Lot{}, classify(ctx, "lot", err)
	}
	return l, nil
}

// NextExpiry returns the soonest expiry of the account's open lots.
func (db *DB) NextExpiry(ctx context.Context, accountID string) (tally.LotExpiry, error) {
	var (
		e  tally.LotExpiry
		at *time.Time
	)
	err := db.pool.QueryRow(ctx, `
		WITH soonest AS (
			SELECT min(expires_at) AS at FROM lots
			WHERE account_id = $1 AND remaining > 0 AND expires_at IS NOT NULL
		)
		SELECT soonest.at, COALESCE((SELECT sum(remaining) FROM lots
			WHERE account_id = $1 AND remaining > 0 AND expires_at = soonest.at), 0)::bigint
		FROM soonest`, accountID).Scan(&at, &e.Points)
	if err != nil {
		return tally.LotExpiry{}, classify(ctx, "next expiry", err)
	}
	if at == nil {
		return tally.LotExpiry{}, tally.Errorf(tally.ENOTFOUND, "no points of this account expire")
	}
	e.At = at.UTC()
	return e, nil
}

// LotUsesOf returns the lots the given debits consumed.
func (db *DB) LotUsesOf(ctx context.Context, debitSeqs []int64) (map[int64][]tally.LotUse, error) {
	return lotUses(ctx, db.pool, debitSeqs)
}

const lotUsesQuery = `SELECT debit_seq, lot_seq, points FROM lot_uses WHERE debit_seq = ANY($1) ORDER BY debit_seq, lot_seq`

func lotUses(ctx context.Context, pool *pgxpool.Pool, debitSeqs []int64) (map[int64][]tally.LotUse, error) {
	out := map[int64][]tally.LotUse{}
	if len(debitSeqs) == 0 {
		return out, nil
	}
	rows, err := pool.Query(ctx, lotUsesQuery, debitSeqs)
	if err != nil {
		return nil, classify(ctx, "lot uses", err)
	}
	if err := collectLotUses(rows, out); err != nil {
		return nil, classify(ctx, "lot uses", err)
	}
	return out, nil
}

func collectLotUses(rows pgx.Rows, out map[int64][]tally.LotUse) error {
	uses, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.LotUse, error) {
		var u tally.LotUse
		err := row.Scan(&u.DebitSeq, &u.LotSeq, &u.Points)
		return u, err
	})
	for _, u := range uses {
		out[u.DebitSeq] = append(out[u.DebitSeq], u)
	}
	return err
}

// LapsedLots returns the lapsed open lots of up to limit accounts after afterAccount.
func (db *DB) LapsedLots(ctx context.Context, now time.Time, afterAccount string, limit int) ([]tally.LapsedLots, error) {
	if limit <= 0 {
		return nil, tally.Errorf(tally.EINVALID, "limit must be positive")
	}
	// The page's lots are read per account (LATERAL, through lots_open): the generic plan that pgx's
	// prepared statement settles on would otherwise join the page's accounts to a sequential scan of
	// every lapsed lot (and of accounts), once per page, which makes the job quadratic in the number of
	// lots. OFFSET 0 and the scalar subquery keep the planner from flattening them back into such joins.
	rows, err := db.pool.Query(ctx, `
		WITH accts AS MATERIALIZED (
			SELECT DISTINCT account_id FROM lots
			WHERE remaining > 0 AND expires_at IS NOT NULL AND expires_at <= $1 AND account_id > $2
			ORDER BY account_id LIMIT $3
		)
		SELECT l.seq, l.account_id, l.points, l.remaining, l.pending_until, l.expires_at, l.created_at, l.activated_at,
			(SELECT a.balance_version FROM accounts a WHERE a.id = c.account_id)
		FROM accts c
		CROSS JOIN LATERAL (
			SELECT * FROM lots l
			WHERE l.account_id = c.account_id AND l.remaining > 0 AND l.expires_at IS NOT NULL AND l.expires_at <= $1
			OFFSET 0
		) l
		ORDER BY l.account_id, l.seq`, now.UTC(), afterAccount, limit)
	if err != nil {
		return nil, classify(ctx, "lapsed lots", err)
	}
	defer rows.Close()
	var out []tally.LapsedLots
	for rows.Next() {
		var l tally.Lot
		var version int64
		if err := rows.Scan(&l.Seq, &l.AccountID, &l.Points, &l.Remaining, &l.PendingUntil, &l.ExpiresAt, &l.CreatedAt, &l.ActivatedAt, &version); err != nil {
			return nil, classify(ctx, "lapsed lots", err)
		}
		l = utcLot(l)
		if n := len(out); n == 0 || out[n-1].AccountID != l.AccountID {
			out = append(out, tally.LapsedLots{AccountID: l.AccountID, BalanceVersion: version})
		}
		out[len(out)-1].Lots = append(out[len(out)-1].Lots, l)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "lapsed lots", err)
	}
	return out, nil
}

// DuePendingLots returns pending lots due at now.
func (db *DB) DuePendingLots(ctx context.Context, now time.Time, afterSeq int64, limit int) ([]tally.Lot, error) {
	if limit <= 0 {
		return nil, tally.Errorf(tally.EINVALID, "limit must be positive")
	}
	rows, err := db.pool.Query(ctx, `SELECT `+lotColumns+` FROM lots
		WHERE pending_until IS NOT NULL AND pending_until <= $1 AND seq > $2
		ORDER BY seq LIMIT $3`, now.UTC(), afterSeq, limit)
	if err != nil {
		return nil, classify(ctx, "due pending lots", err)
	}
	lots, err := collectLots(rows)
	if err != nil {
		return nil, classify(ctx, "due pending lots", err)
	}
	return lots, nil
}

// ScanLots calls fn for every lot ordered by (AccountID, Seq).
func (a auditor) ScanLots(ctx context.Context, fn func(tally.Lot) error) error {
	rows, err := a.db.pool.Query(ctx, `SELECT `+lotColumns+` FROM lots ORDER BY account_id, seq`)
	if err != nil {
		return classify(ctx, "scan lots", err)
	}
	defer rows.Close()
	for rows.Next() {
		l, err := scanLot(rows)
		if err != nil {
			return classify(ctx, "scan lots", err)
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	return classify(ctx, "scan lots", rows.Err())
}

// OpenLots returns the open lots of the given accounts in consumption order.
func (w *writeTx) OpenLots(ctx context.Context, accountIDs []string) (map[string][]tally.Lot, error) {
	out := make(map[string][]tally.Lot, len(accountIDs))
	if len(accountIDs) == 0 {
		return out, nil
	}
	rows, err := w.query(ctx, "open lots", `SELECT `+lotColumns+` FROM lots
		WHERE account_id = ANY($1) AND remaining > 0
		ORDER BY account_id, `+lotOrder, accountIDs)
	if err != nil {
		return nil, err
	}
	lots, err := collectLots(rows)
	if err != nil {
		return nil, w.fail(ctx, "open lots", err)
	}
	for _, l := range lots {
		out[l.AccountID] = append(out[l.AccountID], l)
	}
	return out, nil
}

// LotsBySeq returns the given lots.
func (w *writeTx) LotsBySeq(ctx context.Context, seqs []int64) (map[int64]tally.Lot, error) {
	out := make(map[int64]tally.Lot, len(seqs))
	if len(seqs) == 0 {
		return out, nil
	}
	rows, err := w.query(ctx, "lots", `SELECT `+lotColumns+` FROM lots WHERE seq = ANY($1)`, seqs)
	if err != nil {
		return nil, err
	}
	lots, err := collectLots(rows)
	if err != nil {
		return nil, w.fail(ctx, "lots", err)
	}
	for _, l := range lots {
		out[l.Seq] = l
	}
	return out, nil
}

// LotUses returns the lots the given debits consumed, read in the transaction.
func (w *writeTx) LotUses(ctx context.Context, debitSeqs []int64) (map[int64][]tally.LotUse, error) {
	out := map[int64][]tally.LotUse{}
	if len(debitSeqs) == 0 {
		return out, nil
	}
	rows, err := w.query(ctx, "lot uses", lotUsesQuery, debitSeqs)
	if err != nil {
		return nil, err
	}
	if err := collectLotUses(rows, out); err != nil {
		return nil, w.fail(ctx, "lot uses", err)
	}
	return out, nil
}

func lotTimes(ts []*time.Time) []*time.Time {
	out := make([]*time.Time, len(ts))
	for i, t := range ts {
		if t != nil {
			u := t.UTC()
			out[i] = &u
		}
	}
	return out
}

// InsertLots writes new lots (deferred).
func (w *writeTx) InsertLots(ctx context.Context, lots []tally.Lot) error {
	if len(lots) == 0 {
		return nil
	}
	n := len(lots)
	seqs, accounts, points, remaining := make([]int64, n), make([]string, n), make([]int64, n), make([]int64, n)
	pendingUntil, expiresAt, created := make([]*time.Time, n), make([]*time.Time, n), make([]time.Time, n)
	for i, l := range lots {
		seqs[i], accounts[i], points[i], remaining[i] = l.Seq, l.AccountID, l.Points, l.Remaining
		pendingUntil[i], expiresAt[i], created[i] = l.PendingUntil, l.ExpiresAt, l.CreatedAt.UTC()
	}
	w.pending = append(w.pending, deferred{op: "insert lots", sql: `
		INSERT INTO lots (seq, account_id, points, remaining, pending_until, expires_at, created_at)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[],
			$6::timestamptz[], $7::timestamptz[])`,
		args:   []any{seqs, accounts, points, remaining, lotTimes(pendingUntil), lotTimes(expiresAt), created},
		mapErr: lotViolation("insert lots")})
	return nil
}

const codeForeignKeyViolation = "23503"

// lotViolation maps the lots' constraints: a reused seq is ECONFLICT, anything else a broken ledger.
func lotViolation(op string) func(error) error {
	return func(err error) error {
		code, constraint := pgCode(err)
		switch code {
		case codeUniqueViolation:
			return &tally.Error{Code: tally.ECONFLICT, Message: "a lot or lot use with this number already exists", Err: err}
		case codeCheckViolation, codeForeignKeyViolation:
			return &tally.Error{Code: tally.EINTERNAL, Message: op + ": the database refused " + constraint, Err: err}
		}
		return nil
	}
}

// UpdateLots writes the remaining points, pending state and activation time of lots (deferred).
func (w *writeTx) UpdateLots(ctx context.Context, lots []tally.Lot) error {
	if len(lots) == 0 {
		return nil
	}
	n := len(lots)
	seqs, remaining := make([]int64, n), make([]int64, n)
	pendingUntil, activated := make([]*time.Time, n), make([]*time.Time, n)
	for i, l := range lots {
		seqs[i], remaining[i], pendingUntil[i], activated[i] = l.Seq, l.Remaining, l.PendingUntil, l.ActivatedAt
	}
	w.pending = append(w.pending, deferred{op: "update lots", sql: `
		UPDATE lots l SET remaining = u.remaining, pending_until = u.pending_until, activated_at = u.activated_at
		FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::timestamptz[]) AS u(seq, remaining, pending_until, activated_at)
		WHERE l.seq = u.seq`,
		args:   []any{seqs, remaining, lotTimes(pendingUntil), lotTimes(activated)},
		mapErr: lotViolation("update lots"),
		check: func(tag pgconn.CommandTag) error {
			if got := tag.RowsAffected(); got != int64(n) {
				return tally.Errorf(tally.EINTERNAL, "%d of %d lots to update do not exist", int64(n)-got, n)
			}
			return nil
		}})
	return nil
}

// InsertLotUses records which lots debits consumed (deferred).
func (w *writeTx) InsertLotUses(ctx context.Context, uses []tally.LotUse) error {
	if len(uses) == 0 {
		return nil
	}
	n := len(uses)
	debits, lots, points := make([]int64, n), make([]int64, n), make([]int64, n)
	for i, u := range uses {
		debits[i], lots[i], points[i] = u.DebitSeq, u.LotSeq, u.Points
	}
	w.pending = append(w.pending, deferred{op: "insert lot uses", sql: `
		INSERT INTO lot_uses (debit_seq, lot_seq, points) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])`,
		args: []any{debits, lots, points}, mapErr: lotViolation("insert lot uses")})
	return nil
}

// lapsedPointsQuery sums the lapsed remainders of active open lots by account (the lots_open index).
const lapsedPointsQuery = `SELECT account_id, sum(remaining)::bigint FROM lots
	WHERE account_id = ANY($1) AND remaining > 0 AND expires_at <= $2 AND pending_until IS NULL
	GROUP BY account_id`

// LapsedPoints returns the lapsed, unposted remainder of the account's active lots.
func (db *DB) LapsedPoints(ctx context.Context, accountID string, now time.Time) (int64, error) {
	var n int64
	err := db.pool.QueryRow(ctx, `SELECT COALESCE(sum(remaining), 0)::bigint FROM lots
		WHERE account_id = $1 AND remaining > 0 AND expires_at <= $2 AND pending_until IS NULL`, accountID, now).Scan(&n)
	if err != nil {
		return 0, classify(ctx, "lapsed points", err)
	}
	return n, nil
}

// LapsedPointsOf returns the lapsed, unposted remainders of the given accounts' active lots.
func (w *writeTx) LapsedPointsOf(ctx context.Context, accountIDs []string, now time.Time) (map[string]int64, error) {
	out := map[string]int64{}
	if len(accountIDs) == 0 {
		return out, nil
	}
	rows, err := w.query(ctx, "lapsed points", lapsedPointsQuery, accountIDs, now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, w.fail(ctx, "lapsed points", err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, w.fail(ctx, "lapsed points", err)
	}
	return out, nil
}
