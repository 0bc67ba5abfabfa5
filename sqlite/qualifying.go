package sqlite

import (
	"context"

	"github.com/tally-ledger/tally"
)

// QualifyingShortfalls implements tally.Auditor in one pass over the accruals.
func (a auditor) QualifyingShortfalls(ctx context.Context, fn func(account string, bound, points int64) error) error {
	rows, err := a.db.QueryContext(ctx, `SELECT id, qualifying_bound, points FROM (
			SELECT a.id, a.qualifying_bound, (SELECT COALESCE(SUM(x.amount), 0) FROM transactions x
				WHERE x.account_id = a.id AND x.kind = 'accrual' AND x.created_at >= a.qualifying_from
					AND NOT EXISTS (SELECT 1 FROM transactions r WHERE r.reverses_seq = x.seq)) AS points
			FROM accounts a
			WHERE a.kind = 'customer' AND a.qualifying_from IS NOT NULL)
		WHERE points > qualifying_bound
		ORDER BY id`)
	if err != nil {
		return wrap(err, "qualifying shortfalls")
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var bound, points int64
		if err := rows.Scan(&id, &bound, &points); err != nil {
			return wrap(err, "qualifying shortfalls")
		}
		if err := fn(id, bound, points); err != nil {
			return err
		}
	}
	return wrap(rows.Err(), "qualifying shortfalls")
}

// StrayAccrualRules implements tally.Auditor.
func (a auditor) StrayAccrualRules(ctx context.Context, fn func(seq int64, rule, account string, kind tally.Kind) error) error {
	rows, err := a.db.QueryContext(ctx, `SELECT r.seq, r.rule, COALESCE(t.account_id, ''), COALESCE(t.kind, '')
		FROM accrual_rules r LEFT JOIN transactions t ON t.seq = r.seq
		WHERE t.seq IS NULL OR t.kind <> 'accrual'
		ORDER BY r.seq, r.rule`)
	if err != nil {
		return wrap(err, "stray accrual rules")
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var rule, account, kind string
		if err := rows.Scan(&seq, &rule, &account, &kind); err != nil {
			return wrap(err, "stray accrual rules")
		}
		if err := fn(seq, rule, account, tally.Kind(kind)); err != nil {
			return err
		}
	}
	return wrap(rows.Err(), "stray accrual rules")
}
