package ledger

import (
	"testing"
	"time"
)

// TestEarnedAt: a request is earned at its arrival when it has one in the past, at the decision
// otherwise (no arrival, or one after the decision: a clock ahead of this replica's); the batch's cap
// periods start from its earliest earning accrual.
func TestEarnedAt(t *testing.T) {
	now := time.Date(2026, 3, 11, 1, 0, 0, 0, time.UTC)
	before := now.Add(-90 * time.Minute)
	b := &batchRun{now: now}
	for _, tc := range []struct {
		name string
		at   time.Time
		want time.Time
	}{
		{"live", time.Time{}, now},
		{"spooled", before.Add(123456789), before.Add(123456000)}, // ledger time: microseconds
		{"from the future", now.Add(time.Minute), now},
	} {
		if got := b.earnedAt(Request{EarnAt: tc.at}); !got.Equal(tc.want) {
			t.Errorf("%s: earned at %v, want %v", tc.name, got, tc.want)
		}
	}
	earn := map[string]any{"state": "closed"}
	b.ops = []*op{{req: Request{Earn: earn}}, {req: Request{Earn: earn, EarnAt: before}}, {req: Request{EarnAt: before.Add(-time.Hour)}}}
	b.fresh = []int{0, 1, 2}
	if got := b.earliestEarning(); !got.Equal(before) {
		t.Fatalf("earliest earning %v, want %v (the third op is not earned by the rules)", got, before)
	}
}
