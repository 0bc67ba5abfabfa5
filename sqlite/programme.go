package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/tally-ledger/tally"
)

var _ tally.ProgrammeStore = (*DB)(nil)

const ruleColumns = `name, version, active, definition, actor, created_at`

func scanRuleVersions(rows *sql.Rows) ([]tally.RuleVersion, error) {
	defer rows.Close()
	var out []tally.RuleVersion
	for rows.Next() {
		var v tally.RuleVersion
		var def string
		var created int64
		if err := rows.Scan(&v.Name, &v.Version, &v.Active, &def, &v.Actor, &created); err != nil {
			return nil, err
		}
		v.Definition, v.CreatedAt = []byte(def), fromMicros(created)
		out = append(out, v)
	}
	return out, rows.Err()
}

// EarningRules returns the newest version of every rule.
func (db *DB) EarningRules(ctx context.Context) ([]tally.RuleVersion, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT `+ruleColumns+` FROM earning_rules r
		WHERE version = (SELECT max(version) FROM earning_rules WHERE name = r.name) ORDER BY name`)
	if err != nil {
		return nil, wrap(err, "earning rules")
	}
	out, err := scanRuleVersions(rows)
	return out, wrap(err, "earning rules")
}

// RuleVersions returns every version of one rule.
func (db *DB) RuleVersions(ctx context.Context, name string) ([]tally.RuleVersion, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT `+ruleColumns+` FROM earning_rules WHERE name = ? ORDER BY version`, name)
	if err != nil {
		return nil, wrap(err, "rule versions")
	}
	out, err := scanRuleVersions(rows)
	if err != nil {
		return nil, wrap(err, "rule versions")
	}
	if len(out) == 0 {
		return nil, tally.Errorf(tally.ENOTFOUND, "no earning rule %q", name)
	}
	return out, nil
}

// AddRuleVersion stores the next version in one write transaction (SQLite has one writer: no race).
func (db *DB) AddRuleVersion(ctx context.Context, v tally.RuleVersion, expected *int64) (tally.RuleVersion, error) {
	if err := tally.CheckRuleVersion(v); err != nil {
		return tally.RuleVersion{}, err
	}
	v.CreatedAt = v.CreatedAt.UTC().Truncate(time.Microsecond)
	err := db.write(ctx, func(tx *sql.Tx) error {
		var newest int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM earning_rules WHERE name = ?`, v.Name).Scan(&newest); err != nil {
			return wrap(err, "add rule version")
		}
		if expected != nil && *expected != newest {
			return tally.Errorf(tally.ECONFLICT, "rule %q is at version %d, not %d", v.Name, newest, *expected)
		}
		v.Version = newest + 1
		_, err := tx.ExecContext(ctx, `INSERT INTO earning_rules (`+ruleColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
			v.Name, v.Version, v.Active, string(v.Definition), v.Actor, micros(v.CreatedAt))
		if isUniqueViolation(err) {
			return tally.Errorf(tally.ECONFLICT, "rule %q was changed concurrently", v.Name)
		}
		return wrap(err, "add rule version")
	})
	return v, err
}

// AccrualRules returns the rule lines of one transaction.
func (db *DB) AccrualRules(ctx context.Context, seq int64) ([]tally.AccrualRule, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT seq, rule, version, points FROM accrual_rules WHERE seq = ? ORDER BY rule`, seq)
	if err != nil {
		return nil, wrap(err, "accrual rules")
	}
	defer rows.Close()
	var out []tally.AccrualRule
	for rows.Next() {
		var l tally.AccrualRule
		if err := rows.Scan(&l.Seq, &l.Rule, &l.Version, &l.Points); err != nil {
			return nil, wrap(err, "accrual rules")
		}
		out = append(out, l)
	}
	return out, wrap(rows.Err(), "accrual rules")
}

// RuleUsageOf returns one customer's usage rows.
func (db *DB) RuleUsageOf(ctx context.Context, account string, since time.Time) ([]tally.RuleUsage, error) {
	return ruleUsage(ctx, db.reader, []string{account}, since)
}

// CustomerTier returns a customer's stored tier.
func (db *DB) CustomerTier(ctx context.Context, account string) (tally.CustomerTier, error) {
	m, err := customerTiers(ctx, db.reader, []string{account})
	if err != nil {
		return tally.CustomerTier{}, err
	}
	t, ok := m[account]
	if !ok {
		return tally.CustomerTier{}, tally.Errorf(tally.ENOTFOUND, "no stored tier for this customer")
	}
	return t, nil
}

// TierChanges returns a customer's tier history.
func (db *DB) TierChanges(ctx context.Context, account string) ([]tally.TierChange, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT account_id, from_tier, to_tier, reason, coalesce(tx_seq, 0), at
		FROM tier_changes WHERE account_id = ? ORDER BY id`, account)
	if err != nil {
		return nil, wrap(err, "tier changes")
	}
	defer rows.Close()
	var out []tally.TierChange
	for rows.Next() {
		var c tally.TierChange
		var at int64
		if err := rows.Scan(&c.AccountID, &c.From, &c.To, &c.Reason, &c.Seq, &at); err != nil {
			return nil, wrap(err, "tier changes")
		}
		c.At = fromMicros(at)
		out = append(out, c)
	}
	return out, wrap(rows.Err(), "tier changes")
}

// QualifyingPoints sums one customer's accruals in the window.
func (db *DB) QualifyingPoints(ctx context.Context, account string, since, until time.Time) (int64, error) {
	m, err := qualifyingPoints(ctx, db.reader, []string{account}, since, until)
	return m[account], err
}

func ruleUsage(ctx context.Context, q querier, accounts []string, since time.Time) ([]tally.RuleUsage, error) {
	var out []tally.RuleUsage
	for lo, hi := range chunks(len(accounts), inBatch) {
		args := []any{micros(since)}
		for _, a := range accounts[lo:hi] {
			args = append(args, a)
		}
		rows, err := q.QueryContext(ctx, `SELECT account_id, rule, period, period_start, points FROM rule_usage
			WHERE period_start >= ? AND account_id IN (`+list(hi-lo, "?")+`) ORDER BY account_id, rule, period, period_start`, args...)
		if err != nil {
			return nil, wrap(err, "rule usage")
		}
		for rows.Next() {
			var u tally.RuleUsage
			var start int64
			if err := rows.Scan(&u.AccountID, &u.Rule, &u.Period, &start, &u.Points); err != nil {
				rows.Close()
				return nil, wrap(err, "rule usage")
			}
			u.Start = fromMicros(start)
			out = append(out, u)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, wrap(err, "rule usage")
		}
	}
	return out, nil
}

func customerTiers(ctx context.Context, q querier, accounts []string) (map[string]tally.CustomerTier, error) {
	out := make(map[string]tally.CustomerTier, len(accounts))
	for lo, hi := range chunks(len(accounts), inBatch) {
		args := make([]any, 0, hi-lo)
		for _, a := range accounts[lo:hi] {
			args = append(args, a)
		}
		rows, err := q.QueryContext(ctx, `SELECT account_id, tier, since, reviewed_through FROM customer_tiers
			WHERE account_id IN (`+list(hi-lo, "?")+`)`, args...)
		if err != nil {
			return nil, wrap(err, "customer tiers")
		}
		for rows.Next() {
			t, err := scanCustomerTier(rows)
			if err != nil {
				rows.Close()
				return nil, wrap(err, "customer tiers")
			}
			out[t.AccountID] = t
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, wrap(err, "customer tiers")
		}
	}
	return out, nil
}

func scanCustomerTier(s scanner) (tally.CustomerTier, error) {
	var t tally.CustomerTier
	var since, reviewed int64
	err := s.Scan(&t.AccountID, &t.Tier, &since, &reviewed)
	t.Since = fromMicros(since)
	if reviewed != 0 {
		t.ReviewedThrough = fromMicros(reviewed)
	}
	return t, err
}

// qualifyingPoints sums accruals in [since, until) that no reversal undid.
func qualifyingPoints(ctx context.Context, q querier, accounts []string, since, until time.Time) (map[string]int64, error) {
	out := make(map[string]int64, len(accounts))
	for lo, hi := range chunks(len(accounts), inBatch) {
		args := []any{micros(since), micros(until)}
		for _, a := range accounts[lo:hi] {
			args = append(args, a)
		}
		rows, err := q.QueryContext(ctx, `SELECT t.account_id, sum(t.amount) FROM transactions t
			WHERE t.kind = 'accrual' AND t.created_at >= ? AND t.created_at < ?
				AND t.account_id IN (`+list(hi-lo, "?")+`)
				AND NOT EXISTS (SELECT 1 FROM transactions r WHERE r.reverses_seq = t.seq)
			GROUP BY t.account_id`, args...)
		if err != nil {
			return nil, wrap(err, "qualifying points")
		}
		for rows.Next() {
			var id string
			var n int64
			if err := rows.Scan(&id, &n); err != nil {
				rows.Close()
				return nil, wrap(err, "qualifying points")
			}
			out[id] = n
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, wrap(err, "qualifying points")
		}
	}
	return out, nil
}

// RuleUsage implements tally.TierWriteTx.
func (w *writeTx) RuleUsage(ctx context.Context, accounts []string, since time.Time) ([]tally.RuleUsage, error) {
	return ruleUsage(ctx, w.tx, accounts, since)
}

// AddRuleUsage upserts usage rows.
func (w *writeTx) AddRuleUsage(ctx context.Context, usage []tally.RuleUsage) error {
	for _, u := range usage {
		_, err := w.tx.ExecContext(ctx, `INSERT INTO rule_usage (account_id, rule, period, period_start, points)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (account_id, rule, period, period_start) DO UPDATE SET points = rule_usage.points + excluded.points`,
			u.AccountID, u.Rule, u.Period, micros(u.Start), u.Points)
		if err != nil {
			return wrap(err, "add rule usage")
		}
	}
	return nil
}

// InsertAccrualRules records accruals' rule lines.
func (w *writeTx) InsertAccrualRules(ctx context.Context, lines []tally.AccrualRule) error {
	for _, l := range lines {
		_, err := w.tx.ExecContext(ctx, `INSERT INTO accrual_rules (seq, rule, version, points) VALUES (?, ?, ?, ?)`,
			l.Seq, l.Rule, l.Version, l.Points)
		if isUniqueViolation(err) {
			return tally.Errorf(tally.ECONFLICT, "transaction %d already records rule %q", l.Seq, l.Rule)
		}
		if err != nil {
			return wrap(err, "insert accrual rules")
		}
	}
	return nil
}

// CustomerTiers implements tally.TierWriteTx.
func (w *writeTx) CustomerTiers(ctx context.Context, accounts []string) (map[string]tally.CustomerTier, error) {
	return customerTiers(ctx, w.tx, accounts)
}

// QualifyingPointsOf implements tally.TierWriteTx.
func (w *writeTx) QualifyingPointsOf(ctx context.Context, accounts []string, since, until time.Time) (map[string]int64, error) {
	return qualifyingPoints(ctx, w.tx, accounts, since, until)
}

// SetTiers upserts tiers and appends changes.
func (w *writeTx) SetTiers(ctx context.Context, tiers []tally.CustomerTier, changes []tally.TierChange) error {
	for _, t := range tiers {
		var reviewed int64
		if !t.ReviewedThrough.IsZero() {
			reviewed = micros(t.ReviewedThrough)
		}
		_, err := w.tx.ExecContext(ctx, `INSERT INTO customer_tiers (account_id, tier, since, reviewed_through) VALUES (?, ?, ?, ?)
			ON CONFLICT (account_id) DO UPDATE SET tier = excluded.tier, since = excluded.since, reviewed_through = excluded.reviewed_through`,
			t.AccountID, t.Tier, micros(t.Since), reviewed)
		if err != nil {
			return wrap(err, "set tiers")
		}
	}
	for _, c := range changes {
		_, err := w.tx.ExecContext(ctx, `INSERT INTO tier_changes (account_id, from_tier, to_tier, reason, tx_seq, at) VALUES (?, ?, ?, ?, ?, ?)`,
			c.AccountID, c.From, c.To, c.Reason, nullIfZero(c.Seq), micros(c.At))
		if err != nil {
			return wrap(err, "record tier change")
		}
	}
	return nil
}

// TiersToReview implements tally.TierWriteTx.
func (w *writeTx) TiersToReview(ctx context.Context, periodEnd time.Time, base, after string, limit int) ([]tally.CustomerTier, error) {
	rows, err := w.tx.QueryContext(ctx, `SELECT account_id, tier, since, reviewed_through FROM customer_tiers
		WHERE account_id > ? AND reviewed_through < ? AND since < ? AND tier <> ? ORDER BY account_id LIMIT ?`,
		after, micros(periodEnd), micros(periodEnd), base, limit)
	if err != nil {
		return nil, wrap(err, "tiers to review")
	}
	defer rows.Close()
	var out []tally.CustomerTier
	for rows.Next() {
		t, err := scanCustomerTier(rows)
		if err != nil {
			return nil, wrap(err, "tiers to review")
		}
		out = append(out, t)
	}
	return out, wrap(rows.Err(), "tiers to review")
}

// AccountsWithoutTier implements tally.TierWriteTx.
func (w *writeTx) AccountsWithoutTier(ctx context.Context, after string, limit int) ([]string, error) {
	rows, err := w.tx.QueryContext(ctx, `SELECT a.id FROM accounts a
		WHERE a.kind = 'customer' AND a.id > ? AND NOT EXISTS (SELECT 1 FROM customer_tiers t WHERE t.account_id = a.id)
		ORDER BY a.id LIMIT ?`, after, limit)
	if err != nil {
		return nil, wrap(err, "accounts without tier")
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, wrap(err, "accounts without tier")
		}
		out = append(out, id)
	}
	return out, wrap(rows.Err(), "accounts without tier")
}
