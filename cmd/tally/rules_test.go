package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/earning"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/sqlite"
)

// TestCLIRulesAndTiers runs tally rules and tally tiers on a database whose rules were seeded from the
// documented example programme, as serve seeds them.
func TestCLIRulesAndTiers(t *testing.T) {
	t.Parallel()
	const programme = "../../testdata/programme.json"
	db := migratedDB(t)
	ctx := context.Background()
	path := strings.TrimPrefix(db, "sqlite:")
	// The customer secret serve would have generated: the CLI generates none for a written database.
	if err := os.WriteFile(path+".secret", []byte("rules-test-customer-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := earning.LoadProgramme(programme)
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC) }
	engine := earning.NewEngine(store, p, clock)
	if _, err := engine.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	// A customer reaches silver (5000 qualifying points) with one accrual.
	silver := strings.Repeat("ab", 32)
	l := ledger.New(store, ledger.Options{Key: mustKeyFile(t, path), Tiers: p, Earner: engine, Clock: clock})
	if rc, err := l.Write(ctx, ledger.Request{Kind: tally.KindAccrual, Key: "s1", Account: silver, Amount: 5000, Reason: "test"}); err != nil || rc.TierChange == nil {
		t.Fatalf("accrual: %+v %v", rc, err)
	}
	l.Close()
	store.Close()

	var list struct {
		Rules []tally.RuleVersion `json:"rules"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, "rules", "list", "--db", db, "--json")), &list); err != nil || len(list.Rules) != 4 {
		t.Fatalf("rules list: %+v %v", list, err)
	}
	if out := mustCLI(t, "rules", "show", "--db", db, "long-voice"); !strings.Contains(out, `"version": 1`) || !strings.Contains(out, "handle_time_seconds / 60") {
		t.Fatalf("rules show printed %s", out)
	}
	var res earning.TestResult
	out := mustCLI(t, "rules", "test", "--db", db, "--programme", programme, "--event", "../../testdata/programme-event.json")
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	// long-voice pays 10 + 754/60 = 22, survey-bonus 5; spring-double is outside its campaign now.
	if !res.Earns || res.Points != 27 || res.Tier != "base" {
		t.Fatalf("rules test printed %s", out)
	}
	if _, err := cli(t, "rules", "test", "--db", db); err == nil {
		t.Fatal("rules test without --event succeeded")
	}
	if out := mustCLI(t, "tiers", "show", "--db", db, "--programme", programme, "th_"+silver); !strings.Contains(out, `"tier": "silver"`) {
		t.Fatalf("tiers show printed %s", out)
	}
	// Qualifying points earned in June 2026 still hold silver at the end of any period within a year.
	out = mustCLI(t, "tiers", "review", "--db", db, "--programme", programme, "--period-end", "2026-07-01T00:00:00Z")
	if !strings.Contains(out, `"reviewed": 1`) || !strings.Contains(out, `"downgraded": 0`) {
		t.Fatalf("tiers review printed %s", out)
	}
}
