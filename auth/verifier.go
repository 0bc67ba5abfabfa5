package auth

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tally-ledger/tally"
)

// Principal is the caller an access token speaks for.
type Principal struct {
	Subject   string   // "sub": for Tally's tokens, the client id
	ClientID  string   // "client_id", else "azp", else "sub"
	Scopes    []string // "scope" (space-separated) or "scp"
	Issuer    string   // "iss"
	ExpiresAt time.Time
}

// Has reports whether the token grants scope. Scopes do not imply one another: tally.ScopeAdmin grants
// administration only, not tally.ScopeLedgerWrite nor tally.ScopeLedgerRead.
func (p Principal) Has(scope string) bool {
	return slices.Contains(p.Scopes, scope)
}

// ExternalIssuer is an OAuth authorization server other than Tally whose access tokens Tally accepts,
// such as a company identity provider.
type ExternalIssuer struct {
	Issuer   string // its exact "iss"
	Audience string // the "aud" its tokens for Tally carry; required
	JWKSURL  string // https URL of its JWK Set
	// Algorithms it signs with: a subset of RS256, RS384, RS512, PS256, PS384, PS512, ES256 and EdDSA;
	// DefaultExternalAlgorithms when empty.
	Algorithms []string
}

// DefaultExternalAlgorithms are the algorithms accepted from an external issuer unless configured.
var DefaultExternalAlgorithms = []string{"RS256", "ES256", algEdDSA}

// supportedAlgorithms are those a key type of keyFits can verify. HS* and "none" are never accepted.
var supportedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", algEdDSA}

// Defaults of VerifierConfig.
const (
	DefaultLeeway           = 30 * time.Second
	DefaultCacheSize        = 10000
	DefaultJWKSFetchTimeout = 5 * time.Second
	DefaultJWKSCacheTTL     = 10 * time.Minute
	DefaultJWKSMinRefresh   = 30 * time.Second
)

// VerifierConfig configures a Verifier. Zero values take their defaults.
type VerifierConfig struct {
	Local    *Issuer          // verifies the tokens whose "iss" is Local.IssuerURL(); nil: none
	External []ExternalIssuer // other trusted issuers, told apart by "iss"

	Leeway    time.Duration // clock skew allowed on exp, nbf and iat; DefaultLeeway; negative: none
	CacheSize int           // verified tokens remembered; DefaultCacheSize; negative: none

	HTTPClient       *http.Client  // fetches external JWK Sets; http.DefaultClient when nil
	JWKSFetchTimeout time.Duration // bounds one fetch; DefaultJWKSFetchTimeout
	JWKSCacheTTL     time.Duration // how long a fetched JWK Set is used before refetching; DefaultJWKSCacheTTL
	// JWKSMinRefresh is the least time between two fetches caused by unknown kids (a rotated key is
	// picked up; a caller spraying random kids cannot cause more fetches); DefaultJWKSMinRefresh.
	JWKSMinRefresh time.Duration

	Now    func() time.Time // time.Now when nil
	Logger *slog.Logger     // slog.Default() when nil
}

// Verifier checks access tokens and returns the principal they speak for. It is safe for concurrent use.
type Verifier struct {
	issuers map[string]*trustedIssuer // by "iss"
	cache   *tokenCache
	now     func() time.Time
}

// trustedIssuer verifies the tokens of one issuer.
type trustedIssuer struct {
	algorithms []string
	parser     *jwt.Parser
	requireTyp bool // Tally's own tokens must say "at+jwt"
	// key returns the public key of kid and the "alg" its JWK names ("" when none).
	key func(ctx context.Context, kid string) (any, string, error)
}

// NewVerifier returns a Verifier of the tokens of cfg.Local and cfg.External. EINVALID for a bad
// configuration. It fetches nothing yet: an external JWK Set is fetched when first needed.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	leeway := cmp.Or(cfg.Leeway, DefaultLeeway)
	if leeway < 0 {
		leeway = 0
	}
	v := &Verifier{issuers: make(map[string]*trustedIssuer), now: cfg.Now}
	if size := cmp.Or(cfg.CacheSize, DefaultCacheSize); size > 0 {
		v.cache = newTokenCache(size)
	}
	if l := cfg.Local; l != nil {
		v.issuers[l.cfg.Issuer] = &trustedIssuer{
			algorithms: []string{algEdDSA},
			parser:     newParser([]string{algEdDSA}, l.cfg.Issuer, l.cfg.Audience, leeway, cfg.Now),
			requireTyp: true,
			key: func(ctx context.Context, kid string) (any, string, error) {
				k, err := l.verificationKey(ctx, kid)
				if err != nil {
					return nil, "", err
				}
				return k, algEdDSA, nil
			},
		}
	}
	for _, e := range cfg.External {
		algs := e.Algorithms
		if len(algs) == 0 {
			algs = DefaultExternalAlgorithms
		}
		switch {
		case e.Issuer == "" || e.Audience == "":
			return nil, tally.Errorf(tally.EINVALID, "an external issuer needs an issuer and an audience")
		case !strings.HasPrefix(e.JWKSURL, "https://"):
			return nil, tally.Errorf(tally.EINVALID, "the JWKS URL of %s is not https", e.Issuer)
		case v.issuers[e.Issuer] != nil:
			return nil, tally.Errorf(tally.EINVALID, "issuer %s is configured twice", e.Issuer)
		}
		for _, a := range algs {
			if !slices.Contains(supportedAlgorithms, a) {
				return nil, tally.Errorf(tally.EINVALID, "algorithm %q of %s is not supported", a, e.Issuer)
			}
		}
		keys := &remoteKeySet{
			url:        e.JWKSURL,
			client:     cfg.HTTPClient,
			timeout:    cmp.Or(cfg.JWKSFetchTimeout, DefaultJWKSFetchTimeout),
			ttl:        cmp.Or(cfg.JWKSCacheTTL, DefaultJWKSCacheTTL),
			minRefresh: cmp.Or(cfg.JWKSMinRefresh, DefaultJWKSMinRefresh),
			now:        cfg.Now,
			log:        cfg.Logger.With("jwks", e.JWKSURL),
		}
		v.issuers[e.Issuer] = &trustedIssuer{
			algorithms: slices.Clone(algs),
			parser:     newParser(algs, e.Issuer, e.Audience, leeway, cfg.Now),
			key:        keys.key,
		}
	}
	if len(v.issuers) == 0 {
		return nil, tally.Errorf(tally.EINVALID, "a verifier needs at least one issuer")
	}
	return v, nil
}

func newParser(algs []string, iss, aud string, leeway time.Duration, now func() time.Time) *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods(algs), // checked before the key is looked up: no alg confusion
		jwt.WithIssuer(iss),
		jwt.WithAudience(aud),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
		jwt.WithStrictDecoding(),
	)
}

// maxTokenBytes bounds the tokens Verify reads: Tally's are about 500 bytes, an identity provider's a few
// kilobytes.
const maxTokenBytes = 16 << 10

// Verification failures. Each is a *tally.Error with code EUNAUTHORIZED whose message names the reason.
var (
	errMalformed      = tally.Errorf(tally.EUNAUTHORIZED, "malformed token")
	errUnsigned       = tally.Errorf(tally.EUNAUTHORIZED, "unsigned token")
	errNoKID          = tally.Errorf(tally.EUNAUTHORIZED, "token has no key id")
	errUnknownKID     = tally.Errorf(tally.EUNAUTHORIZED, "unknown signing key")
	errWrongIssuer    = tally.Errorf(tally.EUNAUTHORIZED, "wrong issuer")
	errWrongAudience  = tally.Errorf(tally.EUNAUTHORIZED, "wrong audience")
	errWrongType      = tally.Errorf(tally.EUNAUTHORIZED, "not an access token")
	errBadSignature   = tally.Errorf(tally.EUNAUTHORIZED, "bad signature")
	errExpired        = tally.Errorf(tally.EUNAUTHORIZED, "token expired")
	errNotYetValid    = tally.Errorf(tally.EUNAUTHORIZED, "token not valid yet")
	errIssuedInFuture = tally.Errorf(tally.EUNAUTHORIZED, "token issued in the future")
	errMissingClaim   = tally.Errorf(tally.EUNAUTHORIZED, "token lacks a required claim")
	errInvalid        = tally.Errorf(tally.EUNAUTHORIZED, "invalid token")
)

// header is the part of the JOSE header read before verification.
type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// accessClaims are the claims read from a verified token.
type accessClaims struct {
	jwt.RegisteredClaims
	Scope    json.RawMessage `json:"scope,omitempty"` // a space-separated string; some issuers send an array
	Scp      json.RawMessage `json:"scp,omitempty"`   // Okta and Entra ID name it so
	ClientID string          `json:"client_id,omitempty"`
	Azp      string          `json:"azp,omitempty"`
}

// Verify checks a token and returns its principal. Errors are *tally.Error: EUNAUTHORIZED with the
// reason for a token that is not acceptable (unsigned, signed with an algorithm not configured for its
// issuer, bad signature, unknown kid, expired, not yet valid, wrong issuer or audience, malformed), and
// EUNAVAILABLE when the keys to check it with cannot be read (store or JWKS endpoint down).
//
// Verified tokens are remembered, by the SHA-256 of the whole token, until they expire: the same token
// comes with every call and verifying a signature costs tens of microseconds. A token whose key is
// deleted early therefore stays accepted until it expires.
func (v *Verifier) Verify(ctx context.Context, rawToken string) (Principal, error) {
	if len(rawToken) > maxTokenBytes {
		return Principal{}, errMalformed
	}
	sum := sha256.Sum256([]byte(rawToken))
	if v.cache != nil {
		if p, ok := v.cache.get(sum, v.now()); ok {
			return p, nil
		}
	}
	p, err := v.verify(ctx, rawToken)
	if err != nil {
		return Principal{}, err
	}
	if v.cache != nil {
		v.cache.put(sum, p, v.now())
	}
	return p, nil
}

func (v *Verifier) verify(ctx context.Context, raw string) (Principal, error) {
	h, iss, err := peek(raw)
	if err != nil {
		return Principal{}, err
	}
	ti := v.issuers[iss]
	switch {
	case ti == nil:
		return Principal{}, errWrongIssuer
	case strings.EqualFold(h.Alg, "none"):
		return Principal{}, errUnsigned
	case !slices.Contains(ti.algorithms, h.Alg):
		return Principal{}, tally.Errorf(tally.EUNAUTHORIZED, "signing algorithm %q not allowed", h.Alg)
	case h.Kid == "":
		return Principal{}, errNoKID
	case ti.requireTyp && !strings.EqualFold(strings.TrimPrefix(strings.ToLower(h.Typ), "application/"), tokenType):
		return Principal{}, errWrongType
	}
	var claims accessClaims
	_, err = ti.parser.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		key, keyAlg, err := ti.key(ctx, h.Kid)
		if err != nil {
			return nil, err
		}
		if alg := t.Method.Alg(); !keyFits(alg, key) || (keyAlg != "" && keyAlg != alg) {
			return nil, tally.Errorf(tally.EUNAUTHORIZED, "signing algorithm %q does not fit the key", alg)
		}
		return key, nil
	})
	if err != nil {
		return Principal{}, verificationError(err)
	}
	if claims.Subject == "" || claims.ExpiresAt == nil {
		return Principal{}, errMissingClaim
	}
	scopes, err := scopeClaim(claims.Scope, claims.Scp)
	if err != nil {
		return Principal{}, errMalformed
	}
	return Principal{
		Subject:   claims.Subject,
		ClientID:  cmp.Or(claims.ClientID, claims.Azp, claims.Subject),
		Scopes:    scopes,
		Issuer:    claims.Issuer,
		ExpiresAt: claims.ExpiresAt.Time,
	}, nil
}

// peek decodes the header and the issuer of a token before its signature is checked, to pick the
// issuer's keys and algorithms. Nothing read here is trusted beyond that choice.
func peek(raw string) (header, string, error) {
	var h header
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return h, "", errMalformed
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &h) != nil {
		return h, "", errMalformed
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		Iss string `json:"iss"`
	}
	if err != nil || json.Unmarshal(pb, &c) != nil {
		return h, "", errMalformed
	}
	return h, c.Iss, nil
}

// verificationError maps the errors of jwt.Parser to ours, keeping the cause for logs.
func verificationError(err error) error {
	var te *tally.Error
	if errors.As(err, &te) { // from the key lookup
		return te
	}
	var e *tally.Error
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		e = errMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		e = errBadSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		e = errExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		e = errNotYetValid
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		e = errIssuedInFuture
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		e = errWrongIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		e = errWrongAudience
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		e = errMissingClaim
	default:
		e = errInvalid
	}
	return &tally.Error{Code: e.Code, Message: e.Message, Err: err}
}

// scopeClaim reads "scope" (RFC 9068: a space-separated string) or, failing that, "scp"; either may be a
// string or an array of strings.
func scopeClaim(scope, scp json.RawMessage) ([]string, error) {
	raw := scope
	if len(raw) == 0 {
		raw = scp
	}
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return strings.Fields(s), nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, err
	}
	return list, nil
}
