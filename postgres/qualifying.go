package postgres

import (
	"context"
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
