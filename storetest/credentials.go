package storetest

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/auth"
)

// RunCredentials is the conformance suite of tally.CredentialStore. open returns a fresh, migrated,
// empty store that the test owns; open closes it when the test ends (t.Cleanup).
func RunCredentials(t *testing.T, open func(t testing.TB) tally.CredentialStore) {
	t.Run("ErrorCodes", func(t *testing.T) { t.Parallel(); testCredentialCodes(t, open) })
	t.Run("Clients", func(t *testing.T) { t.Parallel(); testClients(t, open) })
	t.Run("RevokeClient", func(t *testing.T) { t.Parallel(); testRevokeClient(t, open) })
	t.Run("SigningKeys", func(t *testing.T) { t.Parallel(); testSigningKeys(t, open) })
	t.Run("ConcurrentKeys", func(t *testing.T) { t.Parallel(); testConcurrentKeys(t, open) })
	t.Run("Issuer", func(t *testing.T) { t.Parallel(); testIssuerOverStore(t, open) })
}

// credentialTime has nanoseconds and a zone other than UTC: a store returns it in UTC at microseconds.
var credentialTime = time.Date(2026, 3, 1, 13, 0, 0, 123456789, time.FixedZone("CET", 3600))

// stored is what a store must give back for t: the same instant in UTC, truncated to microseconds.
func stored(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func credentialContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newClient(id string) tally.Client {
	return tally.Client{
		ID:         id,
		Name:       "client " + id,
		SecretHash: "sha256:" + fmt.Sprintf("%x", sha256.Sum256([]byte(id))),
		Scopes:     []string{tally.ScopeLedgerWrite, tally.ScopeLedgerRead},
		CreatedAt:  credentialTime,
	}
}

// newSigningKey returns a key derived from kid: a real Ed25519 public key, and opaque bytes of the
// length of a sealed seed as its private key (a store keeps them as given; package auth seals and opens).
func newSigningKey(kid string) tally.SigningKey {
	seed := sha256.Sum256([]byte(kid))
	priv := ed25519.NewKeyFromSeed(seed[:])
	sealed := sha256.Sum256([]byte("sealed " + kid))
	return tally.SigningKey{
		KID:              kid,
		Algorithm:        "EdDSA",
		SealedPrivateKey: slices.Concat(sealed[:], sealed[:], sealed[:4]), // nonce, seed and tag: 60 bytes
		PublicKey:        priv.Public().(ed25519.PublicKey),
		CreatedAt:        credentialTime,
		NotAfter:         credentialTime.Add(30 * 24 * time.Hour),
		RetireAt:         credentialTime.Add(30*24*time.Hour + 70*time.Minute),
	}
}

func mustCreateClient(t testing.TB, s tally.CredentialStore, c tally.Client) {
	t.Helper()
	if err := s.CreateClient(context.Background(), c); err != nil {
		t.Fatalf("create client %q: %v", c.ID, err)
	}
}

func mustAddSigningKey(t testing.TB, s tally.CredentialStore, k tally.SigningKey) {
	t.Helper()
	if err := s.AddSigningKey(context.Background(), k); err != nil {
		t.Fatalf("add signing key %q: %v", k.KID, err)
	}
}

func mustClient(t testing.TB, s tally.CredentialStore, id string) tally.Client {
	t.Helper()
	c, err := s.Client(context.Background(), id)
	if err != nil {
		t.Fatalf("client %q: %v", id, err)
	}
	return c
}

// mustSigningKeys returns the stored keys ordered by KID.
func mustSigningKeys(t testing.TB, s tally.CredentialStore) []tally.SigningKey {
	t.Helper()
	keys, err := s.SigningKeys(context.Background())
	if err != nil {
		t.Fatalf("signing keys: %v", err)
	}
	slices.SortFunc(keys, func(a, b tally.SigningKey) int { return cmp.Compare(a.KID, b.KID) })
	return keys
}

// sameTime reports whether got is the stored form of want, in UTC.
func sameTime(got, want time.Time) bool {
	return got.Location() == time.UTC && got.Equal(stored(want))
}

// checkClient fails the test unless got is want as a store must give it back.
func checkClient(t testing.TB, got, want tally.Client) {
	t.Helper()
	revokedOK := (got.RevokedAt == nil) == (want.RevokedAt == nil) &&
		(got.RevokedAt == nil || sameTime(*got.RevokedAt, *want.RevokedAt))
	if got.ID != want.ID || got.Name != want.Name || got.SecretHash != want.SecretHash ||
		!slices.Equal(got.Scopes, want.Scopes) || !sameTime(got.CreatedAt, want.CreatedAt) || !revokedOK {
		want.CreatedAt = stored(want.CreatedAt)
		if want.RevokedAt != nil {
			r := stored(*want.RevokedAt)
			want.RevokedAt = &r
		}
		t.Fatalf("client %q:\n got  %s\n want %s", want.ID, formatClient(got), formatClient(want))
	}
}

func formatClient(c tally.Client) string {
	revoked := "nil"
	if c.RevokedAt != nil {
		revoked = c.RevokedAt.Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("{ID:%q Name:%q SecretHash:%q Scopes:%q CreatedAt:%s RevokedAt:%s}",
		c.ID, c.Name, c.SecretHash, c.Scopes, c.CreatedAt.Format(time.RFC3339Nano), revoked)
}

// checkSigningKey fails the test unless got is want as a store must give it back.
func checkSigningKey(t testing.TB, got, want tally.SigningKey) {
	t.Helper()
	if got.KID != want.KID || got.Algorithm != want.Algorithm ||
		!slices.Equal(got.SealedPrivateKey, want.SealedPrivateKey) || !slices.Equal(got.PublicKey, want.PublicKey) ||
		!sameTime(got.CreatedAt, want.CreatedAt) || !sameTime(got.NotAfter, want.NotAfter) ||
		!sameTime(got.RetireAt, want.RetireAt) {
		want.CreatedAt, want.NotAfter, want.RetireAt = stored(want.CreatedAt), stored(want.NotAfter), stored(want.RetireAt)
		t.Fatalf("signing key %q:\n got  %+v\n want %+v", want.KID, got, want)
	}
}

// testCredentialCodes calls every method on a store holding client "c1" and key "k1", and checks the
// error code of each outcome and the state it leaves.
func testCredentialCodes(t *testing.T, open func(t testing.TB) tally.CredentialStore) {
	later := credentialTime.Add(time.Hour)
	tests := []struct {
		name  string
		call  func(ctx context.Context, s tally.CredentialStore) error
		want  tally.Code
		check func(t testing.TB, s tally.CredentialStore) // the state after the call
	}{
		{
			name: "CreateClient new",
			call: func(ctx context.Context, s tally.CredentialStore) error { return s.CreateClient(ctx, newClient("c2")) },
			check: func(t testing.TB, s tally.CredentialStore) {
				checkClient(t, mustClient(t, s, "c2"), newClient("c2"))
			},
		},
		{
			name: "CreateClient taken ID",
			call: func(ctx context.Context, s tally.CredentialStore) error {
				c := newClient("c1")
				c.Name, c.SecretHash, c.Scopes = "impostor", "sha256:00", []string{tally.ScopeAdmin}
				return s.CreateClient(ctx, c)
			},
			want: tally.ECONFLICT,
			check: func(t testing.TB, s tally.CredentialStore) {
				checkClient(t, mustClient(t, s, "c1"), newClient("c1"))
			},
		},
		{
			// A space-separated column cannot hold it: it would read back as two scopes.
			name: "CreateClient scope with a space",
			call: func(ctx context.Context, s tally.CredentialStore) error {
				c := newClient("c2")
				c.Scopes = []string{tally.ScopeLedgerRead + " " + tally.ScopeAdmin}
				return s.CreateClient(ctx, c)
			},
			want: tally.EINVALID,
			check: func(t testing.TB, s tally.CredentialStore) {
				_, err := s.Client(context.Background(), "c2")
				wantCode(t, err, tally.ENOTFOUND)
			},
		},
		{
			name: "Client present",
			call: func(ctx context.Context, s tally.CredentialStore) error { _, err := s.Client(ctx, "c1"); return err },
		},
		{
			name: "Client absent",
			call: func(ctx context.Context, s tally.CredentialStore) error { _, err := s.Client(ctx, "c2"); return err },
			want: tally.ENOTFOUND,
		},
		{
			name: "Client ID differs in case",
			call: func(ctx context.Context, s tally.CredentialStore) error { _, err := s.Client(ctx, "C1"); return err },
			want: tally.ENOTFOUND,
		},
		{
			name: "Clients",
			call: func(ctx context.Context, s tally.CredentialStore) error { _, err := s.Clients(ctx); return err },
		},
		{
			name: "RevokeClient present",
			call: func(ctx context.Context, s tally.CredentialStore) error { return s.RevokeClient(ctx, "c1", later) },
			check: func(t testing.TB, s tally.CredentialStore) {
				want := newClient("c1")
				want.RevokedAt = &later
				checkClient(t, mustClient(t, s, "c1"), want)
			},
		},
		{
			name: "RevokeClient absent",
			call: func(ctx context.Context, s tally.CredentialStore) error { return s.RevokeClient(ctx, "c2", later) },
			want: tally.ENOTFOUND,
			check: func(t testing.TB, s tally.CredentialStore) {
				_, err := s.Client(context.Background(), "c2")
				wantCode(t, err, tally.ENOTFOUND)
			},
		},
		{
			name: "SigningKeys",
			call: func(ctx context.Context, s tally.CredentialStore) error { _, err := s.SigningKeys(ctx); return err },
		},
		{
			name: "AddSigningKey new",
			call: func(ctx context.Context, s tally.CredentialStore) error {
				return s.AddSigningKey(ctx, newSigningKey("k2"))
			},
			check: func(t testing.TB, s tally.CredentialStore) {
				keys := mustSigningKeys(t, s)
				if len(keys) != 2 {
					t.Fatalf("%d keys, want 2", len(keys))
				}
				checkSigningKey(t, keys[1], newSigningKey("k2"))
			},
		},
		{
			name: "AddSigningKey taken KID",
			call: func(ctx context.Context, s tally.CredentialStore) error {
				k := newSigningKey("other")
				k.KID = "k1"
				return s.AddSigningKey(ctx, k)
			},
			want: tally.ECONFLICT,
			check: func(t testing.TB, s tally.CredentialStore) {
				keys := mustSigningKeys(t, s)
				if len(keys) != 1 {
					t.Fatalf("%d keys, want 1", len(keys))
				}
				checkSigningKey(t, keys[0], newSigningKey("k1"))
			},
		},
		{
			name: "RetireSigningKey present",
			call: func(ctx context.Context, s tally.CredentialStore) error {
				return s.RetireSigningKey(ctx, "k1", later, later.Add(time.Hour))
			},
			check: func(t testing.TB, s tally.CredentialStore) {
				want := newSigningKey("k1")
				want.NotAfter, want.RetireAt = later, later.Add(time.Hour)
				checkSigningKey(t, mustSigningKeys(t, s)[0], want)
			},
		},
		{
			name: "RetireSigningKey absent",
			call: func(ctx context.Context, s tally.CredentialStore) error {
				return s.RetireSigningKey(ctx, "k2", later, later.Add(time.Hour))
			},
			want: tally.ENOTFOUND,
			check: func(t testing.TB, s tally.CredentialStore) {
				if keys := mustSigningKeys(t, s); len(keys) != 1 {
					t.Fatalf("%d keys, want 1", len(keys))
				}
			},
		},
		{
			name: "DeleteSigningKey present",
			call: func(ctx context.Context, s tally.CredentialStore) error { return s.DeleteSigningKey(ctx, "k1") },
			check: func(t testing.TB, s tally.CredentialStore) {
				if keys := mustSigningKeys(t, s); len(keys) != 0 {
					t.Fatalf("keys %v remain, want none", keys)
				}
			},
		},
		{
			// Replicas race to delete retired keys: the losers must not fail.
			name: "DeleteSigningKey absent",
			call: func(ctx context.Context, s tally.CredentialStore) error { return s.DeleteSigningKey(ctx, "k2") },
			check: func(t testing.TB, s tally.CredentialStore) {
				if keys := mustSigningKeys(t, s); len(keys) != 1 {
					t.Fatalf("%d keys, want 1", len(keys))
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			mustCreateClient(t, s, newClient("c1"))
			mustAddSigningKey(t, s, newSigningKey("k1"))
			wantCode(t, tt.call(credentialContext(t), s), tt.want)
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

// testClients checks that clients read back as written, one by one and listed in byte order of ID.
func testClients(t *testing.T, open func(t testing.TB) tally.CredentialStore) {
	s := open(t)
	ctx := credentialContext(t)

	if got, err := s.Clients(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Clients of an empty store = %v, %v; want none", got, err)
	}

	revokedAt := credentialTime.Add(90*time.Minute + 999*time.Nanosecond)
	// IDs whose byte order differs from a natural-language collation: upper case before lower case,
	// '-' before digits, non-ASCII last.
	tests := []struct {
		name   string
		client func() tally.Client
	}{
		{"plain", func() tally.Client { return newClient("alpha") }},
		{"upper case sorts first", func() tally.Client { return newClient("Zulu") }},
		{"punctuation", func() tally.Client { return newClient("alpha-2") }},
		{"digit", func() tally.Client { return newClient("alpha2") }},
		{"non-ASCII name and ID", func() tally.Client {
			c := newClient("été")
			c.Name = "Intégration Genesys « prod » 🚀"
			return c
		}},
		{"scopes in given order", func() tally.Client {
			c := newClient("ordered")
			c.Scopes = []string{tally.ScopeAdmin, tally.ScopeLedgerWrite, tally.ScopeLedgerRead}
			return c
		}},
		{"one scope", func() tally.Client {
			c := newClient("reader")
			c.Scopes = []string{tally.ScopeLedgerRead}
			return c
		}},
		{"no scopes", func() tally.Client {
			c := newClient("nothing")
			c.Scopes = nil
			return c
		}},
		{"created revoked", func() tally.Client {
			c := newClient("gone")
			c.RevokedAt = &revokedAt
			return c
		}},
		{"times in UTC already", func() tally.Client {
			c := newClient("utc")
			c.CreatedAt = time.Date(2025, 12, 31, 23, 59, 59, 999999999, time.UTC)
			return c
		}},
		{"time before 1970", func() tally.Client {
			c := newClient("old")
			c.CreatedAt = time.Date(1969, 7, 20, 20, 17, 40, 500, time.UTC)
			return c
		}},
	}
	var want []tally.Client
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.client()
			mustCreateClient(t, s, c)
			checkClient(t, mustClient(t, s, c.ID), c)
			want = append(want, c)
		})
	}

	got, err := s.Clients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(want, func(a, b tally.Client) int { return cmp.Compare(a.ID, b.ID) })
	if len(got) != len(want) {
		t.Fatalf("Clients returned %d clients, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID {
			ids := func(cs []tally.Client) []string {
				var out []string
				for _, c := range cs {
					out = append(out, c.ID)
				}
				return out
			}
			t.Fatalf("Clients in order %q, want %q (byte order)", ids(got), ids(want))
		}
		checkClient(t, got[i], want[i])
	}
}

// testRevokeClient checks that a revocation sticks: a later one does not move it, nor an earlier one.
func testRevokeClient(t *testing.T, open func(t testing.TB) tally.CredentialStore) {
	s := open(t)
	ctx := credentialContext(t)
	first := credentialTime.Add(time.Hour + 1500*time.Nanosecond)

	tests := []struct {
		name string
		at   time.Time
	}{
		{"first revocation", first},
		{"later revocation keeps the first", first.Add(time.Hour)},
		{"earlier revocation keeps the first", first.Add(-30 * time.Minute)},
		{"same instant", first},
	}
	mustCreateClient(t, s, newClient("c1"))
	mustCreateClient(t, s, newClient("bystander"))
	want := newClient("c1")
	want.RevokedAt = &first
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.RevokeClient(ctx, "c1", tt.at); err != nil {
				t.Fatal(err)
			}
			checkClient(t, mustClient(t, s, "c1"), want)
		})
	}
	// Revoking one client leaves the others as they were.
	checkClient(t, mustClient(t, s, "bystander"), newClient("bystander"))

	// A client created revoked keeps its revocation too.
	pre := newClient("pre")
	pre.RevokedAt = &credentialTime
	mustCreateClient(t, s, pre)
	if err := s.RevokeClient(ctx, "pre", first); err != nil {
		t.Fatal(err)
	}
	checkClient(t, mustClient(t, s, "pre"), pre)
}

// testSigningKeys walks keys through their life: added, listed, retired, deleted.
func testSigningKeys(t *testing.T, open func(t testing.TB) tally.CredentialStore) {
	s := open(t)
	ctx := credentialContext(t)

	if got := mustSigningKeys(t, s); len(got) != 0 {
		t.Fatalf("SigningKeys of an empty store = %v; want none", got)
	}

	a, b, c := newSigningKey("key-a"), newSigningKey("key-b"), newSigningKey("key-c")
	b.CreatedAt = time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC)
	b.NotAfter = b.CreatedAt.Add(time.Hour + 1001*time.Nanosecond)
	b.RetireAt = b.NotAfter.Add(2*time.Hour + 999*time.Nanosecond)
	// Bytes that text handling would mangle: NUL, invalid UTF-8, all ones.
	c.SealedPrivateKey = append([]byte{0x00, 0xff, 0xc3, 0x28}, make([]byte, 28)...)
	c.PublicKey = slices.Repeat([]byte{0xff}, 32)
	for _, k := range []tally.SigningKey{c, a, b} {
		mustAddSigningKey(t, s, k)
	}
	keys := mustSigningKeys(t, s)
	if len(keys) != 3 {
		t.Fatalf("%d keys, want 3", len(keys))
	}
	for i, want := range []tally.SigningKey{a, b, c} {
		checkSigningKey(t, keys[i], want)
	}

	tests := []struct {
		name               string
		kid                string
		notAfter, retireAt time.Time
	}{
		{"retire now", "key-a", credentialTime.Add(time.Minute + 1234*time.Nanosecond), credentialTime.Add(71 * time.Minute)},
		{"retire again, earlier", "key-a", credentialTime.Add(time.Second), credentialTime.Add(61 * time.Minute)},
		{"retire with other zone", "key-b", time.Date(2026, 6, 1, 0, 0, 0, 1, time.FixedZone("PDT", -7*3600)), time.Date(2026, 6, 1, 1, 10, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.RetireSigningKey(ctx, tt.kid, tt.notAfter, tt.retireAt); err != nil {
				t.Fatal(err)
			}
			for _, k := range mustSigningKeys(t, s) {
				if k.KID != tt.kid {
					continue
				}
				want := newSigningKey(tt.kid)
				if tt.kid == "key-b" {
					want = b
				}
				want.NotAfter, want.RetireAt = tt.notAfter, tt.retireAt
				checkSigningKey(t, k, want)
			}
		})
	}

	if err := s.DeleteSigningKey(ctx, "key-a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSigningKey(ctx, "key-a"); err != nil {
		t.Fatalf("deleting a deleted key: %v", err)
	}
	keys = mustSigningKeys(t, s)
	if len(keys) != 2 || keys[0].KID != "key-b" || keys[1].KID != "key-c" {
		t.Fatalf("keys after delete: %v, want key-b and key-c", keys)
	}
	checkSigningKey(t, keys[1], c)

	// A deleted KID may be added again.
	mustAddSigningKey(t, s, a)
	if keys := mustSigningKeys(t, s); len(keys) != 3 {
		t.Fatalf("%d keys after re-adding, want 3", len(keys))
	}
}

// testConcurrentKeys adds keys from several goroutines at once, as replicas starting together do.
func testConcurrentKeys(t *testing.T, open func(t testing.TB) tally.CredentialStore) {
	const n = 12
	t.Run("distinct KIDs", func(t *testing.T) {
		s := open(t)
		ctx := credentialContext(t)
		errs := parallel(n, func(i int) error { return s.AddSigningKey(ctx, newSigningKey("replica-"+itoa(i))) })
		for i, err := range errs {
			if err != nil {
				t.Errorf("replica %d: %v", i, err)
			}
		}
		keys := mustSigningKeys(t, s)
		if len(keys) != n {
			t.Fatalf("%d keys, want %d", len(keys), n)
		}
		for _, k := range keys {
			checkSigningKey(t, k, newSigningKey(k.KID))
		}
	})
	t.Run("one KID", func(t *testing.T) {
		s := open(t)
		ctx := credentialContext(t)
		errs := parallel(n, func(int) error { return s.AddSigningKey(ctx, newSigningKey("same")) })
		won := 0
		for _, err := range errs {
			switch tally.ErrorCode(err) {
			case "":
				won++
			case tally.ECONFLICT:
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d inserts of one KID succeeded, want 1", won)
		}
		if keys := mustSigningKeys(t, s); len(keys) != 1 {
			t.Fatalf("%d keys, want 1", len(keys))
		}
	})
}

// testIssuerOverStore runs package auth over the store: keys an Issuer creates persist, so that another
// Issuer on the same store (another replica, or a restart) verifies its tokens and signs with the same key.
func testIssuerOverStore(t *testing.T, open func(t testing.TB) tally.CredentialStore) {
	s := open(t)
	ctx := credentialContext(t)
	quiet := slog.New(slog.DiscardHandler)
	cfg := auth.IssuerConfig{Issuer: "https://tally.test", Audience: "tally", Key: mustLedgerKey(t), Logger: quiet}

	first, err := auth.NewIssuer(ctx, s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := first.Issue(ctx, "genesys-prod", []string{tally.ScopeLedgerWrite, tally.ScopeLedgerRead})
	if err != nil {
		t.Fatal(err)
	}
	keys := mustSigningKeys(t, s)
	if len(keys) != 1 {
		t.Fatalf("the issuer stored %d keys, want 1", len(keys))
	}

	verify := func(name string, i *auth.Issuer, token string) {
		t.Helper()
		v, err := auth.NewVerifier(auth.VerifierConfig{Local: i, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		p, err := v.Verify(ctx, token)
		if err != nil {
			t.Fatalf("%s: verify: %v", name, err)
		}
		if p.ClientID != "genesys-prod" || !slices.Equal(p.Scopes, []string{tally.ScopeLedgerWrite, tally.ScopeLedgerRead}) {
			t.Fatalf("%s: principal %+v", name, p)
		}
	}
	verify("first issuer", first, token)

	second, err := auth.NewIssuer(ctx, s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	verify("second issuer", second, token)
	// The stored key may still sign, so the second issuer uses it rather than adding its own.
	if again := mustSigningKeys(t, s); len(again) != 1 || again[0].KID != keys[0].KID {
		t.Fatalf("keys after a second issuer started: %v, want only %s", again, keys[0].KID)
	}
	token2, _, err := second.Issue(ctx, "genesys-prod", []string{tally.ScopeLedgerWrite, tally.ScopeLedgerRead})
	if err != nil {
		t.Fatal(err)
	}
	verify("first issuer, token of the second", first, token2)
}

// mustLedgerKey returns a new random ledger key.
func mustLedgerKey(t testing.TB) *tally.LedgerKey {
	t.Helper()
	k, err := tally.ParseLedgerKey(tally.GenerateLedgerKey())
	if err != nil {
		t.Fatal(err)
	}
	return k
}
