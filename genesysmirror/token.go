// Package genesysmirror copies each customer's balance and tier to their Genesys Cloud external contact,
// so that agents see them: an outbox (tally.MirrorStore) filled when a Genesys event names the contact,
// a worker that drains it, and a client of the Genesys API with its OAuth client-credentials token.
package genesysmirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Tokens hands out the Genesys access token: one cached until shortly before the expiry Genesys gave
// (expires_in), shared with the other replicas through Redis when there is one, and dropped when the
// API refuses it (Invalidate). No lifetime is assumed: the margin before expiry is a tenth of what the
// token was issued for, at most a minute.
type Tokens struct {
	fetch func(context.Context) (*oauth2.Token, error)
	redis *redis.Client // nil: this replica only
	key   string        // the Redis key of the token of this client id

	mu  sync.Mutex
	tok *oauth2.Token
	use time.Time // when the cached token stops being handed out
}

// NewTokens returns the tokens of a Genesys OAuth client (client credentials grant, the client
// authenticated with HTTP Basic as Genesys requires). rdb may be nil.
func NewTokens(tokenURL, clientID, clientSecret string, rdb *redis.Client) *Tokens {
	cfg := clientcredentials.Config{ClientID: clientID, ClientSecret: clientSecret, TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInHeader}
	sum := sha256.Sum256([]byte(tokenURL + "\x00" + clientID))
	// cfg.Token fetches a new token on every call; the caching is ours, so that its margin follows the
	// token's lifetime (oauth2's ReuseTokenSource keeps a fixed 10 s, longer than a short-lived token).
	return &Tokens{fetch: cfg.Token, redis: rdb, key: "tally:genesys:token:" + hex.EncodeToString(sum[:12])}
}

// ErrNoToken is the error (wrapped) of Token when no token can be had.
var ErrNoToken = errors.New("genesys: no access token")

// shared is a token as stored in Redis.
type shared struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	Expiry      time.Time `json:"expiry"`
	Use         time.Time `json:"use"`
}

// Token returns a token that is valid for a while yet.
func (t *Tokens) Token(ctx context.Context) (*oauth2.Token, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if t.tok != nil && now.Before(t.use) {
		return t.tok, nil
	}
	if tok, use, ok := t.readShared(ctx, now); ok {
		t.tok, t.use = tok, use
		return tok, nil
	}
	tok, err := t.fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoToken, scrub(err))
	}
	if tok.Expiry.IsZero() {
		return nil, fmt.Errorf("%w: the token answer has no expires_in", ErrNoToken)
	}
	life := tok.Expiry.Sub(now)
	margin := min(life/10, time.Minute)
	t.tok, t.use = tok, tok.Expiry.Add(-margin)
	t.writeShared(ctx, tok, t.use, now)
	return tok, nil
}

// Invalidate drops tok, which the API refused, here and in Redis (unless another token replaced it
// there already), so that the next Token fetches a new one.
func (t *Tokens) Invalidate(ctx context.Context, tok *oauth2.Token) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != nil && t.tok.AccessToken == tok.AccessToken {
		t.tok = nil
	}
	if t.redis == nil {
		return
	}
	if cur, ok := t.getShared(ctx); ok && cur.AccessToken == tok.AccessToken {
		t.redis.Del(ctx, t.key) // best effort: a stale copy also ends with its TTL
	}
}

func (t *Tokens) getShared(ctx context.Context) (shared, bool) {
	var s shared
	if t.redis == nil {
		return s, false
	}
	b, err := t.redis.Get(ctx, t.key).Bytes()
	if err != nil || json.Unmarshal(b, &s) != nil || s.AccessToken == "" {
		return s, false
	}
	return s, true
}

// readShared returns the token another replica stored, if it is still to be used. Redis being down
// only costs a fetch of our own.
func (t *Tokens) readShared(ctx context.Context, now time.Time) (*oauth2.Token, time.Time, bool) {
	s, ok := t.getShared(ctx)
	if !ok || !now.Before(s.Use) {
		return nil, time.Time{}, false
	}
	return &oauth2.Token{AccessToken: s.AccessToken, TokenType: s.TokenType, Expiry: s.Expiry}, s.Use, true
}

// writeShared stores tok for the other replicas, until it stops being handed out (the key's TTL).
func (t *Tokens) writeShared(ctx context.Context, tok *oauth2.Token, use, now time.Time) {
	if t.redis == nil || !use.After(now) {
		return
	}
	b, err := json.Marshal(shared{AccessToken: tok.AccessToken, TokenType: tok.TokenType, Expiry: tok.Expiry, Use: use})
	if err != nil {
		return
	}
	t.redis.Set(ctx, t.key, b, use.Sub(now))
}

// scrub keeps what a token endpoint's failure says (status, error code) and drops its body, which is
// not ours to log.
func scrub(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		if re.ErrorCode != "" {
			return &tokenError{status: status, code: re.ErrorCode}
		}
		return &tokenError{status: status}
	}
	return err
}

// tokenError is a failed token request.
type tokenError struct {
	status int
	code   string
}

func (e *tokenError) Error() string {
	if e.code != "" {
		return "token request failed: " + e.code
	}
	return fmt.Sprintf("token request failed with status %d", e.status)
}
