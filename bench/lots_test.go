package bench

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/sqlite"
)

// TestLotsOnSQLite runs the lots benchmark small: every redemption must consume the lots it should, the
// expiry job must expire exactly the lapsed lots of each half, and the ledger must verify afterwards.
func TestLotsOnSQLite(t *testing.T) {
	ctx := context.Background()
	cfg := LotsConfig{DB: "sqlite:" + filepath.Join(t.TempDir(), "base.db"), LotsPerCustomer: []int{3, 12}, Customers: 2,
		ExpiryLots: 60, LotsPerAccount: 3, AccrualClients: 2, Duration: 100 * time.Millisecond, Verify: true}
	redeems, exp, err := Lots(ctx, cfg, func(ctx context.Context, url string) (tally.Store, error) {
		db, err := sqlite.Open(ctx, strings.TrimPrefix(url, "sqlite:"))
		if err != nil {
			return nil, err
		}
		if err := db.Migrate(ctx); err != nil {
			db.Close()
			return nil, err
		}
		return db, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(redeems) != 2 {
		t.Fatalf("%d redemption runs, want 2", len(redeems))
	}
	for _, r := range redeems {
		if r.One.OK != 2 || r.All.OK != 2 || r.VerifyError != "" {
			t.Errorf("%d lots: %d and %d redemptions succeeded, verify %q", r.Lots, r.One.OK, r.All.OK, r.VerifyError)
		}
	}
	if exp == nil {
		t.Fatal("no expiry run")
	}
	// 20 accounts of 3 lots of 10 points: the even accounts lapse first, the odd ones later.
	for _, rep := range []struct {
		name string
		got  int64
		want int64
	}{{"lots alone", exp.Alone.Lots, 30}, {"accounts alone", exp.Alone.Transactions, 10}, {"points alone", exp.Alone.Points, 300},
		{"lots beside", exp.Beside.Lots, 30}, {"accounts beside", exp.Beside.Transactions, 10}, {"points beside", exp.Beside.Points, 300}} {
		if rep.got != rep.want {
			t.Errorf("%s = %d, want %d", rep.name, rep.got, rep.want)
		}
	}
	if !strings.HasPrefix(exp.Verified, "verified:") {
		t.Errorf("verify: %s", exp.Verified)
	}
	if exp.AccrualsDuring.Failed() != 0 || exp.AccrualsBefore.Failed() != 0 {
		t.Errorf("accruals failed: %v, %v", exp.AccrualsBefore.Outcomes, exp.AccrualsDuring.Outcomes)
	}
}
