package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/earning"
	"github.com/tally-ledger/tally/ledger"
)

// startEarning builds the earning-rules engine over the store and seeds the programme file's rules.
func startEarning(ctx context.Context, store tally.Store, programme *earning.Programme, log *slog.Logger) (*earning.Engine, error) {
	ps, ok := store.(tally.ProgrammeStore)
	if !ok {
		return nil, fmt.Errorf("the %T store keeps no earning rules", store)
	}
	engine := earning.NewEngine(ps, programme, nil)
	added, err := engine.Seed(ctx)
	if err != nil {
		return nil, fmt.Errorf("seed the earning rules: %w", err)
	}
	for _, v := range added {
		log.Info("earning rule seeded from the programme", "rule", v.Name, "version", v.Version)
	}
	return engine, nil
}

// tierReviewLoop stores a tier for the customers who have none yet (a ledger written before tiers were
// stored), then runs the end-of-period tier review now and then. A period is reviewed once whoever runs
// it, so every replica may run the loop.
func tierReviewLoop(ctx context.Context, l *ledger.Service, programme *earning.Programme, every time.Duration, log *slog.Logger) {
	if n, err := l.BackfillTiers(ctx); err != nil && ctx.Err() == nil {
		log.Warn("storing the first tiers failed", "err", err)
	} else if n > 0 {
		log.Info("first tiers stored above base", "customers", n)
	}
	review := func() {
		rep, err := l.ReviewTiers(ctx, programme.PeriodEnd(time.Now()))
		if err != nil && ctx.Err() == nil {
			log.Warn("tier review failed", "err", err)
		} else if rep.Downgraded > 0 || rep.Reviewed > 0 {
			log.Info("tier review", "period_end", rep.PeriodEnd, "reviewed", rep.Reviewed, "downgraded", rep.Downgraded)
		}
	}
	review()
	runEvery(ctx, every, review)
}
