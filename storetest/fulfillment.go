package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
)

// testFulfillment holds every store to the contracts of tally.FulfillmentStore: leases that no two
// workers hold at once, attempts recorded only by the lease's holder, listing and retrying dead letters.
func testFulfillment(t *testing.T, h Harness) {
	cases := []struct {
		name string
		fn   func(t *testing.T, f *outbox)
	}{
		{"lease", testLease},
		{"finish", testFinish},
		{"settled meanwhile", testSettledMeanwhile},
		{"concurrent leases", testConcurrentLeases},
		{"list and retry", testListRetry},
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
			tc.fn(t, &outbox{env: e.on(t), t: t, jobs: jobs, reward: MustPutReward(t, e.store, "RWD-1", tally.MethodWebhook, "http://127.0.0.1:1/hook", 100),
				now: time.Now().UTC().Truncate(time.Millisecond)})
		})
	}
}

// outbox is one fulfillment test's store, with a reward to redeem and a fixed "now".
type outbox struct {
	*env
	t      *testing.T
	jobs   tally.FulfillmentStore
	reward tally.Reward
	now    time.Time
}

// pending redeems the reward for a new customer, due at due.
func (f *outbox) pending(name string, due time.Time) tally.Redemption {
	f.t.Helper()
	return MustRedeem(f.t, f.ledger, f.customer(name), f.reward, due)
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

func same(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func testLease(t *testing.T, f *outbox) {
	first := f.pending("a", f.now.Add(-3*time.Second))
	second := f.pending("b", f.now.Add(-2*time.Second))
	third := f.pending("c", f.now.Add(-time.Second))
	f.pending("later", f.now.Add(time.Hour))

	if got := f.lease("A", f.now, 2); !same(got, []string{first.ReceiptID, second.ReceiptID}) {
		t.Fatalf("A leased %v, want the two due first", got)
	}
	if got := f.lease("B", f.now, 10); !same(got, []string{third.ReceiptID}) {
		t.Fatalf("B leased %v, want only the one A did not hold (and not the one due later)", got)
	}
	if got := f.lease("C", f.now.Add(30*time.Second), 10); len(got) != 0 {
		t.Fatalf("C leased %v while every due job's lease runs", got)
	}
	// A minute later every lease has run out (a dead worker's jobs are taken over), and the later job is
	// still not due.
	if got := f.lease("C", f.now.Add(time.Minute+time.Millisecond), 10); len(got) != 3 {
		t.Fatalf("C leased %v after the leases ended, want the 3 due", got)
	}
}

func testFinish(t *testing.T, f *outbox) {
	r := f.pending("a", f.now)
	f.lease("A", f.now, 1)
	if err := f.jobs.FinishAttempt(f.ctx, r.ReceiptID, "B", tally.Attempt{Status: tally.FulfillmentDelivered, Tried: true, At: f.now}); tally.ErrorCode(err) != tally.ECONFLICT {
		t.Fatalf("finish by a worker without the lease: %v, want conflict", err)
	}
	retry := f.now.Add(10 * time.Second)
	if err := f.jobs.FinishAttempt(f.ctx, r.ReceiptID, "A", tally.Attempt{Status: tally.FulfillmentPending, Tried: true, Error: "HTTP 500", RetryAt: retry, At: f.now}); err != nil {
		t.Fatal(err)
	}
	got := f.get(r.ReceiptID)
	if got.Status != tally.FulfillmentPending || got.Attempts != 1 || got.LastError != "HTTP 500" || !got.NextAttemptAt.Equal(retry) {
		t.Fatalf("after a failed attempt: %+v", got)
	}
	if err := f.jobs.FinishAttempt(f.ctx, r.ReceiptID, "A", tally.Attempt{Status: tally.FulfillmentDelivered, Tried: true, At: f.now}); tally.ErrorCode(err) != tally.ECONFLICT {
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
	if err := f.jobs.FinishAttempt(f.ctx, "rcp_absent", "A", tally.Attempt{Status: tally.FulfillmentDead, At: f.now}); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("finish of an absent receipt: %v", err)
	}
}

// testSettledMeanwhile: a redemption reversed by hand while a worker delivers it keeps its refund; the
// worker's outcome is refused, except the refund it made itself.
func testSettledMeanwhile(t *testing.T, f *outbox) {
	r := f.pending("a", f.now)
	f.lease("A", f.now, 1)
	if err := f.store.Update(f.ctx, func(ctx context.Context, tx tally.WriteTx) error {
		return tx.SetRedemptionStatus(ctx, []string{r.ReceiptID}, tally.FulfillmentRefunded, f.now)
	}); err != nil {
		t.Fatal(err)
	}
	for _, status := range []string{tally.FulfillmentDelivered, tally.FulfillmentPending, tally.FulfillmentDead} {
		err := f.jobs.FinishAttempt(f.ctx, r.ReceiptID, "A", tally.Attempt{Status: status, Tried: true, RetryAt: f.now, At: f.now})
		if tally.ErrorCode(err) != tally.ECONFLICT {
			t.Fatalf("finish as %s of a refunded redemption: %v, want conflict", status, err)
		}
	}
	if err := f.jobs.FinishAttempt(f.ctx, r.ReceiptID, "A", tally.Attempt{Status: tally.FulfillmentRefunded, Tried: true, Error: "gave up", At: f.now}); err != nil {
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
		f.pending(fmt.Sprint("c", i), f.now.Add(-time.Duration(i)*time.Millisecond))
	}
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		owner := fmt.Sprint("worker-", w)
		wg.Go(func() {
			for {
				rs, err := f.jobs.LeaseRedemptions(f.ctx, owner, f.now, f.now.Add(time.Minute), 3)
				if err != nil {
					errs <- err
					return
				}
				if len(rs) == 0 {
					return
				}
				mu.Lock()
				for _, r := range rs {
					if other, dup := seen[r.ReceiptID]; dup {
						mu.Unlock()
						errs <- fmt.Errorf("%s leased by %s and %s", r.ReceiptID, other, owner)
						return
					}
					seen[r.ReceiptID] = owner
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
	if len(seen) != jobs {
		t.Fatalf("%d of %d jobs leased", len(seen), jobs)
	}
}

func testListRetry(t *testing.T, f *outbox) {
	dead := f.pending("a", f.now)
	done := f.pending("b", f.now)
	f.pending("c", f.now.Add(time.Hour))
	f.lease("A", f.now, 2)
	for id, status := range map[string]string{dead.ReceiptID: tally.FulfillmentDead, done.ReceiptID: tally.FulfillmentDelivered} {
		if err := f.jobs.FinishAttempt(f.ctx, id, "A", tally.Attempt{Status: status, Tried: true, Error: "x", At: f.now}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(filter tally.RedemptionFilter) []string {
		t.Helper()
		rs, err := f.jobs.Redemptions(f.ctx, filter)
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{}
		for _, r := range rs {
			ids = append(ids, r.ReceiptID)
		}
		return ids
	}
	if got := list(tally.RedemptionFilter{Status: tally.FulfillmentDead}); !same(got, []string{dead.ReceiptID}) {
		t.Fatalf("dead letters: %v", got)
	}
	if got := list(tally.RedemptionFilter{AccountID: f.customer("b")}); !same(got, []string{done.ReceiptID}) {
		t.Fatalf("b's redemptions: %v", got)
	}
	if got := list(tally.RedemptionFilter{RewardID: f.reward.ID, Limit: 2}); len(got) != 2 {
		t.Fatalf("limit 2 listed %v", got)
	}
	if got := list(tally.RedemptionFilter{RewardID: "RWD-none"}); len(got) != 0 {
		t.Fatalf("another reward's: %v", got)
	}

	later := f.now.Add(time.Minute)
	r, err := f.jobs.RetryRedemption(f.ctx, dead.ReceiptID, later)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != tally.FulfillmentPending || r.Attempts != 0 || !r.NextAttemptAt.Equal(later) {
		t.Fatalf("retried dead letter: %+v", r)
	}
	if ids := f.lease("B", later, 10); !same(ids, []string{dead.ReceiptID}) {
		t.Fatalf("after the retry, leased %v", ids)
	}
	if _, err := f.jobs.RetryRedemption(f.ctx, done.ReceiptID, later); tally.ErrorCode(err) != tally.ECONFLICT {
		t.Fatalf("retry of a delivered redemption: %v", err)
	}
	if _, err := f.jobs.RetryRedemption(f.ctx, "rcp_absent", later); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("retry of an absent receipt: %v", err)
	}
}

func testOutboxInput(t *testing.T, f *outbox) {
	for name, err := range map[string]error{
		"no owner":       func() error { _, err := f.jobs.LeaseRedemptions(f.ctx, "", f.now, f.now, 1); return err }(),
		"no limit":       func() error { _, err := f.jobs.LeaseRedemptions(f.ctx, "A", f.now, f.now, 0); return err }(),
		"unknown status": f.jobs.FinishAttempt(f.ctx, "rcp_x", "A", tally.Attempt{Status: "lost"}),
		"bad filter":     func() error { _, err := f.jobs.Redemptions(f.ctx, tally.RedemptionFilter{Status: "lost"}); return err }(),
		"NUL in error":   f.jobs.FinishAttempt(f.ctx, "rcp_x", "A", tally.Attempt{Status: tally.FulfillmentDead, Error: "a\x00b"}),
		"huge limit":     func() error { _, err := f.jobs.Redemptions(f.ctx, tally.RedemptionFilter{Limit: 1 << 20}); return err }(),
	} {
		if tally.ErrorCode(err) != tally.EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
}
