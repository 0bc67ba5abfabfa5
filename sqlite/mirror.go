package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/internal/outboxtable"
)

var _ tally.MirrorStore = (*DB)(nil)

const mirrorColumns = outboxtable.MirrorColumns

// WantMirror upserts the row; max keeps WantedVersion from going back when an older write's upsert
// arrives late.
func (db *DB) WantMirror(ctx context.Context, account string, contactSealed []byte, version int64, now time.Time) error {
	if err := tally.CheckMirrorWant(account, contactSealed, version); err != nil {
		return err
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO contact_mirror (account_id, contact_sealed, wanted_version, next_attempt_at, updated_at)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (account_id) DO UPDATE SET contact_sealed = excluded.contact_sealed,
				wanted_version = max(contact_mirror.wanted_version, excluded.wanted_version),
				next_attempt_at = CASE WHEN excluded.wanted_version > contact_mirror.wanted_version
					THEN min(contact_mirror.next_attempt_at, excluded.next_attempt_at) ELSE contact_mirror.next_attempt_at END,
				updated_at = excluded.updated_at`,
			account, contactSealed, version, micros(now), micros(now))
		return wrap(err, "want contact mirror")
	})
}

// RefreshMirror raises an existing row's wanted version.
func (db *DB) RefreshMirror(ctx context.Context, account string, version int64, now time.Time) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE contact_mirror SET
				next_attempt_at = CASE WHEN ? > wanted_version THEN min(next_attempt_at, ?) ELSE next_attempt_at END,
				wanted_version = max(wanted_version, ?), updated_at = ?
			WHERE account_id = ?`,
			version, micros(now), version, micros(now), account)
		return wrap(err, "refresh contact mirror")
	})
}

// LeaseMirrors leases due rows in one write transaction: SQLite has one writer, so two workers (or
// processes) cannot take the same rows.
func (db *DB) LeaseMirrors(ctx context.Context, owner string, now, until time.Time, limit int) ([]tally.ContactMirror, error) {
	return leaseDue(ctx, db, outboxtable.Mirrors, owner, now, until, limit, func(row scanner) (tally.ContactMirror, error) {
		var m tally.ContactMirror
		var next, updated int64
		err := row.Scan(&m.AccountID, &m.ContactSealed, &m.WantedVersion, &m.SentVersion, &next, &m.Attempts, &m.LastError, &updated)
		m.NextAttemptAt, m.UpdatedAt = fromMicros(next), fromMicros(updated)
		return m, err
	}, func(m tally.ContactMirror) (time.Time, string) { return m.NextAttemptAt, m.AccountID })
}

// FinishMirror records an attempt while owner holds the lease.
func (db *DB) FinishMirror(ctx context.Context, account, owner string, r tally.MirrorResult) error {
	if err := tally.CheckText("last error", r.Error); err != nil {
		return err
	}
	failed := 0
	if r.Error != "" {
		failed = 1
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE contact_mirror SET sent_version = max(sent_version, ?),
				attempts = CASE WHEN ? = 1 THEN attempts + 1 ELSE 0 END, last_error = ?, next_attempt_at = ?,
				lease_owner = '', lease_until = 0, updated_at = ?
			WHERE account_id = ? AND lease_owner = ?`,
			r.SentVersion, failed, r.Error, micros(r.RetryAt), micros(r.At), account, owner)
		if err != nil {
			return wrap(err, "finish contact mirror")
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return wrap(err, "finish contact mirror")
		}
		var holder string
		err = tx.QueryRowContext(ctx, `SELECT lease_owner FROM contact_mirror WHERE account_id = ?`, account).Scan(&holder)
		if errors.Is(err, sql.ErrNoRows) {
			return tally.Errorf(tally.ENOTFOUND, "no contact mirror for account %q", account)
		}
		if err != nil {
			return wrap(err, "finish contact mirror")
		}
		return tally.Errorf(tally.ECONFLICT, "the lease on the contact mirror of %q was lost: another worker took it over", account)
	})
}
