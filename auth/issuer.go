package auth

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tally-ledger/tally"
)

// algEdDSA is the only algorithm Tally signs with (RFC 8037).
const algEdDSA = "EdDSA"

// tokenType is the JWT "typ" of access tokens (RFC 9068 §2.1). Verification requires it, so that no other
// JWT signed with the same keys (a widget session token, say) can pass for an access token.
const tokenType = "at+jwt"

// reloadAtMostEvery bounds the store reads that tokens with an unknown kid can cause.
const reloadAtMostEvery = time.Second

// Defaults of IssuerConfig.
const (
	DefaultTTL            = time.Hour
	DefaultRotationPeriod = 30 * 24 * time.Hour
	DefaultOverlap        = 10 * time.Minute
	DefaultReloadInterval = time.Minute
)

// IssuerConfig configures an Issuer. Zero durations take their defaults.
type IssuerConfig struct {
	Issuer   string // the "iss" of issued tokens: Tally's public base URL, e.g. "https://tally.example.com"
	Audience string // the "aud" of issued tokens, e.g. "https://tally.example.com/api"

	// Key seals the private signing keys kept in the store (required). Every replica needs the same one:
	// a key sealed with another is neither used nor published.
	Key *tally.LedgerKey

	TTL time.Duration // lifetime of an access token; DefaultTTL

	// RotationPeriod is how long a new key signs before a successor replaces it; DefaultRotationPeriod.
	RotationPeriod time.Duration
	// Overlap is how much longer than TTL a key that stopped signing stays published: replicas that have
	// not reloaded yet may sign with it for up to ReloadInterval, and clocks differ. DefaultOverlap; at
	// least ReloadInterval.
	Overlap time.Duration
	// ReloadInterval is how often Run re-reads the keys from the store; DefaultReloadInterval.
	ReloadInterval time.Duration

	Now    func() time.Time // time.Now when nil
	Logger *slog.Logger     // slog.Default() when nil
}

// Issuer signs access tokens with Ed25519 keys kept in a tally.CredentialStore and publishes their JWKS.
// Every replica runs one over the same store: keys one replica creates are found by the others when they
// reload, periodically (Run) or on meeting an unknown kid (at most once a second). It is safe for
// concurrent use.
//
// Private keys are stored sealed with the ledger key (see OpenSigningKey). A stored key that does not
// open is ignored: never used, never published. A key found with its seed in clear (as stored before
// keys were sealed) is revoked at once; see revokeClearKey.
type Issuer struct {
	cfg   IssuerConfig
	store tally.CredentialStore

	mu     sync.RWMutex
	keys   map[string]*signingKey // published keys by kid
	signer *signingKey            // the newest key that may sign; nil when none
	jwks   []byte

	reloadMu   sync.Mutex      // serialises reloads, key creation and rotation within this replica
	lastReload atomic.Int64    // UnixNano of the last attempt to read the store's keys
	unopened   map[string]bool // kids of keys that did not open, already logged; under reloadMu
}

// signingKey is a stored key with its decoded Ed25519 form.
type signingKey struct {
	tally.SigningKey
	private ed25519.PrivateKey
	public  ed25519.PublicKey
}

// NewIssuer loads the signing keys from store and, when none may sign, creates and stores one.
// EINVALID for a bad configuration, EUNAVAILABLE when the store fails.
func NewIssuer(ctx context.Context, store tally.CredentialStore, cfg IssuerConfig) (*Issuer, error) {
	cfg.TTL = cmp.Or(cfg.TTL, DefaultTTL)
	cfg.RotationPeriod = cmp.Or(cfg.RotationPeriod, DefaultRotationPeriod)
	cfg.Overlap = cmp.Or(cfg.Overlap, DefaultOverlap)
	cfg.ReloadInterval = cmp.Or(cfg.ReloadInterval, DefaultReloadInterval)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.Issuer == "" || cfg.Audience == "":
		return nil, tally.Errorf(tally.EINVALID, "an issuer needs an issuer URL and an audience")
	case cfg.Key == nil:
		return nil, tally.Errorf(tally.EINVALID, "an issuer needs the ledger key, which seals its signing keys")
	case cfg.TTL < 0 || cfg.RotationPeriod < 0 || cfg.ReloadInterval < 0:
		return nil, tally.Errorf(tally.EINVALID, "negative issuer durations")
	case cfg.Overlap < cfg.ReloadInterval:
		return nil, tally.Errorf(tally.EINVALID, "key overlap %s is shorter than the reload interval %s",
			cfg.Overlap, cfg.ReloadInterval)
	}
	i := &Issuer{cfg: cfg, store: store, unopened: map[string]bool{}}
	i.reloadMu.Lock()
	defer i.reloadMu.Unlock()
	if err := i.reloadLocked(ctx); err != nil {
		return nil, err
	}
	if err := i.ensureSignerLocked(ctx); err != nil {
		return nil, err
	}
	return i, nil
}

// IssuerURL returns the "iss" of the tokens this issuer signs.
func (i *Issuer) IssuerURL() string { return i.cfg.Issuer }

// TTL returns the lifetime of the tokens this issuer signs.
func (i *Issuer) TTL() time.Duration { return i.cfg.TTL }

// Issue signs an access token for a client with the given scopes and returns it with its expiry.
// EINVALID for an empty clientID; EUNAVAILABLE when a signing key had to be created and the store failed.
//
// When the keys were last read more than ReloadInterval ago, Issue reads them first, so that a replica
// learns of a rotation by another one even without Run: it never signs with a key retired more than
// ReloadInterval ago (plus the time a failing store takes to recover).
func (i *Issuer) Issue(ctx context.Context, clientID string, scopes []string) (string, time.Time, error) {
	if clientID == "" {
		return "", time.Time{}, tally.Errorf(tally.EINVALID, "a token needs a subject")
	}
	now := i.cfg.Now()
	exp := now.Add(i.cfg.TTL)
	claims := jwt.MapClaims{
		"iss":       i.cfg.Issuer,
		"sub":       clientID,
		"client_id": clientID, // RFC 9068 §2.2
		"aud":       i.cfg.Audience,
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       exp.Unix(),
		"jti":       newJTI(),
		"scope":     strings.Join(scopes, " "),
	}
	raw, err := i.sign(ctx, tokenType, claims, now)
	if err != nil {
		return "", time.Time{}, err
	}
	return raw, time.Unix(exp.Unix(), 0).UTC(), nil
}

// sign signs claims with the current key, under the given JWT "typ".
func (i *Issuer) sign(ctx context.Context, typ string, claims jwt.MapClaims, now time.Time) (string, error) {
	if i.sinceReload() >= i.cfg.ReloadInterval {
		i.reloadIfDue(ctx)
	}
	i.mu.RLock()
	k := i.signer
	i.mu.RUnlock()
	if k == nil || !now.Before(k.NotAfter) {
		var err error
		if k, err = i.currentSigner(ctx); err != nil {
			return "", err
		}
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = k.KID
	t.Header["typ"] = typ
	raw, err := t.SignedString(k.private)
	if err != nil {
		return "", &tally.Error{Code: tally.EINTERNAL, Message: "cannot sign token", Err: err}
	}
	return raw, nil
}

func newJTI() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return b64(b)
}

// currentSigner returns a key that may sign now, reloading and, when none may, creating one. Replicas
// that find no key at the same moment may each create one: all of them are valid.
func (i *Issuer) currentSigner(ctx context.Context) (*signingKey, error) {
	i.reloadMu.Lock()
	defer i.reloadMu.Unlock()
	if k := i.usableSigner(); k != nil { // another caller got here first
		return k, nil
	}
	if err := i.reloadLocked(ctx); err != nil {
		return nil, err
	}
	if err := i.ensureSignerLocked(ctx); err != nil {
		return nil, err
	}
	if k := i.usableSigner(); k != nil {
		return k, nil
	}
	return nil, tally.Errorf(tally.EINTERNAL, "no signing key is usable") // only with a clock jumping ahead
}

func (i *Issuer) usableSigner() *signingKey {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.signer != nil && i.cfg.Now().Before(i.signer.NotAfter) {
		return i.signer
	}
	return nil
}

// ensureSignerLocked creates and stores a key when the loaded ones have none that may sign.
func (i *Issuer) ensureSignerLocked(ctx context.Context) error {
	if i.usableSigner() != nil {
		return nil
	}
	_, err := i.addKeyLocked(ctx)
	return err
}

// addKeyLocked creates a key, stores it and adds it to the loaded ones.
func (i *Issuer) addKeyLocked(ctx context.Context) (*signingKey, error) {
	now := i.cfg.Now().UTC()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, &tally.Error{Code: tally.EINTERNAL, Message: "cannot generate a signing key", Err: err}
	}
	notAfter := now.Add(i.cfg.RotationPeriod)
	k := &signingKey{
		SigningKey: tally.SigningKey{
			KID:       ed25519Thumbprint(pub),
			Algorithm: algEdDSA,
			PublicKey: pub,
			CreatedAt: now,
			NotAfter:  notAfter,
			RetireAt:  notAfter.Add(i.cfg.TTL + i.cfg.Overlap),
		},
		private: priv,
		public:  pub,
	}
	k.SealedPrivateKey = sealSeed(i.cfg.Key, k.SigningKey, priv)
	if err := i.store.AddSigningKey(ctx, k.SigningKey); err != nil {
		return nil, err
	}
	i.cfg.Logger.InfoContext(ctx, "auth: signing key created", "kid", k.KID, "not_after", k.NotAfter)
	i.mu.RLock()
	keys := make([]*signingKey, 0, len(i.keys)+1)
	for _, old := range i.keys {
		keys = append(keys, old)
	}
	i.mu.RUnlock()
	i.install(append(keys, k))
	return k, nil
}

// Reload re-reads the signing keys from the store. EUNAVAILABLE when the store fails.
func (i *Issuer) Reload(ctx context.Context) error {
	i.reloadMu.Lock()
	defer i.reloadMu.Unlock()
	return i.reloadLocked(ctx)
}

// reloadIfDue reloads unless a concurrent caller just did; a failure is logged and the loaded keys stay.
func (i *Issuer) reloadIfDue(ctx context.Context) {
	i.reloadMu.Lock()
	defer i.reloadMu.Unlock()
	if i.sinceReload() < i.cfg.ReloadInterval {
		return
	}
	if err := i.reloadLocked(ctx); err != nil {
		i.cfg.Logger.WarnContext(ctx, "auth: cannot reload signing keys", "err", err)
	}
}

func (i *Issuer) reloadLocked(ctx context.Context) error {
	i.lastReload.Store(i.cfg.Now().UnixNano()) // an attempt counts: a failing store is not hammered either
	stored, err := i.store.SigningKeys(ctx)
	if err != nil {
		return err
	}
	now := i.cfg.Now()
	keys := make([]*signingKey, 0, len(stored))
	for _, s := range stored {
		if storedInClear(s) { // even past its RetireAt: its seed should not stay in the database
			i.revokeClearKey(ctx, s)
			continue
		}
		if !now.Before(s.RetireAt) {
			continue // every token it signed has expired
		}
		priv, err := OpenSigningKey(i.cfg.Key, s)
		if err != nil {
			if !i.unopened[s.KID] {
				i.unopened[s.KID] = true
				i.cfg.Logger.ErrorContext(ctx, "auth: ignoring a signing key that cannot be used", "kid", s.KID, "err", err)
			}
			continue
		}
		keys = append(keys, &signingKey{SigningKey: s, private: priv, public: priv.Public().(ed25519.PublicKey)})
	}
	i.install(keys)
	return nil
}

// revokeClearKey deletes a key whose seed was stored in clear (by Tally before keys were sealed, or by
// such a version still running beside this one). Anyone who could read the database, or a backup of it,
// may hold that seed, so the key is revoked at once rather than retired: it neither signs nor verifies
// from now on, and tokens it signed (at most one TTL old) fail and are fetched again by their clients.
// Retiring it instead would keep accepting tokens minted from a stolen seed until TTL + Overlap after
// the upgrade. The reload that finds it installs the other keys; when none may sign, a sealed one is
// created. A failed delete is logged and retried at the next reload; the key is not used meanwhile.
func (i *Issuer) revokeClearKey(ctx context.Context, s tally.SigningKey) {
	if err := i.store.DeleteSigningKey(ctx, s.KID); err != nil {
		i.cfg.Logger.ErrorContext(ctx, "auth: a signing key stored in clear is not used, but could not be deleted", "kid", s.KID, "err", err)
		return
	}
	i.cfg.Logger.ErrorContext(ctx, "auth: revoked a signing key whose private key was stored in clear; tokens it signed are no longer accepted", "kid", s.KID)
}

// install replaces the loaded keys, picks the signer (the newest key still allowed to sign) and renders
// the JWKS.
func (i *Issuer) install(keys []*signingKey) {
	now := i.cfg.Now()
	slices.SortFunc(keys, func(a, b *signingKey) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.KID, b.KID))
	})
	byKID := make(map[string]*signingKey, len(keys))
	set := jwkSet{Keys: make([]jwk, 0, len(keys))}
	var signer *signingKey
	for _, k := range keys {
		byKID[k.KID] = k
		set.Keys = append(set.Keys, ed25519JWK(k.KID, k.public))
		if now.Before(k.NotAfter) {
			signer = k
		}
	}
	rendered, _ := json.Marshal(set) // cannot fail: strings only
	i.mu.Lock()
	i.keys, i.signer, i.jwks = byKID, signer, rendered
	i.mu.Unlock()
}

// Rotate creates a new signing key and stops the others from signing: their NotAfter becomes now and
// their RetireAt now + TTL + Overlap, after the last token they signed has expired (Overlap covers
// replicas that sign with them until their next reload). Keys past their RetireAt are deleted.
// EUNAVAILABLE when the store fails.
func (i *Issuer) Rotate(ctx context.Context) error {
	i.reloadMu.Lock()
	defer i.reloadMu.Unlock()
	if err := i.reloadLocked(ctx); err != nil {
		return err
	}
	fresh, err := i.addKeyLocked(ctx)
	if err != nil {
		return err
	}
	now := i.cfg.Now().UTC()
	retireAt := now.Add(i.cfg.TTL + i.cfg.Overlap)
	i.mu.RLock()
	var old []*signingKey
	for _, k := range i.keys {
		if k != fresh && now.Before(k.NotAfter) {
			old = append(old, k)
		}
	}
	i.mu.RUnlock()
	for _, k := range old {
		err := i.store.RetireSigningKey(ctx, k.KID, now, retireAt)
		if err != nil && tally.ErrorCode(err) != tally.ENOTFOUND {
			return err
		}
	}
	if err := i.pruneLocked(ctx); err != nil {
		return err
	}
	return i.reloadLocked(ctx)
}

// pruneLocked deletes the stored keys past their RetireAt.
func (i *Issuer) pruneLocked(ctx context.Context) error {
	stored, err := i.store.SigningKeys(ctx)
	if err != nil {
		return err
	}
	now := i.cfg.Now()
	for _, s := range stored {
		if now.Before(s.RetireAt) {
			continue
		}
		if err := i.store.DeleteSigningKey(ctx, s.KID); err != nil {
			return err
		}
		i.cfg.Logger.InfoContext(ctx, "auth: retired signing key deleted", "kid", s.KID)
	}
	return nil
}

// Run keeps the keys current until ctx ends: every ReloadInterval it reloads them, deletes retired ones,
// and rotates when the signing key is within one interval of its NotAfter, so that other replicas learn
// the successor before they need it. Failures are logged and retried at the next tick.
func (i *Issuer) Run(ctx context.Context) {
	t := time.NewTicker(i.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := i.maintain(ctx); err != nil {
				i.cfg.Logger.WarnContext(ctx, "auth: key maintenance failed", "err", err)
			}
		}
	}
}

func (i *Issuer) maintain(ctx context.Context) error {
	i.reloadMu.Lock()
	if err := i.reloadLocked(ctx); err != nil {
		i.reloadMu.Unlock()
		return err
	}
	err := i.pruneLocked(ctx)
	i.mu.RLock()
	s := i.signer
	i.mu.RUnlock()
	i.reloadMu.Unlock()
	if err != nil {
		return err
	}
	if s == nil || !i.cfg.Now().Add(i.cfg.ReloadInterval).Before(s.NotAfter) {
		return i.Rotate(ctx)
	}
	return nil
}

// JWKS returns the JWK Set (RFC 7517 §5) of every published key: those that sign and those that stopped
// but may still have live tokens. Serve it as application/jwk-set+json.
func (i *Issuer) JWKS() []byte {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return slices.Clone(i.jwks)
}

// verificationKey returns the public key of kid, reloading the keys once when it is unknown, unless they
// were loaded within reloadAtMostEvery: random kids cannot make a replica hammer the store.
func (i *Issuer) verificationKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	if k := i.publishedKey(kid); k != nil {
		return k, nil
	}
	i.reloadMu.Lock()
	defer i.reloadMu.Unlock()
	if k := i.publishedKey(kid); k != nil { // loaded while we waited
		return k, nil
	}
	if i.sinceReload() < reloadAtMostEvery {
		return nil, errUnknownKID
	}
	if err := i.reloadLocked(ctx); err != nil {
		return nil, err
	}
	if k := i.publishedKey(kid); k != nil {
		return k, nil
	}
	return nil, errUnknownKID
}

func (i *Issuer) sinceReload() time.Duration {
	return i.cfg.Now().Sub(time.Unix(0, i.lastReload.Load()))
}

func (i *Issuer) publishedKey(kid string) ed25519.PublicKey {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if k, ok := i.keys[kid]; ok {
		return k.public
	}
	return nil
}
