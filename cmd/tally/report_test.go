package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/sqlite"
)

// reportDB is a migrated embedded database with a little history written today: 120 points accrued, 20
// redeemed.
func reportDB(t *testing.T) string {
	t.Helper()
	db := migratedDB(t)
	store, l := mustOpenLedger(t, db, ledger.Options{})
	defer store.Close()
	defer l.Close()
	h := mustHasher(t, testCustomerSecret)
	mustWrite(t, l,
		ledger.Request{Kind: tally.KindAccrual, Key: "a1", Account: h.Hash("ann"), Amount: 100},
		ledger.Request{Kind: tally.KindAccrual, Key: "b1", Account: h.Hash("bob"), Amount: 20},
		ledger.Request{Kind: tally.KindRedemption, Key: "a2", Account: h.Hash("ann"), Amount: 20},
	)
	return db
}

func TestCLIReportRollForward(t *testing.T) {
	t.Parallel()
	db := reportDB(t)
	today := time.Now().UTC().Format("2006-01-02")
	out := mustCLI(t, "report", "rollforward", "--db", db, "--from", today, "--to", today, "--period", "day",
		"--point-value", "0.01", "--currency", "EUR")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("%v in\n%s", err, out)
	}
	want := [][]string{
		{"period", "start", "end", "opening", "issued", "redeemed", "expired", "adjusted", "closing",
			"currency", "opening_value", "issued_value", "redeemed_value", "expired_value", "adjusted_value", "closing_value"},
		{today, today, today, "0", "120", "-20", "0", "0", "100", "EUR", "0.00", "1.20", "-0.20", "0.00", "0.00", "1.00"},
	}
	if len(rows) != 2 || strings.Join(rows[0], ",") != strings.Join(want[0], ",") || strings.Join(rows[1], ",") != strings.Join(want[1], ",") {
		t.Fatalf("CSV\n%q\nwant\n%q", rows, want)
	}

	out = mustCLI(t, "report", "rollforward", "--db", db, "--format", "json")
	var rf struct {
		Period string `json:"period"`
		Rows   []struct {
			Closing int64 `json:"closing"`
		} `json:"rows"`
		Reconciliation struct {
			CustomerBalances int64 `json:"customer_balances"`
			Reconciled       bool  `json:"reconciled"`
		} `json:"reconciliation"`
	}
	if err := json.Unmarshal([]byte(out), &rf); err != nil {
		t.Fatalf("%v in\n%s", err, out)
	}
	last := rf.Rows[len(rf.Rows)-1]
	if rf.Period != "month" || last.Closing != 100 || rf.Reconciliation.CustomerBalances != 100 || !rf.Reconciliation.Reconciled {
		t.Fatalf("JSON %s", out)
	}
}

func TestCLIReportOutstandingAndBreakage(t *testing.T) {
	t.Parallel()
	db := reportDB(t)
	out := mustCLI(t, "report", "outstanding", "--db", db, "--point-value", "0.5", "--currency", "GBP")
	want := "dimension,bucket,points,lots,pending_points,lapsed_points,currency,value\n" +
		"status,pending,0,0,,,GBP,0.00\nstatus,active,100,2,,,GBP,50.00\nexpiry_month,never,100,2,0,0,GBP,50.00\n"
	if out != want {
		t.Fatalf("outstanding CSV:\n%s\nwant\n%s", out, want)
	}
	out = mustCLI(t, "report", "outstanding", "--db", db, "--format", "json")
	if !strings.Contains(out, `"reconciled": true`) || !strings.Contains(out, `"total_points": 100`) {
		t.Fatalf("outstanding JSON:\n%s", out)
	}
	out = mustCLI(t, "report", "breakage", "--db", db)
	if !strings.HasPrefix(out, "cohort,lots,issued,redeemed,expired,other,remaining,lapsed,matured,breakage_rate\n") {
		t.Fatalf("breakage CSV:\n%s", out)
	}
}

// TestCLIReportUnbalanced: a balance changed behind the ledger's back is printed as it is, and the
// command fails with status 3.
func TestCLIReportUnbalanced(t *testing.T) {
	t.Parallel()
	db := reportDB(t)
	store, err := sqlite.Open(context.Background(), strings.TrimPrefix(db, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.SQL().Exec(`UPDATE accounts SET balance = balance + 1000 WHERE kind = 'customer' AND balance = 20`); err != nil {
		t.Fatal(err)
	}
	store.Close()
	out, err := cli(t, "report", "rollforward", "--db", db, "--format", "json")
	wantOneLineError(t, err, "does not reconcile", "tally verify")
	if code := exitCode(err); code != 3 {
		t.Fatalf("exit status %d, want 3", code)
	}
	if !strings.Contains(out, `"customer_balances": 1100`) || !strings.Contains(out, `"reconciled": false`) {
		t.Fatalf("output:\n%s", out)
	}
}

func TestCLIReportBadParameters(t *testing.T) {
	t.Parallel()
	db := reportDB(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"report"}, []string{"outstanding, rollforward, breakage"}},
		{[]string{"report", "liability"}, []string{`unknown report "liability"`}},
		{[]string{"report", "rollforward", "--db", db, "--period", "week"}, []string{`"week"`, "day, month, quarter, year"}},
		{[]string{"report", "rollforward", "--db", db, "--from", "2026-13-01"}, []string{`from "2026-13-01"`, "YYYY-MM-DD"}},
		{[]string{"report", "rollforward", "--db", db, "--from", "2026-03-01", "--to", "2026-02-01"}, []string{"after"}},
		{[]string{"report", "rollforward", "--db", db, "--from", "2000-01-01", "--to", "2026-01-01", "--period", "day"}, []string{"more than 3660 rows"}},
		{[]string{"report", "outstanding", "--db", db, "--format", "xml"}, []string{`"xml"`, "json or csv"}},
		{[]string{"report", "outstanding", "--db", db, "--point-value", "0.01"}, []string{"currency", "ISO 4217"}},
		{[]string{"report", "outstanding", "--db", db, "--point-value", "1e-2", "--currency", "EUR"}, []string{"0.01"}},
		{[]string{"report", "breakage", "--db", db, "--currency", "EUR"}, []string{"needs a point value"}},
		{[]string{"report", "breakage", "--db", "sqlite:" + t.TempDir() + "/typo.db"}, []string{"no database at"}},
	} {
		_, err := cli(t, tc.args...)
		wantOneLineError(t, err, tc.want...)
		if code := exitCode(err); code != 1 {
			t.Fatalf("%q: exit status %d, want 1", tc.args, code)
		}
	}
}

// TestCLIReportProgrammeValue: the programme file's "reporting" setting gives the point value, unless a
// flag does; serve reads it too.
func TestCLIReportProgrammeValue(t *testing.T) {
	t.Parallel()
	db := reportDB(t)
	dir := t.TempDir()
	programme := filepath.Join(dir, "programme.json")
	if err := os.WriteFile(programme, []byte(`{"earning_rules":[{"name":"r","filter":"$.type = 'WebChat'","points":5}],
		"reporting":{"point_value":0.25,"currency":"USD"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, "report", "outstanding", "--db", db, "--programme", programme)
	if !strings.Contains(out, "status,active,100,2,,,USD,25.00\n") {
		t.Fatalf("outstanding with the programme's value:\n%s", out)
	}
	out = mustCLI(t, "report", "outstanding", "--db", db, "--programme", programme, "--point-value", "1", "--currency", "EUR")
	if !strings.Contains(out, "status,active,100,2,,,EUR,100.00\n") {
		t.Fatalf("outstanding with the flags' value:\n%s", out)
	}
	c, err := parseServe([]string{"--programme", programme}, io.Discard)
	if err != nil || c.pointValue != "0.25" || c.currency != "USD" {
		t.Fatalf("serve: %+v, %v", c, err)
	}

	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"reporting":{"point_value":"0.01","currency":"euro"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = cli(t, "report", "outstanding", "--db", db, "--programme", bad)
	wantOneLineError(t, err, "programme: reporting", "ISO 4217")
	_, err = parseServe([]string{"--programme", bad}, io.Discard)
	wantOneLineError(t, err, "programme: reporting", "ISO 4217")
}
