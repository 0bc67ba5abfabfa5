package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tally-ledger/tally"
)

var _ tally.ProgrammeStore = (*DB)(nil)

const ruleColumns = `name, version, active, definition, actor, created_at`

// epoch is the stored "never reviewed".
var epoch = time.Unix(0, 0).UTC()

func collectRuleVersions(rows pgx.Rows) ([]tally.RuleVersion, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.RuleVersion, error) {
		var v tally.RuleVersion
		var def string
		err := row.Scan(&v.Name, &v.Version, &v.Active, &def, &v.Actor, &v.CreatedAt)
		v.Definition, v.CreatedAt = []byte(def), v.CreatedAt.UTC()
		return v, err
	})
}

// EarningRules returns the newest version of every rule.
func (db *DB) EarningRules(ctx context.Context) ([]tally.RuleVersion, error) {
	rows, err := db.pool.Query(ctx, `SELECT DISTINCT ON (name) `+ruleColumns+` FROM earning_rules ORDER BY name, version DESC`)
	if err != nil {
		return nil, classify(ctx, "earning rules", err)
	}
	out, err := collectRuleVersions(rows)
	return out, classify(ctx, "earning rules", err)
}

// RuleVersions returns every version of one rule.
func (db *DB) RuleVersions(ctx context.Context, name string) ([]tally.RuleVersion, error) {
	if err := tally.CheckText("rule name", name); err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx, `SELECT `+ruleColumns+` FROM earning_rules WHERE name = $1 ORDER BY version`, name)
	if err != nil {
		return nil, classify(ctx, "rule versions", err)
	}
	out, err := collectRuleVersions(rows)
	if err != nil {
		return nil, classify(ctx, "rule versions", err)
	}
	if len(out) == 0 {
		return nil, tally.Errorf(tally.ENOTFOUND, "no earning rule %q", name)
	}
	return out, nil
}

// AddRuleVersion inserts the next version in one statement; two concurrent edits of a rule compute the
// same version and the primary key refuses the second (ECONFLICT).
func (db *DB) AddRuleVersion(ctx context.Context, v tally.RuleVersion, expected *int64) (tally.RuleVersion, error) {
	if err := tally.CheckRuleVersion(v); err != nil {
		return tally.RuleVersion{}, err
	}
	v.CreatedAt = v.CreatedAt.UTC().Truncate(time.Microsecond)
	err := db.inTx(ctx, "add rule version", func(tx pgx.Tx) error {
		var newest int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM earning_rules WHERE name = $1`, v.Name).Scan(&newest); err != nil {
			return err
		}
		if expected != nil && *expected != newest {
			return tally.Errorf(tally.ECONFLICT, "rule %q is at version %d, not %d", v.Name, newest, *expected)
		}
		v.Version = newest + 1
		_, err := tx.Exec(ctx, `INSERT INTO earning_rules (`+ruleColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
			v.Name, v.Version, v.Active, string(v.Definition), v.Actor, v.CreatedAt)
		if code, _ := pgCode(err); code == codeUniqueViolation {
			return &tally.Error{Code: tally.ECONFLICT, Message: fmt.Sprintf("rule %q was changed concurrently", v.Name), Err: err}
		}
		return err
	})
	return v, err
}

// AccrualRules returns the rule lines of one transaction.
func (db *DB) AccrualRules(ctx context.Context, seq int64) ([]tally.AccrualRule, error) {
	rows, err := db.pool.Query(ctx, `SELECT seq, rule, version, points FROM accrual_rules WHERE seq = $1 ORDER BY rule`, seq)
	if err != nil {
		return nil, classify(ctx, "accrual rules", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.AccrualRule, error) {
		var l tally.AccrualRule
		return l, row.Scan(&l.Seq, &l.Rule, &l.Version, &l.Points)
	})
	return out, classify(ctx, "accrual rules", err)
}

// RuleUsageOf returns one customer's usage rows.
func (db *DB) RuleUsageOf(ctx context.Context, account string, since time.Time) ([]tally.RuleUsage, error) {
	rows, err := db.pool.Query(ctx, ruleUsageSQL, []string{account}, since.UTC())
	if err != nil {
		return nil, classify(ctx, "rule usage", err)
	}
	out, err := collectRuleUsage(rows)
	return out, classify(ctx, "rule usage", err)
}

// CustomerTier returns a customer's stored tier.
func (db *DB) CustomerTier(ctx context.Context, account string) (tally.CustomerTier, error) {
	rows, err := db.pool.Query(ctx, customerTiersSQL, []string{account})
	if err != nil {
		return tally.CustomerTier{}, classify(ctx, "customer tier", err)
	}
	ts, err := collectCustomerTiers(rows)
	if err != nil {
		return tally.CustomerTier{}, classify(ctx, "customer tier", err)
	}
	if len(ts) == 0 {
		return tally.CustomerTier{}, tally.Errorf(tally.ENOTFOUND, "no stored tier for this customer")
	}
	return ts[0], nil
}

// TierChanges returns a customer's tier history.
func (db *DB) TierChanges(ctx context.Context, account string) ([]tally.TierChange, error) {
	rows, err := db.pool.Query(ctx, `SELECT account_id, from_tier, to_tier, reason, coalesce(tx_seq, 0), at
		FROM tier_changes WHERE account_id = $1 ORDER BY id`, account)
	if err != nil {
		return nil, classify(ctx, "tier changes", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.TierChange, error) {
		var c tally.TierChange
		err := row.Scan(&c.AccountID, &c.From, &c.To, &c.Reason, &c.Seq, &c.At)
		c.At = c.At.UTC()
		return c, err
	})
	return out, classify(ctx, "tier changes", err)
}

// QualifyingPoints sums one customer's accruals in the window.
func (db *DB) QualifyingPoints(ctx context.Context, account string, since, until time.Time) (int64, error) {
	rows, err := db.pool.Query(ctx, qualifyingSQL, []string{account}, since.UTC(), until.UTC())
	if err != nil {
		return 0, classify(ctx, "qualifying points", err)
	}
	m, err := collectQualifying(rows)
	return m[account], classify(ctx, "qualifying points", err)
}

const ruleUsageSQL = `SELECT account_id, rule, period, period_start, points FROM rule_usage
	WHERE account_id = ANY($1) AND period_start >= $2 ORDER BY account_id, rule, period, period_start`

func collectRuleUsage(rows pgx.Rows) ([]tally.RuleUsage, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.RuleUsage, error) {
		var u tally.RuleUsage
		err := row.Scan(&u.AccountID, &u.Rule, &u.Period, &u.Start, &u.Points)
		u.Start = u.Start.UTC()
		return u, err
	})
}

const customerTiersSQL = `SELECT account_id, tier, since, reviewed_through FROM customer_tiers WHERE account_id = ANY($1) ORDER BY account_id`

func collectCustomerTiers(rows pgx.Rows) ([]tally.CustomerTier, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.CustomerTier, error) {
		var t tally.CustomerTier
		err := row.Scan(&t.AccountID, &t.Tier, &t.Since, &t.ReviewedThrough)
		t.Since, t.ReviewedThrough = t.Since.UTC(), t.ReviewedThrough.UTC()
		if t.ReviewedThrough.Equal(epoch) {
			t.ReviewedThrough = time.Time{}
		}
		return t, err
	})
}

// qualifyingSQL sums accruals in [since, until) that no reversal undid.
const qualifyingSQL = `SELECT t.account_id, sum(t.amount)::bigint FROM transactions t
	WHERE t.account_id = ANY($1) AND t.kind = 'accrual' AND t.created_at >= $2 AND t.created_at < $3
		AND NOT EXISTS (SELECT 1 FROM transactions r WHERE r.reverses_seq = t.seq)
	GROUP BY t.account_id`

func collectQualifying(rows pgx.Rows) (map[string]int64, error) {
	out := map[string]int64{}
	var id string
	var n int64
	_, err := pgx.ForEachRow(rows, []any{&id, &n}, func() error {
		out[id] = n
		return nil
	})
	return out, err
}

// RuleUsage implements tally.TierWriteTx.
func (w *writeTx) RuleUsage(ctx context.Context, accounts []string, since time.Time) ([]tally.RuleUsage, error) {
	rows, err := w.query(ctx, "rule usage", ruleUsageSQL, accounts, since.UTC())
	if err != nil {
		return nil, err
	}
	out, err := collectRuleUsage(rows)
	if err != nil {
		return nil, w.fail(ctx, "rule usage", err)
	}
	return out, nil
}

// AddRuleUsage upserts usage rows (deferred).
func (w *writeTx) AddRuleUsage(ctx context.Context, usage []tally.RuleUsage) error {
	if len(usage) == 0 {
		return nil
	}
	var accounts, rules, periods []string
	var starts []time.Time
	var points []int64
	for _, u := range usage {
		accounts, rules, periods = append(accounts, u.AccountID), append(rules, u.Rule), append(periods, u.Period)
		starts, points = append(starts, u.Start.UTC()), append(points, u.Points)
	}
	w.exec("add rule usage", `INSERT INTO rule_usage (account_id, rule, period, period_start, points)
		SELECT u.a, u.r, u.p, u.s, sum(u.n) FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[]) AS u(a, r, p, s, n)
		GROUP BY u.a, u.r, u.p, u.s ORDER BY u.a, u.r, u.p, u.s
		ON CONFLICT (account_id, rule, period, period_start) DO UPDATE SET points = rule_usage.points + EXCLUDED.points`,
		accounts, rules, periods, starts, points)
	return nil
}

// InsertAccrualRules records accruals' rule lines (deferred).
func (w *writeTx) InsertAccrualRules(ctx context.Context, lines []tally.AccrualRule) error {
	if len(lines) == 0 {
		return nil
	}
	var seqs, versions, points []int64
	var rules []string
	for _, l := range lines {
		seqs, rules, versions, points = append(seqs, l.Seq), append(rules, l.Rule), append(versions, l.Version), append(points, l.Points)
	}
	w.pending = append(w.pending, deferred{op: "insert accrual rules", sql: `INSERT INTO accrual_rules (seq, rule, version, points)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[])`,
		args: []any{seqs, rules, versions, points},
		mapErr: func(err error) error {
			if code, _ := pgCode(err); code == codeUniqueViolation {
				return &tally.Error{Code: tally.ECONFLICT, Message: "an accrual's rule line is recorded already", Err: err}
			}
			return nil
		}})
	return nil
}

// CustomerTiers implements tally.TierWriteTx.
func (w *writeTx) CustomerTiers(ctx context.Context, accounts []string) (map[string]tally.CustomerTier, error) {
	out := make(map[string]tally.CustomerTier, len(accounts))
	if len(accounts) == 0 {
		return out, nil
	}
	rows, err := w.query(ctx, "customer tiers", customerTiersSQL, accounts)
	if err != nil {
		return nil, err
	}
	ts, err := collectCustomerTiers(rows)
	if err != nil {
		return nil, w.fail(ctx, "customer tiers", err)
	}
	for _, t := range ts {
		out[t.AccountID] = t
	}
	return out, nil
}

// QualifyingPointsOf implements tally.TierWriteTx.
func (w *writeTx) QualifyingPointsOf(ctx context.Context, accounts []string, since, until time.Time) (map[string]int64, error) {
	if len(accounts) == 0 {
		return map[string]int64{}, nil
	}
	rows, err := w.query(ctx, "qualifying points", qualifyingSQL, accounts, since.UTC(), until.UTC())
	if err != nil {
		return nil, err
	}
	m, err := collectQualifying(rows)
	if err != nil {
		return nil, w.fail(ctx, "qualifying points", err)
	}
	return m, nil
}

// SetTiers upserts tiers and appends changes (deferred).
func (w *writeTx) SetTiers(ctx context.Context, tiers []tally.CustomerTier, changes []tally.TierChange) error {
	if len(tiers) > 0 {
		var ids, names []string
		var since, reviewed []time.Time
		for _, t := range tiers {
			r := t.ReviewedThrough
			if r.IsZero() {
				r = epoch
			}
			ids, names, since, reviewed = append(ids, t.AccountID), append(names, t.Tier), append(since, t.Since.UTC()), append(reviewed, r.UTC())
		}
		w.exec("set tiers", `INSERT INTO customer_tiers (account_id, tier, since, reviewed_through)
			SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[])
			ON CONFLICT (account_id) DO UPDATE SET tier = EXCLUDED.tier, since = EXCLUDED.since,
				reviewed_through = EXCLUDED.reviewed_through`, ids, names, since, reviewed)
	}
	if len(changes) > 0 {
		var ids, from, to, reasons []string
		var seqs []*int64
		var at []time.Time
		for _, c := range changes {
			var seq *int64
			if c.Seq != 0 {
				s := c.Seq
				seq = &s
			}
			ids, from, to, reasons = append(ids, c.AccountID), append(from, c.From), append(to, c.To), append(reasons, c.Reason)
			seqs, at = append(seqs, seq), append(at, c.At.UTC())
		}
		w.exec("record tier changes", `INSERT INTO tier_changes (account_id, from_tier, to_tier, reason, tx_seq, at)
			SELECT u.a, u.f, u.t, u.r, u.s, u.at FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::timestamptz[]) WITH ORDINALITY AS u(a, f, t, r, s, at, n)
			ORDER BY u.n`, ids, from, to, reasons, seqs, at)
	}
	return nil
}

// TiersToReview implements tally.TierWriteTx.
func (w *writeTx) TiersToReview(ctx context.Context, periodEnd time.Time, base, after string, limit int) ([]tally.CustomerTier, error) {
	rows, err := w.query(ctx, "tiers to review", `SELECT account_id, tier, since, reviewed_through FROM customer_tiers
		WHERE account_id > $1 AND reviewed_through < $2 AND since < $2 AND tier <> $4 ORDER BY account_id LIMIT $3`,
		after, periodEnd.UTC(), limit, base)
	if err != nil {
		return nil, err
	}
	out, err := collectCustomerTiers(rows)
	if err != nil {
		return nil, w.fail(ctx, "tiers to review", err)
	}
	return out, nil
}

// AccountsWithoutTier implements tally.TierWriteTx.
func (w *writeTx) AccountsWithoutTier(ctx context.Context, after string, limit int) ([]string, error) {
	rows, err := w.query(ctx, "accounts without tier", `SELECT a.id FROM accounts a
		WHERE a.kind = 'customer' AND a.id > $1 AND NOT EXISTS (SELECT 1 FROM customer_tiers t WHERE t.account_id = a.id)
		ORDER BY a.id LIMIT $2`, after, limit)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, w.fail(ctx, "accounts without tier", err)
	}
	return ids, nil
}
