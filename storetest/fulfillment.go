package storetest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
)

// testFulfillment holds every store to the contracts of tally.FulfillmentStore: leases that no two
// workers hold at once, and attempts recorded only by the lease's holder.
func testFulfillment(t *testing.T, h Harness) {
	cases := []struct {
		name string
		fn   func(t *testing.T, f *outbox)
	}{
		{"lease", testLease},
		{"finish", testFinish},
		{"settled meanwhile", testSettledMeanwhile},
		{"concurrent leases", testConcurrentLeases},
		{"bad input", testOutboxInput},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, h)
			jobs, ok := e.store.(tally.FulfillmentStore)
			if !ok {
				t.Fatalf("%T does not implement tally.FulfillmentStore", e.store)
			}
			tc.fn(t, &outbox{env: e.on(t), t: t, jobs: jobs, reward: MustPutReward(t, e.store, "RWD-1", tally.MethodWebhook, "http://127.0.0.1:1/hook", 100)})
		})
	}
}

// outbox is one fulfillment test's store, with a reward to redeem.
type outbox struct {
	*env
	t      *testing.T
	jobs   tally.FulfillmentStore
	reward tally.Reward
}

// pending redeems the reward for a new customer: a job due at once.
func (f *outbox) pending(name string) tally.Redemption {
	f.t.Helper()
	return MustRedeem(f.t, f.ledger, f.customer(name), f.reward)
}

// postpone makes a due job due again at until, by leasing it and recording a failed attempt.
func (f *outbox) postpone(r tally.Redemption, until time.Time) {
	f.t.Helper()
	if ids := f.lease("postpone", time.Now(), 1); !same(ids, []string{r.ReceiptID}) {
		f.t.Fatalf("leased %v to postpone %s", ids, r.ReceiptID)
	}
	if err := f.jobs.FinishAttempt(f.ctx, r.ReceiptID, "postpone", tally.Attempt{Status: tally.FulfillmentPending, RetryAt: until, At: time.Now()}); err != nil {
		f.t.Fatal(err)
	}
}

// dueOrder sorts receipts as a lease takes them: by due time, then receipt id.
func dueOrder(rs ...tally.Redemption) []string {
	sort.Slice(rs, func(i, j int) bool {
		if !rs[i].NextAttemptAt.Equal(rs[j].NextAttemptAt) {
			return rs[i].NextAttemptAt.Before(rs[j].NextAttemptAt)
		}
		return rs[i].ReceiptID < rs[j].ReceiptID
	})
	ids := []string{}
	for _, r := range rs {
		ids = append(ids, r.ReceiptID)
	}
	return ids
}

func (f *outbox) lease(owner string, now time.Time, limit int) []string {
	f.t.Helper()
	rs, err := f.jobs.LeaseRedemptions(f.ctx, owner, now, now.Add(time.Minute), limit)
	if err != nil {
		f.t.Fatalf("lease by %s: %v", owner, err)
	}
	ids := []string{}
	for _, r := range rs {
		if r.Status != tally.FulfillmentPending {
			f.t.Fatalf("leased %s in status %s", r.ReceiptID, r.Status)
		}
		ids = append(ids, r.ReceiptID)
	}
	return ids
}

func (f *outbox) get(id string) tally.Redemption {
	f.t.Helper()
	r, err := f.store.Redemption(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// after is a time just after now, in whole milliseconds (which every store keeps exactly).
func after() time.Time { return time.Now().UTC().Add(time.Millisecond).Truncate(time.Millisecond) }

func same(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func testLease(t *testing.T, f *outbox) {
	later := f.pending("later")
	f.postpone(later, time.Now().Add(time.Hour))
	order := dueOrder(f.pending("a"), f.pending("b"), f.pending("c"))
	now := after()

	if got := f.lease("A", now, 2); !same(got, order[:2]) {
		t.Fatalf("A leased %v, want the two due first, %v", got, order[:2])
	}
	if got := f.lease("B", now, 10); !same(got, order[2:]) {
		t.Fatalf("B leased %v, want only the one A did not hold, %v (and not the one due later)", got, order[2:])
	}
	if got := f.lease("C", now.Add(30*time.Second), 10); len(got) != 0 {
		t.Fatalf("C leased %v while every due job's lease runs", got)
	}
	// A minute later every lease has run out (a dead worker's jobs are taken over), and the later job is
	// still not due.
	if got := f.lease("C", now.Add(time.Minute+time.Millisecond), 10); len(got) != 3 {
		t.Fatalf("C leased %v after the leases ended, want the 3 due", got)
	}
}

func testFinish(t *testing.T, f *outbox) {
	r := f.pending("a")
	now := after()
	f.lease("A", now, 1)
	if err := f.jobs.FinishAttempt(f.ctx, r.ReceiptID, "B", tally.Attempt{Status: tally.FulfillmentDelivered, Tried: true, At: now}); tally.ErrorCode(err) != tally.ECONFLICT {
		t.Fatalf("finish by a worker without the lease: %v, want conflict", err)
	}
	retry := now.Add(10 * time.Second)
	if err := f.jobs.FinishAttempt(f.ctx, r.ReceiptID, "A", tally.Attempt{Status: tally.FulfillmentPending, Tried: true, Error: "HTTP 500", RetryAt: retry, At: now}); err != nil {
		t.Fatal(err)
	}
	got := f.get(r.ReceiptID)
	if got.Status != tally.FulfillmentPending || got.Attempts != 1 || got.LastError != "HTTP 500" || !got.NextAttemptAt.Equal(retry) {
		t.Fatalf("after a failed attempt: %+v", got)
	}
	if err := f.jobs.FinishAttempt(f.ctx, r.ReceiptID, "A", tally.Attempt{Status: tally.FulfillmentDelivered, Tried: true, At: now}); tally.ErrorCode(err) != tally.ECONFLICT {
		t.Fatalf("finish after the lease ended: %v, want conflict", err)
	}
	if ids := f.lease("B", retry.Add(-time.Millisecond), 1); len(ids) != 0 {
		t.Fatalf("leased %v before it was due again", ids)
	}
	if ids := f.lease("B", retry, 1); !same(ids, []string{r.ReceiptID}) {
		t.Fatalf("leased %v when due again", ids)
	}
	// The lease has expired, but no one took it over: the holder may still record its attempt.
	if err := f.jobs.FinishAttempt(f.ctx, r.ReceiptID, "B", tally.Attempt{Status: tally.FulfillmentDelivered, Tried: true, At: retry.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	got = f.get(r.ReceiptID)
	if got.Status != tally.FulfillmentDelivered || got.Attempts != 2 || got.LastError != "" {
		t.Fatalf("after delivery: %+v", got)
	}
	if ids := f.lease("C", retry.Add(2*time.Hour), 10); len(ids) != 0 {
		t.Fatalf("leased a delivered redemption: %v", ids)
	}
	if err := f.jobs.FinishAttempt(f.ctx, "rcp_absent", "A", tally.Attempt{Status: tally.FulfillmentDead, At: now}); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("finish of an absent receipt: %v", err)
	}
}

// testSettledMeanwhile: a redemption reversed by hand while a worker delivers it keeps its refund; the
// worker's outcome is refused, except the refund it made itself.
func testSettledMeanwhile(t *testing.T, f *outbox) {
	r := f.pending("a")
	now := after()
	f.lease("A", now, 1)
	if err := f.store.Update(f.ctx, func(ctx context.Context, tx tally.WriteTx) error {
		return tx.SetRedemptionStatus(ctx, []string{r.ReceiptID}, tally.FulfillmentRefunded, now)
	}); err != nil {
		t.Fatal(err)
	}
	for _, status := range []string{tally.FulfillmentDelivered, tally.FulfillmentPending, tally.FulfillmentDead} {
		err := f.jobs.FinishAttempt(f.ctx, r.ReceiptID, "A", tally.Attempt{Status: status, Tried: true, RetryAt: now, At: now})
		if tally.ErrorCode(err) != tally.ECONFLICT {
			t.Fatalf("finish as %s of a refunded redemption: %v, want conflict", status, err)
		}
	}
	if err := f.jobs.FinishAttempt(f.ctx, r.ReceiptID, "A", tally.Attempt{Status: tally.FulfillmentRefunded, Tried: true, Error: "gave up", At: now}); err != nil {
		t.Fatal(err)
	}
	if got := f.get(r.ReceiptID); got.Status != tally.FulfillmentRefunded || got.Attempts != 1 || got.LastError != "gave up" {
		t.Fatalf("after the refund was recorded: %+v", got)
	}
}

// testConcurrentLeases: workers leasing at once never receive one redemption twice.
func testConcurrentLeases(t *testing.T, f *outbox) {
	const jobs, workers = 40, 8
	for i := 0; i < jobs; i++ {
		f.pending(fmt.Sprint("c", i))
	}
	now := after()
	seen := leaseEachOnce(t, workers, func(owner string) ([]string, error) {
		rs, err := f.jobs.LeaseRedemptions(f.ctx, owner, now, now.Add(time.Minute), 3)
		ids := make([]string, len(rs))
		for i, r := range rs {
			ids[i] = r.ReceiptID
		}
		return ids, err
	})
	if len(seen) != jobs {
		t.Fatalf("%d of %d jobs leased", len(seen), jobs)
	}
}

func testOutboxInput(t *testing.T, f *outbox) {
	now := time.Now()
	for name, err := range map[string]error{
		"no owner":       func() error { _, err := f.jobs.LeaseRedemptions(f.ctx, "", now, now, 1); return err }(),
		"no limit":       func() error { _, err := f.jobs.LeaseRedemptions(f.ctx, "A", now, now, 0); return err }(),
		"unknown status": f.jobs.FinishAttempt(f.ctx, "rcp_x", "A", tally.Attempt{Status: "lost"}),
		"NUL in error":   f.jobs.FinishAttempt(f.ctx, "rcp_x", "A", tally.Attempt{Status: tally.FulfillmentDead, Error: "a\x00b"}),
	} {
		if tally.ErrorCode(err) != tally.EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
}

// leaseEachOnce has workers lease at once, each until nothing is left, and fails the test if any row is
// leased twice; it returns who leased each row. lease takes up to a few rows for owner.
func leaseEachOnce(t *testing.T, workers int, lease func(owner string) ([]string, error)) map[string]string {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		owner := fmt.Sprint("worker-", w)
		wg.Go(func() {
			for {
				ids, err := lease(owner)
				if err != nil {
					errs <- err
					return
				}
				if len(ids) == 0 {
					return
				}
				mu.Lock()
				for _, id := range ids {
					if other, dup := seen[id]; dup {
						mu.Unlock()
						errs <- fmt.Errorf("%s leased by %s and %s", id, other, owner)
						return
					}
					seen[id] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	return seen
}
