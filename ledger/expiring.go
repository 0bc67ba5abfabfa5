package ledger

import (
	"context"
	"slices"
	"time"

	"github.com/tally-ledger/tally"
)

// WarnExpiring writes a points.expiring_soon event for every open lot that expires within the days ahead
// that some active subscription asks for (its expiring_days), and returns how many warnings it wrote or
// found written. A warning is named by its lot and its number of days, so the job may run as often as it
// likes, on every replica at once: each warning exists once. Lots that have already lapsed get no warning
// (the expiry job posts them, and points.expired tells of it).
func (s *Service) WarnExpiring(ctx context.Context) (int, error) {
	subs, err := s.store.Subscriptions(ctx)
	if err != nil {
		return 0, err
	}
	var horizons []int
	for _, sub := range subs {
		if sub.Active && sub.ExpiringDays > 0 && slices.Contains(sub.EventTypes, tally.EventPointsExpiringSoon) &&
			!slices.Contains(horizons, sub.ExpiringDays) {
			horizons = append(horizons, sub.ExpiringDays)
		}
	}
	now := tally.LedgerTime(s.opts.Clock())
	warned := 0
	for _, days := range horizons {
		n, err := s.warnWithin(ctx, now, days)
		warned += n
		if err != nil {
			return warned, err
		}
	}
	return warned, nil
}

// warnWithin warns of the open lots that expire after now and no later than days from now.
func (s *Service) warnWithin(ctx context.Context, now time.Time, days int) (int, error) {
	const accountsPerPage = 256
	horizon := now.AddDate(0, 0, days)
	warned, after := 0, ""
	for {
		// The lots that will have lapsed at the horizon are those expiring within it.
		page, err := s.store.LapsedLots(ctx, horizon, after, accountsPerPage)
		if err != nil || len(page) == 0 {
			return warned, err
		}
		after = page[len(page)-1].AccountID
		var events []tally.Event
		for _, acct := range page {
			for _, lot := range acct.Lots {
				if lot.ExpiresAt == nil || !lot.ExpiresAt.After(now) || lot.Remaining <= 0 {
					continue
				}
				e, err := ExpiringSoonEvent(acct.AccountID, lot.Seq, lot.Remaining, *lot.ExpiresAt, days, now)
				if err != nil {
					return warned, err
				}
				events = append(events, e)
			}
		}
		if err := s.EmitEvents(ctx, events); err != nil {
			return warned, err
		}
		warned += len(events)
	}
}
