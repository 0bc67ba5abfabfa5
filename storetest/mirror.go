package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
)

// testMirror holds every store to the contracts of tally.MirrorStore: coalesced rows whose wanted
// version only rises, leases no two workers hold at once, and results recorded only by the lease's holder.
func testMirror(t *testing.T, h Harness) {
	cases := []struct {
		name string
		fn   func(t *testing.T, ctx context.Context, m tally.MirrorStore)
	}{
		{"want, lease, finish", testMirrorCycle},
		{"wanted version only rises", testMirrorCoalesce},
		{"failure retries later", testMirrorFailure},
		{"lost lease", testMirrorLostLease},
		{"concurrent leases", testMirrorConcurrent},
		{"bad input", testMirrorInput},
		{"refresh", testMirrorRefresh},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, h)
			m, ok := e.store.(tally.MirrorStore)
			if !ok {
				t.Fatalf("%T does not implement tally.MirrorStore", e.store)
			}
			tc.fn(t, e.ctx, m)
		})
	}
}

var sealed = []byte("sealed-contact")

// leaseMirrors leases for owner at now and returns the leased rows.
func leaseMirrors(t *testing.T, ctx context.Context, m tally.MirrorStore, owner string, now time.Time) []tally.ContactMirror {
	t.Helper()
	rows, err := m.LeaseMirrors(ctx, owner, now, now.Add(time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func mustWant(t *testing.T, ctx context.Context, m tally.MirrorStore, account string, version int64, now time.Time) {
	t.Helper()
	if err := m.WantMirror(ctx, account, sealed, version, now); err != nil {
		t.Fatal(err)
	}
}

func testMirrorCycle(t *testing.T, ctx context.Context, m tally.MirrorStore) {
	now := time.Now()
	mustWant(t, ctx, m, "acct-a", 3, now)
	rows := leaseMirrors(t, ctx, m, "w1", now)
	if len(rows) != 1 || rows[0].AccountID != "acct-a" || rows[0].WantedVersion != 3 || rows[0].SentVersion != 0 || string(rows[0].ContactSealed) != string(sealed) {
		t.Fatalf("leased %+v", rows)
	}
	if again := leaseMirrors(t, ctx, m, "w2", now); len(again) != 0 {
		t.Fatalf("a leased row was leased again: %+v", again)
	}
	if err := m.FinishMirror(ctx, "acct-a", "w1", tally.MirrorResult{SentVersion: 3, RetryAt: now, At: now}); err != nil {
		t.Fatal(err)
	}
	if rows := leaseMirrors(t, ctx, m, "w1", now.Add(time.Second)); len(rows) != 0 {
		t.Fatalf("a sent row is due again: %+v", rows)
	}
	mustWant(t, ctx, m, "acct-a", 4, now)
	if rows := leaseMirrors(t, ctx, m, "w1", now.Add(time.Second)); len(rows) != 1 || rows[0].SentVersion != 3 || rows[0].WantedVersion != 4 {
		t.Fatalf("a raised row: %+v", rows)
	}
}

func testMirrorCoalesce(t *testing.T, ctx context.Context, m tally.MirrorStore) {
	now := time.Now()
	mustWant(t, ctx, m, "acct-a", 5, now)
	mustWant(t, ctx, m, "acct-a", 2, now) // an older write's upsert, late
	rows := leaseMirrors(t, ctx, m, "w1", now)
	if len(rows) != 1 || rows[0].WantedVersion != 5 {
		t.Fatalf("leased %+v, want one row at version 5", rows)
	}
	// A worker that read version 7 (newer than wanted) settles everything up to it.
	if err := m.FinishMirror(ctx, "acct-a", "w1", tally.MirrorResult{SentVersion: 7, RetryAt: now, At: now}); err != nil {
		t.Fatal(err)
	}
	mustWant(t, ctx, m, "acct-a", 6, now)
	if rows := leaseMirrors(t, ctx, m, "w1", now.Add(time.Second)); len(rows) != 0 {
		t.Fatalf("version 6 is due although 7 was sent: %+v", rows)
	}
}

func testMirrorFailure(t *testing.T, ctx context.Context, m tally.MirrorStore) {
	now := time.Now()
	mustWant(t, ctx, m, "acct-a", 1, now)
	leaseMirrors(t, ctx, m, "w1", now)
	retry := now.Add(time.Hour)
	if err := m.FinishMirror(ctx, "acct-a", "w1", tally.MirrorResult{Error: "token endpoint down", RetryAt: retry, At: now}); err != nil {
		t.Fatal(err)
	}
	if rows := leaseMirrors(t, ctx, m, "w1", now.Add(time.Minute)); len(rows) != 0 {
		t.Fatalf("a failed row is due before its retry time: %+v", rows)
	}
	rows := leaseMirrors(t, ctx, m, "w1", retry)
	if len(rows) != 1 || rows[0].Attempts != 1 || rows[0].LastError != "token endpoint down" {
		t.Fatalf("after the retry time: %+v", rows)
	}
}

func testMirrorLostLease(t *testing.T, ctx context.Context, m tally.MirrorStore) {
	now := time.Now()
	mustWant(t, ctx, m, "acct-a", 1, now)
	if _, err := m.LeaseMirrors(ctx, "w1", now, now.Add(time.Second), 1); err != nil {
		t.Fatal(err)
	}
	later := now.Add(2 * time.Second) // w1's lease has run out
	if rows := leaseMirrors(t, ctx, m, "w2", later); len(rows) != 1 {
		t.Fatalf("an expired lease was not taken over: %+v", rows)
	}
	err := m.FinishMirror(ctx, "acct-a", "w1", tally.MirrorResult{SentVersion: 1, RetryAt: later, At: later})
	if tally.ErrorCode(err) != tally.ECONFLICT {
		t.Fatalf("finish by a lost lease: %v, want ECONFLICT", err)
	}
	err = m.FinishMirror(ctx, "nobody", "w1", tally.MirrorResult{RetryAt: later, At: later})
	if tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("finish of no row: %v, want ENOTFOUND", err)
	}
}

func testMirrorConcurrent(t *testing.T, ctx context.Context, m tally.MirrorStore) {
	const rows, workers = 40, 8
	now := time.Now()
	for i := 0; i < rows; i++ {
		mustWant(t, ctx, m, fmt.Sprint("acct-", i), 1, now)
	}
	seen := leaseEachOnce(t, workers, func(owner string) ([]string, error) {
		got, err := m.LeaseMirrors(ctx, owner, now, now.Add(time.Minute), 3)
		ids := make([]string, len(got))
		for i, r := range got {
			ids[i] = r.AccountID
		}
		return ids, err
	})
	if len(seen) != rows {
		t.Fatalf("leased %d rows, want %d", len(seen), rows)
	}
}

func testMirrorInput(t *testing.T, ctx context.Context, m tally.MirrorStore) {
	now := time.Now()
	bad := []struct {
		name    string
		account string
		sealed  []byte
		version int64
	}{
		{"no account", "", sealed, 1},
		{"no contact", "acct-a", nil, 1},
		{"no version", "acct-a", sealed, 0},
	}
	for _, b := range bad {
		if err := m.WantMirror(ctx, b.account, b.sealed, b.version, now); tally.ErrorCode(err) != tally.EINVALID {
			t.Errorf("%s: %v, want EINVALID", b.name, err)
		}
	}
	if _, err := m.LeaseMirrors(ctx, "", now, now, 1); tally.ErrorCode(err) != tally.EINVALID {
		t.Errorf("lease without owner: %v, want EINVALID", err)
	}
	if rows := leaseMirrors(t, ctx, m, "w1", now); len(rows) != 0 {
		t.Errorf("bad input left rows: %+v", rows)
	}
}

// testMirrorRefresh: a later write raises an existing row's wanted version (due at once) and never
// lowers it; an account without a row gets none.
func testMirrorRefresh(t *testing.T, ctx context.Context, m tally.MirrorStore) {
	now := time.Now()
	mustWant(t, ctx, m, "acct-r", 2, now)
	rows := leaseMirrors(t, ctx, m, "w1", now)
	if len(rows) != 1 {
		t.Fatalf("leased %v", rows)
	}
	if err := m.FinishMirror(ctx, "acct-r", "w1", tally.MirrorResult{SentVersion: 2, RetryAt: now, At: now}); err != nil {
		t.Fatal(err)
	}
	later := now.Add(time.Second)
	for _, v := range []int64{5, 3} {
		if err := m.RefreshMirror(ctx, "acct-r", v, later); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.RefreshMirror(ctx, "acct-none", 9, later); err != nil {
		t.Fatal(err)
	}
	rows = leaseMirrors(t, ctx, m, "w2", later)
	if len(rows) != 1 || rows[0].AccountID != "acct-r" || rows[0].WantedVersion != 5 {
		t.Fatalf("after refreshes: %+v, want acct-r wanting version 5 and no other row", rows)
	}
}
