package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/tally-ledger/tally"
)

// maxJWKSBytes bounds the JWK Set body read from an external issuer.
const maxJWKSBytes = 1 << 20

// remoteKeySet is the JWK Set of an external issuer, fetched over HTTP and cached.
//
// A set is used for ttl after a successful fetch. A kid it does not hold causes a refetch, but at most one
// per minRefresh: the issuer's rotated key is picked up, and a caller spraying random kids cannot turn
// Tally into a load generator against the issuer. When a refetch of a stale set fails, the stale keys stay
// in use.
type remoteKeySet struct {
	url        string
	client     *http.Client
	timeout    time.Duration
	ttl        time.Duration
	minRefresh time.Duration
	now        func() time.Time
	log        *slog.Logger

	mu        sync.RWMutex
	keys      map[string]jwkKey
	fetchedAt time.Time // of the last successful fetch

	fetchMu   sync.Mutex // one fetch at a time; guards attemptAt and lastErr
	attemptAt time.Time
	lastErr   error
}

// jwkKey is a decoded public key and the "alg" its JWK names ("" when it names none).
type jwkKey struct {
	key any
	alg string
}

// key returns the key of kid, fetching the set when it is stale or does not hold kid (within the bounds
// above). EUNAUTHORIZED for an unknown kid; EUNAVAILABLE when the set cannot be fetched and holds no key.
func (s *remoteKeySet) key(ctx context.Context, kid string) (any, string, error) {
	k, ok, fresh := s.lookup(kid)
	if ok && fresh {
		return k.key, k.alg, nil
	}
	if ok {
		// Stale: one caller refreshes while the others go on with the key they have.
		if !s.fetchMu.TryLock() {
			return k.key, k.alg, nil
		}
		defer s.fetchMu.Unlock()
		if s.now().Sub(s.attemptAt) >= s.minRefresh {
			_ = s.fetchLocked(ctx) // on failure the stale keys stay
		}
		if k, ok, _ = s.lookup(kid); ok {
			return k.key, k.alg, nil
		}
		return nil, "", errUnknownKID // the issuer withdrew it
	}

	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	if k, ok, _ = s.lookup(kid); ok { // fetched while we waited
		return k.key, k.alg, nil
	}
	if !s.attemptAt.IsZero() && s.now().Sub(s.attemptAt) < s.minRefresh {
		if s.lastErr != nil && s.empty() {
			return nil, "", tally.Unavailable(s.lastErr, "the JWKS of the token's issuer")
		}
		return nil, "", errUnknownKID
	}
	if err := s.fetchLocked(ctx); err != nil && s.empty() {
		return nil, "", tally.Unavailable(err, "the JWKS of the token's issuer")
	}
	if k, ok, _ = s.lookup(kid); ok {
		return k.key, k.alg, nil
	}
	return nil, "", errUnknownKID
}

func (s *remoteKeySet) lookup(kid string) (k jwkKey, ok, fresh bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok = s.keys[kid]
	return k, ok, s.now().Sub(s.fetchedAt) < s.ttl
}

func (s *remoteKeySet) empty() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.keys) == 0
}

// fetchLocked fetches the set and, when it holds at least one usable key, replaces the cached one.
// The fetch outlives a cancelled caller: others may be waiting for it.
func (s *remoteKeySet) fetchLocked(ctx context.Context) error {
	s.attemptAt = s.now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	keys, err := s.fetch(ctx)
	s.lastErr = err
	if err != nil {
		s.log.WarnContext(ctx, "auth: cannot fetch external JWKS", "err", err)
		return err
	}
	s.mu.Lock()
	s.keys, s.fetchedAt = keys, s.now()
	s.mu.Unlock()
	return nil
}

func (s *remoteKeySet) fetch(ctx context.Context) (map[string]jwkKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS answered %s", resp.Status)
	}
	var set jwkSet
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKSBytes)).Decode(&set); err != nil {
		return nil, fmt.Errorf("decoding JWKS: %w", err)
	}
	keys := make(map[string]jwkKey, len(set.Keys))
	for _, j := range set.Keys {
		if j.Kid == "" || (j.Use != "" && j.Use != "sig") {
			continue
		}
		pub, err := j.publicKey()
		if err != nil {
			s.log.DebugContext(ctx, "auth: skipping external JWK", "kid", j.Kid, "err", err)
			continue
		}
		keys[j.Kid] = jwkKey{key: pub, alg: j.Alg}
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS holds no usable signing key")
	}
	return keys, nil
}
