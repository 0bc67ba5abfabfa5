package genesysmirror_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api"
	"github.com/tally-ledger/tally/api/apitest"
	"github.com/tally-ledger/tally/balancecache"
	"github.com/tally-ledger/tally/earning"
	"github.com/tally-ledger/tally/genesysmirror"
	"github.com/tally-ledger/tally/postgres"
	"github.com/tally-ledger/tally/sqlite"
)

// rig is a Tally API server whose Genesys events queue mirrors, and a fake Genesys they are sent to.
type rig struct {
	t      *testing.T
	fake   *fakeGenesys
	srv    *apitest.Server
	outbox *genesysmirror.Outbox
	convs  int // conversations posted
}

func newRig(t *testing.T, b apitest.Backend, ttl int) *rig {
	t.Helper()
	r := &rig{t: t, fake: newFakeGenesys(t, ttl)}
	r.srv = apitest.Start(t, b, apitest.Config{Mirror: func(s tally.Store) api.ContactMirror {
		r.outbox = &genesysmirror.Outbox{Store: s.(tally.MirrorStore), Key: apitest.LedgerKey}
		return r.outbox
	}})
	return r
}

// worker starts a worker (a replica's) until the test ends; rdb shares its token when not nil.
func (r *rig) worker(rdb *redis.Client) {
	r.t.Helper()
	w := r.newWorker(rdb)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	r.t.Cleanup(func() { cancel(); wg.Wait() })
}

// newWorker returns a worker that is not running.
func (r *rig) newWorker(rdb *redis.Client) *genesysmirror.Worker {
	return genesysmirror.New(genesysmirror.Options{
		Outbox: r.outbox, Accounts: r.srv.Store, TierOf: earning.NewEngine(r.srv.Store.(tally.ProgrammeStore), earning.DefaultProgramme(), nil).Tier,
		Client: &genesysmirror.Client{API: r.fake.api.URL,
			Tokens: genesysmirror.NewTokens(r.fake.login.URL+"/oauth/token", r.fake.id, r.fake.secret, rdb)},
		Fields: genesysmirror.Fields{Balance: "loyaltyBalance_number", Tier: "loyaltyTier_text"},
		Poll:   20 * time.Millisecond, Backoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
}

// event posts a customer.end event naming contact; it earns the default rule's points.
func (r *rig) event(contact string) {
	r.t.Helper()
	r.convs++
	body := fmt.Sprintf(`{"conversationId":"conv-%d-%s","participantId":"p-1","mediaType":"MESSAGE","messageType":"WEBMESSAGING","externalContactId":%q}`,
		r.convs, r.t.Name(), contact)
	if res := r.srv.Post("/v1/ledger/transaction/process", []byte(body)); res.Status != 201 {
		r.t.Fatalf("event: %d %s", res.Status, res.Body)
	}
}

// waitBalance waits until the contact's last PUT shows balance points.
func (r *rig) waitBalance(contact string, points int64) {
	r.t.Helper()
	waitFor(r.t, fmt.Sprintf("%s to show %d points", contact, points), func() bool {
		f := r.fake.last(contact)
		return f != nil && f["loyaltyBalance_number"] == float64(points)
	})
}

// waitFor polls cond until it holds; the deadline only turns a hang into a failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func forEachBackend(t *testing.T, fn func(t *testing.T, b apitest.Backend)) {
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) { t.Parallel(); fn(t, b) })
	}
}

func TestBalanceAndTierArrive(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b apitest.Backend) {
		r := newRig(t, b, 60)
		r.worker(nil)
		for range 3 {
			r.event("contact-a")
		}
		r.event("contact-b")
		r.waitBalance("contact-a", 3*earning.DefaultPoints)
		r.waitBalance("contact-b", earning.DefaultPoints)
		f := r.fake.last("contact-a")
		if f["loyaltyTier_text"] != earning.DefaultProgramme().TierOf(3*earning.DefaultPoints) || f["favourite_text"] != "tea" {
			t.Errorf("custom fields %v: want the tier, and the contact's other fields kept", f)
		}
		r.fake.state(func() {
			if c := r.fake.contacts["contact-a"]; c["firstName"] != "Ada" {
				t.Errorf("the PUT lost the contact's name: %v", c)
			}
		})
	})
}

func TestTokenRenewedMidRun(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b apitest.Backend) {
		r := newRig(t, b, 1) // tokens live one second
		r.worker(nil)
		r.event("contact-a")
		r.waitBalance("contact-a", earning.DefaultPoints)
		time.Sleep(1500 * time.Millisecond) // the token expires
		r.event("contact-a")
		r.waitBalance("contact-a", 2*earning.DefaultPoints)
		r.fake.state(func() {
			if r.fake.issued < 2 {
				t.Errorf("%d tokens issued across an expiry, want a renewal", r.fake.issued)
			}
		})
	})
}

func TestRefusedTokenRefreshedAndRetried(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b apitest.Backend) {
		r := newRig(t, b, 3600)
		r.worker(nil)
		r.event("contact-a")
		r.waitBalance("contact-a", earning.DefaultPoints)
		// Genesys revokes the token the worker has cached, long before its expires_in.
		r.fake.state(func() { r.fake.tokens = map[string]time.Time{} })
		r.event("contact-a")
		r.waitBalance("contact-a", 2*earning.DefaultPoints)
		r.fake.state(func() {
			if r.fake.refused != 1 || r.fake.issued != 2 {
				t.Errorf("%d refused, %d issued: want one 401, then a new token and the request retried", r.fake.refused, r.fake.issued)
			}
		})
	})
}

func TestRetryAfterHonoured(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b apitest.Backend) {
		r := newRig(t, b, 3600)
		r.fake.state(func() { r.fake.throttle = 1 })
		r.worker(nil)
		r.event("contact-a")
		r.waitBalance("contact-a", earning.DefaultPoints)
		r.fake.state(func() {
			if len(r.fake.throttled) != 1 || len(r.fake.puts) != 1 {
				t.Fatalf("%d throttled, %d puts", len(r.fake.throttled), len(r.fake.puts))
			}
			if wait := r.fake.puts[0].at.Sub(r.fake.throttled[0]); wait < time.Second {
				t.Errorf("sent again %s after a 429 with Retry-After: 1", wait)
			}
		})
	})
}

func TestUpdatesWaitForTheTokenEndpoint(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b apitest.Backend) {
		r := newRig(t, b, 3600)
		r.fake.state(func() { r.fake.loginDown = true })
		r.worker(nil)
		r.event("contact-a")
		r.event("contact-b")
		// The worker tries, fails to get a token, and backs off; nothing is lost meanwhile.
		waitFor(t, "attempts while the token endpoint is down", func() bool {
			return mirrorAttempts(t, r.srv.Store, r.srv.Hasher.Hash("contact-a")) >= 2
		})
		r.fake.state(func() {
			if len(r.fake.puts) != 0 {
				t.Fatalf("%d PUTs without a token", len(r.fake.puts))
			}
			r.fake.loginDown = false
		})
		r.waitBalance("contact-a", earning.DefaultPoints)
		r.waitBalance("contact-b", earning.DefaultPoints)
	})
}

// While no token can be had, a round asks the token endpoint once, not once per due row, and puts the
// whole batch back to wait.
func TestNoTokenBlocksTheRound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b apitest.Backend) {
		r := newRig(t, b, 3600)
		r.fake.state(func() { r.fake.loginDown = true })
		contacts := []string{"contact-a", "contact-b", "contact-c"}
		for _, c := range contacts {
			r.event(c)
		}
		n, err := r.newWorker(nil).RunOnce(context.Background())
		if err != nil || n != len(contacts) {
			t.Fatalf("round leased %d (%v), want %d", n, err, len(contacts))
		}
		r.fake.state(func() {
			if r.fake.tries != 1 {
				t.Errorf("one round asked the token endpoint %d times", r.fake.tries)
			}
		})
		for _, c := range contacts {
			if a := mirrorAttempts(t, r.srv.Store, r.srv.Hasher.Hash(c)); a != 1 {
				t.Errorf("%s: %d attempts recorded, want 1", c, a)
			}
		}
	})
}

func TestTwoWorkersNeverSendOneRowAtOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b apitest.Backend) {
		r := newRig(t, b, 3600)
		r.fake.state(func() { r.fake.putDelay = 30 * time.Millisecond })
		rdb := testRedis(t)
		r.worker(rdb)
		r.worker(rdb)
		const contacts = 12
		for range 3 {
			for c := range contacts {
				r.event(fmt.Sprint("contact-", c))
			}
		}
		for c := range contacts {
			r.waitBalance(fmt.Sprint("contact-", c), 3*earning.DefaultPoints)
		}
		r.fake.state(func() {
			if r.fake.overlaps != 0 {
				t.Errorf("%d PUTs of one contact overlapped", r.fake.overlaps)
			}
		})
	})
}

func TestContactIDNeverStoredInClear(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b apitest.Backend) {
		r := newRig(t, b, 3600)
		r.worker(nil)
		const contact = "ext-contact-7f3a9c"
		r.event(contact)
		r.waitBalance(contact, earning.DefaultPoints)
		dump := dumpMirror(t, r.srv.Store)
		if len(dump) == 0 {
			t.Fatal("the contact_mirror table is empty")
		}
		if bytes.Contains(dump, []byte(contact)) {
			t.Fatalf("contact_mirror holds the contact id in clear: %q", dump)
		}
	})
}

// dumpMirror returns every column of every row of contact_mirror, as the database returns them.
func dumpMirror(t *testing.T, s tally.Store) []byte {
	t.Helper()
	var out []byte
	const q = `SELECT account_id, contact_sealed, wanted_version, sent_version, lease_owner, last_error FROM contact_mirror`
	switch db := s.(type) {
	case *sqlite.DB:
		rows, err := db.SQL().Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var a, o, e string
			var sealed []byte
			var w, v int64
			if err := rows.Scan(&a, &sealed, &w, &v, &o, &e); err != nil {
				t.Fatal(err)
			}
			out = fmt.Appendf(out, "%s|%s|%d|%d|%s|%s\n", a, sealed, w, v, o, e)
		}
	case *postgres.DB:
		rows, err := db.Pool().Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var a, o, e string
			var sealed []byte
			var w, v int64
			if err := rows.Scan(&a, &sealed, &w, &v, &o, &e); err != nil {
				t.Fatal(err)
			}
			out = fmt.Appendf(out, "%s|%s|%d|%d|%s|%s\n", a, sealed, w, v, o, e)
		}
	default:
		t.Fatalf("unknown store %T", s)
	}
	return out
}

// mirrorAttempts reads the attempts of an account's row.
func mirrorAttempts(t *testing.T, s tally.Store, account string) int {
	t.Helper()
	const q = `SELECT attempts FROM contact_mirror WHERE account_id = `
	var n int
	var err error
	switch db := s.(type) {
	case *sqlite.DB:
		err = db.SQL().QueryRow(q+"?", account).Scan(&n)
	case *postgres.DB:
		err = db.Pool().QueryRow(context.Background(), q+"$1", account).Scan(&n)
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// testRedis connects to the test Redis, or returns nil outside CI when there is none.
func testRedis(t *testing.T) *redis.Client {
	t.Helper()
	u := os.Getenv("TALLY_TEST_REDIS_URL")
	if u == "" {
		u = "redis://127.0.0.1:6379/0"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := balancecache.OpenRedis(ctx, u)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis at %s: %v", u, err)
		}
		t.Logf("no redis at %s: the workers do not share their token", u)
		return nil
	}
	t.Cleanup(func() { c.Close() })
	return c
}
