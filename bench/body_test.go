package bench

import (
	"encoding/json"
	"maps"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/tally-ledger/tally/earning"
)

// The benchmark's event must be the guide's: the same fields as the sample, and one that the default
// earning rule turns into an accrual for the named customer.
func TestEventBodyIsTheGuides(t *testing.T) {
	sample, err := os.ReadFile("../testdata/genesys/guide-webhook-event.json")
	if err != nil {
		t.Fatal(err)
	}
	var want, got map[string]any
	if err := json.Unmarshal(sample, &want); err != nil {
		t.Fatal(err)
	}
	body := eventBody("ev-1", customerID(7), time.Date(2026, 11, 20, 14, 3, 22, 481e6, time.UTC))
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("event body is not JSON: %v\n%s", err, body)
	}
	if k1, k2 := slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)); !slices.Equal(k1, k2) {
		t.Errorf("event fields %v, the guide's %v", k1, k2)
	}
	for _, k := range []string{"type", "state", "channel", "timestamp"} {
		if got[k] != want[k] {
			t.Errorf("%s = %v, the guide's %v", k, got[k], want[k])
		}
	}
	ev, err := earning.ParseEvent([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "ev-1" || ev.Customer != customerID(7) {
		t.Errorf("event %q of customer %q, want ev-1 of %q", ev.ID, ev.Customer, customerID(7))
	}
	if _, ok := earning.DefaultProgramme().Match(ev); !ok {
		t.Error("the default earning rule does not match the benchmark's event")
	}
}

func TestProcCPU(t *testing.T) {
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	// Burn CPU until this process's time is above zero ticks: on a busy machine a fixed stretch of wall
	// time may hold no tick of CPU. Past the deadline the reading is wrong, not the machine slow.
	var d time.Duration
	for deadline := time.Now().Add(10 * time.Second); d <= 0 && time.Now().Before(deadline); {
		for n := 0; n < 1_000_000; n++ {
			_ = n * n
		}
		d, _ = procCPU(os.Getpid())
	}
	if d <= 0 {
		t.Errorf("CPU time of this process = %v, want > 0", d)
	}
	if b := machineTicks(); b[1] <= 0 || b[0] > b[1] {
		t.Errorf("machine ticks busy %d of %d", b[0], b[1])
	}
}
