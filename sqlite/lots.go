package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tally-ledger/tally"
)

// lotColumns are the columns scanLot reads.
const lotColumns = `seq, account_id, points, remaining, pending_until, expires_at, created_at, activated_at`

// lotOrder is tally.LotLess in SQL: soonest expiry first, lots that never expire last.
const lotOrder = `expires_at IS NULL, expires_at, seq`

func scanLot(s scanner) (tally.Lot, error) {
	var (
		l                           tally.Lot
		created                     int64
		pending, expires, activated sql.NullInt64
	)
	if err := s.Scan(&l.Seq, &l.AccountID, &l.Points, &l.Remaining, &pending, &expires, &created, &activated); err != nil {
		return l, err
	}
	l.CreatedAt = fromMicros(created)
	l.PendingUntil, l.ExpiresAt, l.ActivatedAt = optMicros(pending), optMicros(expires), optMicros(activated)
	return l, nil
}

func optMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

func nullMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return micros(*t)
}

func queryLots(ctx context.Context, q querier, query string, args ...any) ([]tally.Lot, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var lots []tally.Lot
	for rows.Next() {
		l, err := scanLot(rows)
		if err != nil {
			return nil, err
		}
		lots = append(lots, l)
	}
	return lots, rows.Err()
}

// AccountLots returns the account's open lots in consumption order.
func (db *DB) AccountLots(ctx context.Context, accountID string) ([]tally.Lot, error) {
	lots, err := queryLots(ctx, db.reader, `SELECT `+lotColumns+` FROM lots
		WHERE account_id = ? AND remaining > 0 ORDER BY `+lotOrder, accountID)
	return lots, wrap(err, "account lots")
}

// Lot returns one lot. ENOTFOUND when absent.
func (db *DB) Lot(ctx context.Context, seq int64) (tally.Lot, error) {
	l, err := scanLot(db.reader.QueryRowContext(ctx, `SELECT `+lotColumns+` FROM lots WHERE seq = ?`, seq))
	if errors.Is(err, sql.ErrNoRows) {
		return tally.Lot{}, tally.Errorf(tally.ENOTFOUND, "lot %d not found", seq)
	}
	return l, wrap(err, "lot")
}

// NextExpiry returns the soonest expiry of the account's open lots.
func (db *DB) NextExpiry(ctx context.Context, accountID string) (tally.LotExpiry, error) {
	var at sql.NullInt64
	var points int64
	err := db.reader.QueryRowContext(ctx, `
		SELECT expires_at, SUM(remaining) FROM lots
		WHERE account_id = ? AND remaining > 0 AND expires_at = (
			SELECT MIN(expires_at) FROM lots WHERE account_id = ? AND remaining > 0 AND expires_at IS NOT NULL)
		GROUP BY expires_at`, accountID, accountID).Scan(&at, &points)
	if errors.Is(err, sql.ErrNoRows) || err == nil && !at.Valid {
		return tally.LotExpiry{}, tally.Errorf(tally.ENOTFOUND, "no points of this account expire")
	}
	if err != nil {
		return tally.LotExpiry{}, wrap(err, "next expiry")
	}
	return tally.LotExpiry{Points: points, At: fromMicros(at.Int64)}, nil
}

// LotUsesOf returns the lots the given debits consumed.
func (db *DB) LotUsesOf(ctx context.Context, debitSeqs []int64) (map[int64][]tally.LotUse, error) {
	out, err := lotUses(ctx, db.reader, debitSeqs)
	return out, wrap(err, "lot uses")
}

func lotUses(ctx context.Context, q querier, debitSeqs []int64) (map[int64][]tally.LotUse, error) {
	out := map[int64][]tally.LotUse{}
	for lo, hi := range chunks(len(debitSeqs), inBatch) {
		args := make([]any, 0, hi-lo)
		for _, s := range debitSeqs[lo:hi] {
			args = append(args, s)
		}
		rows, err := q.QueryContext(ctx, `SELECT debit_seq, lot_seq, points FROM lot_uses
			WHERE debit_seq IN (`+list(hi-lo, "?")+`) ORDER BY debit_seq, lot_seq`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var u tally.LotUse
			if err := rows.Scan(&u.DebitSeq, &u.LotSeq, &u.Points); err != nil {
				rows.Close()
				return nil, err
			}
			out[u.DebitSeq] = append(out[u.DebitSeq], u)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// LapsedLots returns the lapsed open lots of up to limit accounts after afterAccount.
func (db *DB) LapsedLots(ctx context.Context, now time.Time, afterAccount string, limit int) ([]tally.LapsedLots, error) {
	if limit <= 0 {
		return nil, tally.Errorf(tally.EINVALID, "limit must be positive")
	}
	var out []tally.LapsedLots
	err := db.readTx(ctx, func(tx *sql.Tx) error {
		out = nil
		lots, err := queryLots(ctx, tx, `SELECT `+lotColumns+` FROM lots
			WHERE account_id IN (
				SELECT DISTINCT account_id FROM lots
				WHERE remaining > 0 AND expires_at IS NOT NULL AND expires_at <= ?1 AND account_id > ?2
				ORDER BY account_id LIMIT ?3)
			AND remaining > 0 AND expires_at IS NOT NULL AND expires_at <= ?1
			ORDER BY account_id, seq`, micros(now), afterAccount, limit)
		if err != nil {
			return err
		}
		for _, l := range lots {
			if n := len(out); n == 0 || out[n-1].AccountID != l.AccountID {
				var version int64
				if err := tx.QueryRowContext(ctx, `SELECT balance_version FROM accounts WHERE id = ?`, l.AccountID).Scan(&version); err != nil {
					return err
				}
				out = append(out, tally.LapsedLots{AccountID: l.AccountID, BalanceVersion: version})
			}
			out[len(out)-1].Lots = append(out[len(out)-1].Lots, l)
		}
		return nil
	})
	return out, wrap(err, "lapsed lots")
}

// DuePendingLots returns pending lots due at now.
func (db *DB) DuePendingLots(ctx context.Context, now time.Time, afterSeq int64, limit int) ([]tally.Lot, error) {
	if limit <= 0 {
		return nil, tally.Errorf(tally.EINVALID, "limit must be positive")
	}
	lots, err := queryLots(ctx, db.reader, `SELECT `+lotColumns+` FROM lots
		WHERE pending_until IS NOT NULL AND pending_until <= ? AND seq > ?
		ORDER BY seq LIMIT ?`, micros(now), afterSeq, limit)
	return lots, wrap(err, "due pending lots")
}

// ScanLots calls fn for every lot ordered by (AccountID, Seq).
func (a auditor) ScanLots(ctx context.Context, fn func(tally.Lot) error) error {
	rows, err := a.db.QueryContext(ctx, `SELECT `+lotColumns+` FROM lots ORDER BY account_id, seq`)
	if err != nil {
		return wrap(err, "scan lots")
	}
	defer rows.Close()
	for rows.Next() {
		l, err := scanLot(rows)
		if err != nil {
			return wrap(err, "scan lots")
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	return wrap(rows.Err(), "scan lots")
}

// OpenLots returns the open lots of the given accounts in consumption order.
func (w *writeTx) OpenLots(ctx context.Context, accountIDs []string) (map[string][]tally.Lot, error) {
	out := make(map[string][]tally.Lot, len(accountIDs))
	for lo, hi := range chunks(len(accountIDs), inBatch) {
		args := make([]any, 0, hi-lo)
		for _, id := range accountIDs[lo:hi] {
			args = append(args, id)
		}
		lots, err := queryLots(ctx, w.tx, `SELECT `+lotColumns+` FROM lots
			WHERE account_id IN (`+list(hi-lo, "?")+`) AND remaining > 0
			ORDER BY account_id, `+lotOrder, args...)
		if err != nil {
			return nil, wrap(err, "open lots")
		}
		for _, l := range lots {
			out[l.AccountID] = append(out[l.AccountID], l)
		}
	}
	return out, nil
}

// LotsBySeq returns the given lots.
func (w *writeTx) LotsBySeq(ctx context.Context, seqs []int64) (map[int64]tally.Lot, error) {
	out := make(map[int64]tally.Lot, len(seqs))
	for lo, hi := range chunks(len(seqs), inBatch) {
		args := make([]any, 0, hi-lo)
		for _, s := range seqs[lo:hi] {
			args = append(args, s)
		}
		lots, err := queryLots(ctx, w.tx, `SELECT `+lotColumns+` FROM lots WHERE seq IN (`+list(hi-lo, "?")+`)`, args...)
		if err != nil {
			return nil, wrap(err, "lots")
		}
		for _, l := range lots {
			out[l.Seq] = l
		}
	}
	return out, nil
}

// LotUses returns the lots the given debits consumed, read in the transaction.
func (w *writeTx) LotUses(ctx context.Context, debitSeqs []int64) (map[int64][]tally.LotUse, error) {
	out, err := lotUses(ctx, w.tx, debitSeqs)
	return out, wrap(err, "lot uses")
}

// lotViolation maps the lots' constraints: a reused number is ECONFLICT, a refused value a broken ledger.
func lotViolation(err error, op string) error {
	if isUniqueViolation(err) {
		return &tally.Error{Code: tally.ECONFLICT, Message: "a lot or lot use with this number already exists", Err: err}
	}
	if resultCode(err)&0xff == 19 { // SQLITE_CONSTRAINT, any kind
		return &tally.Error{Code: tally.EINTERNAL, Message: op + ": the database refused it", Err: err}
	}
	return wrap(err, op)
}

// InsertLots writes new lots.
func (w *writeTx) InsertLots(ctx context.Context, lots []tally.Lot) error {
	if len(lots) == 0 {
		return nil
	}
	stmt, err := w.tx.PrepareContext(ctx, `INSERT INTO lots (seq, account_id, points, remaining, pending_until,
		expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return wrap(err, "insert lots")
	}
	defer stmt.Close()
	for _, l := range lots {
		_, err := stmt.ExecContext(ctx, l.Seq, l.AccountID, l.Points, l.Remaining, nullMicros(l.PendingUntil),
			nullMicros(l.ExpiresAt), micros(l.CreatedAt))
		if err != nil {
			return lotViolation(err, fmt.Sprintf("insert lot %d", l.Seq))
		}
	}
	return nil
}

// UpdateLots writes the remaining points, pending state and activation time of lots.
func (w *writeTx) UpdateLots(ctx context.Context, lots []tally.Lot) error {
	if len(lots) == 0 {
		return nil
	}
	stmt, err := w.tx.PrepareContext(ctx, `UPDATE lots SET remaining = ?, pending_until = ?, activated_at = ? WHERE seq = ?`)
	if err != nil {
		return wrap(err, "update lots")
	}
	defer stmt.Close()
	for _, l := range lots {
		res, err := stmt.ExecContext(ctx, l.Remaining, nullMicros(l.PendingUntil), nullMicros(l.ActivatedAt), l.Seq)
		if err != nil {
			return lotViolation(err, fmt.Sprintf("update lot %d", l.Seq))
		}
		if n, err := res.RowsAffected(); err != nil {
			return wrap(err, "update lots")
		} else if n == 0 {
			return tally.Errorf(tally.EINTERNAL, "lot %d to update does not exist", l.Seq)
		}
	}
	return nil
}

// InsertLotUses records which lots debits consumed.
func (w *writeTx) InsertLotUses(ctx context.Context, uses []tally.LotUse) error {
	if len(uses) == 0 {
		return nil
	}
	stmt, err := w.tx.PrepareContext(ctx, `INSERT INTO lot_uses (debit_seq, lot_seq, points) VALUES (?, ?, ?)`)
	if err != nil {
		return wrap(err, "insert lot uses")
	}
	defer stmt.Close()
	for _, u := range uses {
		if _, err := stmt.ExecContext(ctx, u.DebitSeq, u.LotSeq, u.Points); err != nil {
			return lotViolation(err, fmt.Sprintf("insert use of lot %d by %d", u.LotSeq, u.DebitSeq))
		}
	}
	return nil
}

// LapsedPoints returns the lapsed, unposted remainder of the account's active lots.
func (db *DB) LapsedPoints(ctx context.Context, accountID string, now time.Time) (int64, error) {
	var n int64
	err := db.reader.QueryRowContext(ctx, `SELECT COALESCE(SUM(remaining), 0) FROM lots
		WHERE account_id = ? AND remaining > 0 AND expires_at <= ? AND pending_until IS NULL`, accountID, micros(now)).Scan(&n)
	return n, wrap(err, "lapsed points")
}

// LapsedPointsOf returns the lapsed, unposted remainders of the given accounts' active lots.
func (w *writeTx) LapsedPointsOf(ctx context.Context, accountIDs []string, now time.Time) (map[string]int64, error) {
	out := map[string]int64{}
	for lo, hi := range chunks(len(accountIDs), inBatch) {
		args := []any{micros(now)}
		for _, id := range accountIDs[lo:hi] {
			args = append(args, id)
		}
		rows, err := w.tx.QueryContext(ctx, `SELECT account_id, SUM(remaining) FROM lots
			WHERE expires_at <= ? AND remaining > 0 AND pending_until IS NULL AND account_id IN (`+list(hi-lo, "?")+`)
			GROUP BY account_id`, args...)
		if err != nil {
			return nil, wrap(err, "lapsed points")
		}
		for rows.Next() {
			var id string
			var n int64
			if err := rows.Scan(&id, &n); err != nil {
				rows.Close()
				return nil, wrap(err, "lapsed points")
			}
			out[id] = n
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, wrap(err, "lapsed points")
		}
	}
	return out, nil
}
