package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/internal/outboxtable"
)

var _ tally.MirrorStore = (*DB)(nil)

const mirrorColumns = outboxtable.MirrorColumns

// WantMirror upserts the row in one statement; GREATEST keeps WantedVersion from going back when an
// older write's upsert arrives late.
func (db *DB) WantMirror(ctx context.Context, account string, contactSealed []byte, version int64, now time.Time) error {
	if err := tally.CheckMirrorWant(account, contactSealed, version); err != nil {
		return err
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO contact_mirror (account_id, contact_sealed, wanted_version, next_attempt_at, updated_at)
		VALUES ($1, $2, $3, $4, $4)
		ON CONFLICT (account_id) DO UPDATE SET contact_sealed = EXCLUDED.contact_sealed,
			wanted_version = GREATEST(contact_mirror.wanted_version, EXCLUDED.wanted_version),
			next_attempt_at = CASE WHEN EXCLUDED.wanted_version > contact_mirror.wanted_version
				THEN LEAST(contact_mirror.next_attempt_at, EXCLUDED.next_attempt_at) ELSE contact_mirror.next_attempt_at END,
			updated_at = EXCLUDED.updated_at`,
		account, contactSealed, version, now.UTC())
	return classify(ctx, "want contact mirror", err)
}

// RefreshMirror raises an existing row's wanted version.
func (db *DB) RefreshMirror(ctx context.Context, account string, version int64, now time.Time) error {
	_, err := db.pool.Exec(ctx, `UPDATE contact_mirror SET
			next_attempt_at = CASE WHEN $2 > wanted_version THEN LEAST(next_attempt_at, $3) ELSE next_attempt_at END,
			wanted_version = GREATEST(wanted_version, $2), updated_at = $3
		WHERE account_id = $1`, account, version, now.UTC())
	return classify(ctx, "refresh contact mirror", err)
}

// LeaseMirrors leases due rows in one statement, FOR UPDATE SKIP LOCKED as LeaseRedemptions does.
func (db *DB) LeaseMirrors(ctx context.Context, owner string, now, until time.Time, limit int) ([]tally.ContactMirror, error) {
	return leaseDue(ctx, db, outboxtable.Mirrors, owner, now, until, limit, func(row pgx.Row) (tally.ContactMirror, error) {
		var m tally.ContactMirror
		err := row.Scan(&m.AccountID, &m.ContactSealed, &m.WantedVersion, &m.SentVersion, &m.NextAttemptAt, &m.Attempts, &m.LastError, &m.UpdatedAt)
		m.NextAttemptAt, m.UpdatedAt = m.NextAttemptAt.UTC(), m.UpdatedAt.UTC()
		return m, err
	}, func(m tally.ContactMirror) (time.Time, string) { return m.NextAttemptAt, m.AccountID })
}

// FinishMirror records an attempt while owner holds the lease, in one statement.
func (db *DB) FinishMirror(ctx context.Context, account, owner string, r tally.MirrorResult) error {
	if err := tally.CheckText("last error", r.Error); err != nil {
		return err
	}
	failed := 0
	if r.Error != "" {
		failed = 1
	}
	tag, err := db.pool.Exec(ctx, `UPDATE contact_mirror SET sent_version = GREATEST(sent_version, $1),
			attempts = CASE WHEN $2 = 1 THEN attempts + 1 ELSE 0 END, last_error = $3, next_attempt_at = $4,
			lease_owner = '', lease_until = 'epoch', updated_at = $5
		WHERE account_id = $6 AND lease_owner = $7`,
		r.SentVersion, failed, r.Error, r.RetryAt.UTC(), r.At.UTC(), account, owner)
	if err != nil {
		return classify(ctx, "finish contact mirror", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var holder string
	err = db.pool.QueryRow(ctx, `SELECT lease_owner FROM contact_mirror WHERE account_id = $1`, account).Scan(&holder)
	if errors.Is(err, pgx.ErrNoRows) {
		return tally.Errorf(tally.ENOTFOUND, "no contact mirror for account %q", account)
	}
	if err != nil {
		return classify(ctx, "finish contact mirror", err)
	}
	return tally.Errorf(tally.ECONFLICT, "the lease on the contact mirror of %q was lost: another worker took it over", account)
}
