package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/postgres/pgtest"
)

// catalogBackends are the databases the rewards command is tested on: a fresh embedded file, and a fresh
// PostgreSQL schema (whose pool is kept small: every command opens its own).
var catalogBackends = []struct {
	name string
	url  func(t *testing.T) string
}{
	{"sqlite", migratedDB},
	{"postgres", func(t *testing.T) string {
		u, err := url.Parse(pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("pool_max_conns", "4")
		u.RawQuery = q.Encode()
		mustCLI(t, "migrate", "--db", u.String())
		return u.String()
	}},
}

// listRewards returns the catalog as rewards list --json prints it, by id.
func listRewards(t *testing.T, db string) map[string]catalogRow {
	t.Helper()
	var rows []catalogRow
	out := mustCLI(t, "rewards", "list", "--db", db, "--json")
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("rewards list --json printed %q: %v", out, err)
	}
	m := map[string]catalogRow{}
	for _, r := range rows {
		m[r.ID] = r
	}
	return m
}

func TestCLIRewards(t *testing.T) {
	for _, b := range catalogBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			testCLIRewards(t, b.url(t))
		})
	}
}

func testCLIRewards(t *testing.T, db string) {
	out := mustCLI(t, "rewards", "create", "--db", db, "--id", "RWD-8842", "--name", "Coffee mug", "--cost", "2500",
		"--inventory", "10", "--min-tier", "silver", "--method", "email", "--description", "A blue mug")
	if want := "created reward RWD-8842 (Coffee mug): 2500 points, stock 10, email, tier silver and above, active\n"; out != want {
		t.Fatalf("rewards create printed %q, want %q", out, want)
	}
	mustCLI(t, "rewards", "create", "--db", db, "--id", "HOOK-1", "--name", "Voucher", "--cost", "100", "--webhook", "https://example.com/fulfil")
	mustCLI(t, "rewards", "create", "--db", db, "--id", "GIFT-10", "--name", "Gift card", "--cost", "1000", "--method", "coupon")

	cat := listRewards(t, db)
	if r := cat["HOOK-1"]; r.FulfillmentMethod != tally.MethodWebhook || r.Inventory != nil || !r.Active || r.WebhookURL != "https://example.com/fulfil" {
		t.Fatalf("a reward created with --webhook: %+v", r)
	}
	if r := cat["GIFT-10"]; r.CouponsFree == nil || *r.CouponsFree != 0 {
		t.Fatalf("a coupon reward without codes lists no free codes: %+v", r)
	}

	// Refusals change nothing and say what is wrong, on one line.
	for _, bad := range []struct {
		args []string
		want []string
	}{
		{[]string{"create", "--id", "RWD-8842", "--name", "Again", "--cost", "1"}, []string{`"RWD-8842" exists already`, "rewards update"}},
		{[]string{"create", "--id", "X", "--name", "X"}, []string{"--cost is required"}},
		{[]string{"create", "--name", "X", "--cost", "5"}, []string{"--id is required"}},
		{[]string{"create", "--id", "X", "--name", "X", "--cost", "0"}, []string{"point_cost must be between 1 and"}},
		{[]string{"create", "--id", "X", "--name", "X", "--cost", "5", "--method", "pigeon"}, []string{"fulfillment_method must be one of"}},
		{[]string{"create", "--id", "X", "--name", "X", "--cost", "5", "--method", "webhook"}, []string{"webhook_url"}},
		{[]string{"create", "--id", "X", "--name", "X", "--cost", "5", "--inventory", "lots"}, []string{"--inventory", `"lots"`}},
		{[]string{"create", "--id", "X", "--name", "X", "--cost", "5", "--inventory", "-1"}, []string{"--inventory"}},
		{[]string{"create", "--id", "X/Y", "--name", "X", "--cost", "5"}, []string{"reward_id must be"}},
		{[]string{"create", "--id", "X", "--name", "caf\xe9", "--cost", "5"}, []string{"name is not valid UTF-8"}},
		{[]string{"update", "--id", "NOPE", "--cost", "5"}, []string{`no reward "NOPE"`}},
		{[]string{"update", "--id", "RWD-8842"}, []string{"nothing to change"}},
		{[]string{"update", "--id", "RWD-8842", "--cost", "-3"}, []string{"point_cost"}},
		{[]string{"update", "--id", "RWD-8842", "--method", "webhook"}, []string{"webhook_url"}},
		{[]string{"deactivate"}, []string{"--id is required"}},
		{[]string{"deactivate", "--id", "NOPE"}, []string{`no reward "NOPE"`}},
		{[]string{"stock", "--id", "RWD-8842"}, []string{"exactly one of --set N, --add N or --unlimited"}},
		{[]string{"stock", "--id", "RWD-8842", "--set", "1", "--add", "1"}, []string{"exactly one"}},
		{[]string{"stock", "--id", "RWD-8842", "--add", "-11"}, []string{"10 units left", "11 cannot be removed"}},
		{[]string{"stock", "--id", "RWD-8842", "--set", "-1"}, []string{"--set"}},
		{[]string{"stock", "--id", "HOOK-1", "--add", "5"}, []string{"unlimited stock"}},
		{[]string{"stock", "--id", "NOPE", "--set", "5"}, []string{`no reward "NOPE"`}},
		{[]string{"frobnicate"}, []string{"unknown rewards subcommand", "create, update"}},
		{[]string{"list", "extra"}, []string{`unexpected argument "extra"`}},
	} {
		args := append([]string{"rewards", bad.args[0], "--db", db}, bad.args[1:]...)
		out, err := cli(t, args...)
		wantOneLineError(t, err, bad.want...)
		if out != "" {
			t.Fatalf("tally %q failed but printed %q", args, out)
		}
	}
	if after := listRewards(t, db); jsonOf(t, after) != jsonOf(t, cat) {
		t.Fatalf("refused commands changed the catalog:\n%v\nwas\n%v", after, cat)
	}

	// update changes only the flags given: the description, tier and stock stay.
	out = mustCLI(t, "rewards", "update", "--db", db, "--id", "RWD-8842", "--name", "Big mug", "--cost", "2600")
	if !strings.HasPrefix(out, "updated reward RWD-8842 (Big mug): 2600 points, stock 10, email, tier silver") {
		t.Fatalf("rewards update printed %q", out)
	}
	r := listRewards(t, db)["RWD-8842"]
	if r.Description != "A blue mug" || r.MinTier != "silver" || *r.Inventory != 10 || !r.CreatedAt.Equal(cat["RWD-8842"].CreatedAt) {
		t.Fatalf("after update: %+v", r)
	}
	mustCLI(t, "rewards", "update", "--db", db, "--id", "RWD-8842", "--min-tier", "", "--inventory", "unlimited")
	if r := listRewards(t, db)["RWD-8842"]; r.MinTier != "" || r.Inventory != nil {
		t.Fatalf("after clearing the tier and the limit: %+v", r)
	}

	// Stock: set, add, remove, lift.
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "40"}, "reward RWD-8842: stock 40\n"},
		{[]string{"--add", "5"}, "reward RWD-8842: stock 45\n"},
		{[]string{"--add", "-45"}, "reward RWD-8842: stock 0\n"},
		{[]string{"--unlimited"}, "reward RWD-8842: stock unlimited\n"},
	} {
		if out := mustCLI(t, append([]string{"rewards", "stock", "--db", db, "--id", "RWD-8842"}, step.args...)...); out != step.want {
			t.Fatalf("rewards stock %v printed %q, want %q", step.args, out, step.want)
		}
	}

	// Deactivate and activate again.
	if out := mustCLI(t, "rewards", "deactivate", "--db", db, "--id", "HOOK-1"); !strings.HasSuffix(out, ", inactive\n") {
		t.Fatalf("rewards deactivate printed %q", out)
	}
	if listRewards(t, db)["HOOK-1"].Active {
		t.Fatal("a deactivated reward is active")
	}
	mustCLI(t, "rewards", "activate", "--db", db, "--id", "HOOK-1")
	if !listRewards(t, db)["HOOK-1"].Active {
		t.Fatal("a reactivated reward is inactive")
	}

	// Coupon codes from a file: blank lines and surrounding spaces are dropped; a repeated or known code
	// is skipped; a bad line is named and adds nothing.
	dir := t.TempDir()
	codes := filepath.Join(dir, "codes.txt")
	writeFile(t, codes, "GC-0001\n  GC-0002  \r\n\nGC-0001\nGC-0003\n")
	if out := mustCLI(t, "rewards", "coupons", "add", "--db", db, "--id", "GIFT-10", "--file", codes); out != "reward GIFT-10: 3 codes added, 1 skipped (already there or repeated), 3 free\n" {
		t.Fatalf("coupons add printed %q", out)
	}
	writeFile(t, codes, "GC-0003\nGC-0004\n")
	if out := mustCLI(t, "rewards", "coupons", "add", "--db", db, "--id", "GIFT-10", "--file", codes); out != "reward GIFT-10: 1 codes added, 1 skipped (already there or repeated), 4 free\n" {
		t.Fatalf("coupons add of a file again printed %q", out)
	}
	badFile := filepath.Join(dir, "bad.txt")
	writeFile(t, badFile, "GC-0005\nGC\x01BAD\n")
	for _, bad := range []struct {
		args []string
		want []string
	}{
		{[]string{"--id", "GIFT-10", "--file", badFile}, []string{badFile + " line 2", "control character"}},
		{[]string{"--id", "GIFT-10", "--file", filepath.Join(dir, "missing.txt")}, []string{"missing.txt"}},
		{[]string{"--id", "RWD-8842", "--file", codes}, []string{"fulfilled by email, not coupon"}},
		{[]string{"--id", "NOPE", "--file", codes}, []string{`no reward "NOPE"`}},
		{[]string{"--id", "GIFT-10"}, []string{"--file are required"}},
	} {
		_, err := cli(t, append([]string{"rewards", "coupons", "add", "--db", db}, bad.args...)...)
		wantOneLineError(t, err, bad.want...)
	}
	mustCLI(t, "rewards", "create", "--db", db, "--id", "GIFT-20", "--name", "Gift card 20", "--cost", "2000", "--method", "coupon")
	_, err := cli(t, "rewards", "coupons", "add", "--db", db, "--id", "GIFT-20", "--file", codes)
	wantOneLineError(t, err, `"GC-0003" belongs to reward "GIFT-10"`)
	if r := listRewards(t, db)["GIFT-10"]; *r.CouponsFree != 4 {
		t.Fatalf("free codes after refused uploads: %d, want 4", *r.CouponsFree)
	}
	table := mustCLI(t, "rewards", "list", "--db", db)
	if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 5 || !strings.HasPrefix(lines[0], "REWARD_ID") ||
		!strings.Contains(table, "Big mug") || !strings.HasSuffix(lines[1], " 4") {
		t.Fatalf("rewards list printed:\n%s", table)
	}

	// Redemptions and dead letters, as the ledger and the fulfillment worker leave them.
	insertRedemptions(t, db, map[string]string{"rcpt-1": tally.FulfillmentDelivered, "rcpt-2": tally.FulfillmentDead, "rcpt-3": tally.FulfillmentDead})
	var page struct {
		Redemptions []redemptionRow `json:"redemptions"`
		NextCursor  string          `json:"next_cursor"`
	}
	out = mustCLI(t, "rewards", "redemptions", "--db", db, "--status", "dead", "--json")
	if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Redemptions) != 2 || page.NextCursor != "" {
		t.Fatalf("rewards redemptions --status dead printed %q (%v)", out, err)
	}
	for _, r := range page.Redemptions {
		if r.Status != tally.FulfillmentDead || !strings.HasPrefix(r.CustomerHash, "th_") {
			t.Fatalf("dead letter %+v", r)
		}
	}
	out = mustCLI(t, "rewards", "redemptions", "--db", db, "--limit", "2")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 4 || !strings.HasPrefix(lines[3], "more: --cursor ") {
		t.Fatalf("a full page printed:\n%s", out)
	} else {
		cursor := strings.TrimPrefix(lines[3], "more: --cursor ")
		rest := mustCLI(t, "rewards", "redemptions", "--db", db, "--limit", "2", "--cursor", cursor)
		if lines := strings.Split(strings.TrimSpace(rest), "\n"); len(lines) != 2 {
			t.Fatalf("the next page printed:\n%s", rest)
		}
	}
	if out := mustCLI(t, "rewards", "retry", "--db", db, "rcpt-2"); !strings.Contains(out, "rcpt-2 of GIFT-10 is pending again") {
		t.Fatalf("rewards retry printed %q", out)
	}
	for _, bad := range []struct {
		args []string
		want []string
	}{
		{[]string{"retry", "rcpt-2"}, []string{"pending, not dead"}},
		{[]string{"retry", "rcpt-1"}, []string{"delivered, not dead"}},
		{[]string{"retry", "rcpt-none"}, []string{`no receipt "rcpt-none"`}},
		{[]string{"retry"}, []string{"name one receipt_id"}},
		{[]string{"redemptions", "--status", "lost"}, []string{"status must be one of"}},
		{[]string{"redemptions", "--limit", "0"}, []string{"limit must be between 1 and 500"}},
		{[]string{"redemptions", "--cursor", "zz"}, []string{"--cursor is malformed"}},
	} {
		_, err := cli(t, append([]string{"rewards", bad.args[0], "--db", db}, bad.args[1:]...)...)
		wantOneLineError(t, err, bad.want...)
	}
	out = mustCLI(t, "rewards", "redemptions", "--db", db, "--status", "dead", "--json")
	if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Redemptions) != 1 || page.Redemptions[0].ReceiptID != "rcpt-3" {
		t.Fatalf("dead letters after a retry: %q (%v)", out, err)
	}
}

func TestCLIRewardsMissingDatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "typo.db")
	_, err := cli(t, "rewards", "list", "--db", "sqlite:"+path)
	wantOneLineError(t, err, "no database at "+path, "tally migrate")
	if _, err := os.Stat(path); err == nil {
		t.Fatal("rewards list created the database")
	}
}

// TestCLICouponsFromStdin uploads codes piped in, as `tally rewards coupons add --file -` reads them. It
// replaces os.Stdin, so it does not run in parallel.
func TestCLICouponsFromStdin(t *testing.T) {
	db := migratedDB(t)
	mustCLI(t, "rewards", "create", "--db", db, "--id", "GIFT", "--name", "Gift card", "--cost", "10", "--method", "coupon")
	path := filepath.Join(t.TempDir(), "piped.txt")
	writeFile(t, path, "P-1\nP-2\n")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stdin := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = stdin }()
	if out := mustCLI(t, "rewards", "coupons", "add", "--db", db, "--id", "GIFT", "--file", "-"); out != "reward GIFT: 2 codes added, 0 skipped (already there or repeated), 2 free\n" {
		t.Fatalf("coupons add --file - printed %q", out)
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// insertRedemptions records a redemption of GIFT-10 in each given state, as the ledger's redeem decision
// and the fulfillment worker would leave it, directly in the database at db.
func insertRedemptions(t *testing.T, db string, states map[string]string) {
	t.Helper()
	ctx := context.Background()
	s, err := openStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key := tally.RandomLedgerKey()
	if s.kind == "sqlite" { // the CLI keeps the embedded ledger's key beside it
		key = mustKeyFile(t, s.sqlitePath)
	}
	l := ledger.New(s, ledger.Options{Key: key})
	defer l.Close()
	h, err := tally.NewCustomerHasher([]byte("rewards-test-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for _, id := range sortedKeys(states) {
		i++
		c := h.Hash("customer-" + id)
		if _, err := l.Write(ctx, ledger.Request{Kind: tally.KindAccrual, Account: c, Key: "seed-" + id, Amount: 1000}); err != nil {
			t.Fatal(err)
		}
		rc, err := l.Write(ctx, ledger.Request{Kind: tally.KindRedemption, Account: c, Key: id, Amount: 1000})
		if err != nil {
			t.Fatal(err)
		}
		at := time.Now().UTC().Add(time.Duration(i) * time.Second)
		err = s.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
			return tx.InsertRedemptions(ctx, []tally.Redemption{{ReceiptID: id, TxSeq: rc.Transaction.Seq, AccountID: c,
				RewardID: "GIFT-10", Points: 1000, Method: tally.MethodWebhook, Status: states[id], Attempts: 8,
				NextAttemptAt: at, LastError: "HTTP 500", CreatedAt: at, UpdatedAt: at}})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return keys
}

// TestCLIRewardsWhileServing administers the catalog with the CLI on the database a running `tally serve`
// uses, while customers redeem the reward through the server: the server sees every change at once, and
// stock added through both at the same time adds up with what the redemptions take.
func TestCLIRewardsWhileServing(t *testing.T) {
	t.Setenv("TALLY_CUSTOMER_SECRET", "rewards-serve-test-secret-0123456789")
	t.Setenv("TALLY_LEDGER_KEY", tally.GenerateLedgerKey())
	for _, b := range catalogBackends {
		t.Run(b.name, func(t *testing.T) {
			db := b.url(t)
			id, secret := createClient(t, db, "ledger:read,ledger:write,admin")
			srv := startServe(t, "--db", db)
			token := fetchToken(t, srv.base, id, secret)

			mustCLI(t, "rewards", "create", "--db", db, "--id", "FLASH", "--name", "Flash sale", "--cost", "50", "--inventory", "100")
			if r := getReward(t, srv.base, token, "FLASH"); r.Name != "Flash sale" || r.Inventory == nil || *r.Inventory != 100 {
				t.Fatalf("the server sees %+v", r)
			}

			const each = 10
			var wg sync.WaitGroup
			errs := make(chan error, 3*each)
			wg.Go(func() { // the CLI adds stock
				for range each {
					if _, err := cli(t, "rewards", "stock", "--db", db, "--id", "FLASH", "--add", "1"); err != nil {
						errs <- fmt.Errorf("cli: %w", err)
					}
				}
			})
			wg.Go(func() { // an administrator adds stock over HTTP
				for range each {
					if status, body, err := postJSON(srv.base, "/v1/catalog/rewards/FLASH/inventory", token, map[string]int{"add": 2}); err != nil || status != 200 {
						errs <- fmt.Errorf("http: %d %s %v", status, body, err)
					}
				}
			})
			for i := range each {
				if status, body, err := postJSON(srv.base, "/v1/ledger/transaction/process", token, accrualRequest(fmt.Sprintf("seed-%d", i), fmt.Sprintf("buyer-%d", i), 50)); err != nil || status != 201 {
					t.Fatalf("seed: %d %s %v", status, body, err)
				}
			}
			wg.Go(func() { // customers redeem it meanwhile
				for i := range each {
					status, body, err := postJSON(srv.base, "/v1/ledger/transaction/process", token, map[string]any{"idempotency_key": fmt.Sprintf("buy-%d", i),
						"customer_hash": fmt.Sprintf("buyer-%d", i), "kind": "redemption", "reward_id": "FLASH", "amount": 50})
					if err != nil || status != 201 {
						errs <- fmt.Errorf("redemption: %d %s %v", status, body, err)
					}
				}
			})
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if r := getReward(t, srv.base, token, "FLASH"); *r.Inventory != 100+each+2*each-each {
				t.Fatalf("stock %d after %d units added by the CLI, %d over HTTP and %d redeemed, want %d", *r.Inventory, each, 2*each, each, 100+2*each)
			}

			mustCLI(t, "rewards", "deactivate", "--db", db, "--id", "FLASH")
			if r := getReward(t, srv.base, token, "FLASH"); r.Active {
				t.Fatal("the server still shows the deactivated reward active")
			}
		})
	}
}

// getReward reads one reward through the server's catalog API.
func getReward(t *testing.T, base, token, id string) tally.Reward {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/v1/catalog/rewards/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	status, body, err := send(req)
	var r tally.Reward
	if err != nil || status != 200 || json.Unmarshal(body, &r) != nil {
		t.Fatalf("GET reward %s: %d %s %v", id, status, body, err)
	}
	return r
}

// TestReadmeCatalogCommands runs the `tally` commands of README.md's catalog section, as written, on a
// fresh database (each with --db added), skipping those with a placeholder to fill in.
func TestReadmeCatalogCommands(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	script := readmeSection(t, string(readme), "## Managing the catalog")
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "tally.db")
	mustCLI(t, "migrate", "--db", db)
	t.Chdir(dir)
	writeFile(t, "codes.txt", "GC-0001\nGC-0002\n")
	ran := 0
	for _, line := range strings.Split(script, "\n") {
		words := shellWords(t, line)
		if len(words) == 0 || words[0] != "tally" || strings.Contains(line, "RECEIPT_ID") {
			continue
		}
		args := words[1:]
		for i, a := range args {
			if strings.HasPrefix(a, "--") {
				args = append(args[:i:i], append([]string{"--db", db}, args[i:]...)...)
				break
			}
		}
		if _, err := cli(t, args...); err != nil {
			t.Fatalf("README: %s: %v", line, err)
		}
		ran++
	}
	if ran < 5 {
		t.Fatalf("ran only %d commands of the README's catalog section:\n%s", ran, script)
	}
	if r := listRewards(t, db); *r["GIFT-10"].CouponsFree != 2 || *r["RWD-8842"].Inventory != 30 || r["RWD-8842"].Active {
		t.Fatalf("after the README's commands: %+v", r)
	}
}

// shellWords splits a command line as sh would for the README's simple lines: words, and double quotes.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case r == '\\' || r == '$' || r == '\'' || r == '|':
			t.Fatalf("README line %q needs a real shell", line)
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
