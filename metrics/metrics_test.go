package metrics_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/metrics"
	"github.com/tally-ledger/tally/sqlite"
)

// TestLedgerOperationsCountReplaysApart sends writes through a real ledger and checks which series of
// tally_ledger_operations_total each one lands in: a replay is not counted as another applied write.
func TestLedgerOperationsCountReplaysApart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "tally.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	l := ledger.New(db, ledger.Options{Key: tally.RandomLedgerKey(), Observe: m.ObserveWrite})
	t.Cleanup(l.Close)
	h, err := tally.NewCustomerHasher([]byte("metrics-test-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	customer := h.Hash("customer")

	accrual := ledger.Request{Kind: tally.KindAccrual, Key: "a1", Account: customer, Amount: 100}
	for range 3 { // applied once, then replayed twice
		if _, err := l.Write(ctx, accrual); err != nil {
			t.Fatal(err)
		}
	}
	overdraw := ledger.Request{Kind: tally.KindRedemption, Key: "r1", Account: customer, Amount: 1000}
	for range 2 { // refused, then the remembered refusal replayed
		if _, err := l.Write(ctx, overdraw); tally.ErrorCode(err) != tally.EINSUFFICIENT {
			t.Fatalf("overdraw: %v, want %s", err, tally.EINSUFFICIENT)
		}
	}

	tests := []struct {
		kind, outcome, replayed string
		want                    float64
	}{
		{"accrual", "ok", "false", 1},
		{"accrual", "ok", "true", 2},
		{"redemption", string(tally.EINSUFFICIENT), "false", 1},
		{"redemption", string(tally.EINSUFFICIENT), "true", 1},
		{"redemption", "ok", "false", 0},
	}
	for _, tt := range tests {
		labels := map[string]string{"kind": tt.kind, "outcome": tt.outcome, "replayed": tt.replayed}
		if got := counter(t, m, "tally_ledger_operations_total", labels); got != tt.want {
			t.Errorf("tally_ledger_operations_total%v = %v, want %v", labels, got, tt.want)
		}
	}
	if got := counter(t, m, "tally_idempotent_replays_total", map[string]string{"kind": "accrual"}); got != 2 {
		t.Errorf("tally_idempotent_replays_total{kind=accrual} = %v, want 2", got)
	}
}

// counter reads the counter of the series with exactly these labels from what the registry exposes, 0
// when there is no such series.
func counter(t *testing.T, m *metrics.Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			if len(s.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range s.GetLabel() {
				if v, ok := labels[l.GetName()]; !ok || v != l.GetValue() {
					continue series
				}
			}
			return s.GetCounter().GetValue()
		}
	}
	return 0
}
