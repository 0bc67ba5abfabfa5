package postgres

import (
	"context"

	"github.com/tally-ledger/tally"
)

// QualifyingShortfalls implements tally.Auditor in one pass over the accruals.
func (a auditor) QualifyingShortfalls(ctx context.Context, fn func(account string, bound, points int64) error) error {
	rows, err := a.db.pool.Query(ctx, `SELECT a.id, a.qualifying_bound, q.points
		FROM accounts a
		CROSS JOIN LATERAL (SELECT coalesce(sum(x.amount), 0)::bigint AS points FROM transactions x
			WHERE x.account_id = a.id AND x.kind = 'accrual' AND x.created_at >= a.qualifying_from
				AND NOT EXISTS (SELECT 1 FROM transactions r WHERE r.reverses_seq = x.seq)) q
		WHERE a.kind = 'customer' AND a.qualifying_from IS NOT NULL AND q.points > a.qualifying_bound
		ORDER BY a.id`)
	if err != nil {
		return classify(ctx, "qualifying shortfalls", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var bound, points int64
		if err := rows.Scan(&id, &bound, &points); err != nil {
			return classify(ctx, "qualifying shortfalls", err)
		}
		if err := fn(id, bound, points); err != nil {
			return err
		}
	}
	return classify(ctx, "qualifying shortfalls", rows.Err())
}

// StrayAccrualRules implements tally.Auditor.
func (a auditor) StrayAccrualRules(ctx context.Context, fn func(seq int64, rule, account string, kind tally.Kind) error) error {
	rows, err := a.db.pool.Query(ctx, `SELECT r.seq, r.rule, coalesce(t.account_id, ''), coalesce(t.kind, '')
		FROM accrual_rules r LEFT JOIN transactions t ON t.seq = r.seq
		WHERE t.seq IS NULL OR t.kind <> 'accrual'
		ORDER BY r.seq, r.rule`)
	if err != nil {
		return classify(ctx, "stray accrual rules", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var rule, account, kind string
		if err := rows.Scan(&seq, &rule, &account, &kind); err != nil {
			return classify(ctx, "stray accrual rules", err)
		}
		if err := fn(seq, rule, account, tally.Kind(kind)); err != nil {
			return err
		}
	}
	return classify(ctx, "stray accrual rules", rows.Err())
}
