package api

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net/http"
	"net/url"
	"time"

	"github.com/tally-ledger/tally"
)

// limitedError is a refusal by an abuse limit: 429 with the Retry-After it carries.
type limitedError struct {
	err   *tally.Error
	after time.Duration
}

func (e *limitedError) Error() string { return e.err.Error() }
func (e *limitedError) Unwrap() error { return e.err }
func (e *limitedError) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(e.after.Seconds())))
}

func limited(after time.Duration, format string, args ...any) error {
	var e *tally.Error
	errors.As(tally.Errorf(tally.EOVERLOADED, format, args...), &e)
	return &limitedError{err: e, after: after}
}

// guardToken locks the token endpoint out for a client id, and for a source address, that failed
// client authentication too often (ratelimit.Failures decides). A locked-out attempt is refused before
// the client is looked up and before its secret is hashed: it costs no database read, and, as every 429,
// no log line; the lockout itself is logged once, when it starts. A client that knows its secret gets a
// token again once the lockout is over.
//
// The source address is the client's (Server.source): the TCP peer, or, from a trusted proxy, the
// address its forwarding header names. Behind a proxy that is not trusted every caller has the proxy's
// address, and the per-address limit counts them all together (see SECURITY.md).
func (s *Server) guardToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys := tokenFailureKeys(r, s.opts.BodyLimit, s.source(r))
		for _, k := range keys {
			if d := s.authFailures.Locked(r.Context(), k.key); d > 0 {
				writeError(w, r, limited(d, "too many failed client authentications from this %s; retry after the lockout", k.kind))
				return
			}
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status != http.StatusUnauthorized {
			return
		}
		for _, k := range keys {
			if d := s.authFailures.Fail(r.Context(), k.key); d > 0 {
				logger(r.Context()).Warn("auth: token endpoint locked out after repeated failures",
					k.kind, k.shown, "lockout", d.String())
			}
		}
	})
}

type failureKey struct {
	kind  string // "client_id" or "address"
	key   string // the limiter's key
	shown string // what the log says
}

// tokenFailureKeys are the keys a token request's failures count against: its client id (Basic user
// or client_id form field) and its source address (as Server.source gives it).
func tokenFailureKeys(r *http.Request, limit int64, source string) []failureKey {
	var keys []failureKey
	if id := tokenClientID(r, limit); id != "" {
		shown := id
		if len(shown) > 128 || !isToken(shown) {
			shown = "(malformed)"
		}
		keys = append(keys, failureKey{"client_id", "client:" + id, shown})
	}
	return append(keys, failureKey{"address", "addr:" + source, source})
}

// tokenClientID finds the client id a token request names, without consuming its body: the handler
// reads the same bytes after.
func tokenClientID(r *http.Request, limit int64) string {
	if user, _, ok := r.BasicAuth(); ok {
		if u, err := url.QueryUnescape(user); err == nil {
			user = u
		}
		return boundKey(user)
	}
	if r.Body == nil || r.Body == http.NoBody {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	rest := io.Reader(r.Body)
	if err != nil {
		rest = failingReader{err}
	}
	r.Body = readAheadBody{Reader: io.MultiReader(bytes.NewReader(b), rest), Closer: r.Body}
	form, _ := url.ParseQuery(string(b))
	return boundKey(form.Get("client_id"))
}

// boundKey keeps a limiter key short whatever a caller sends as a client id (no real one is longer).
func boundKey(id string) string {
	if len(id) > 256 {
		return id[:256]
	}
	return id
}

// limitClient refuses a request of an authenticated OAuth client over its request rate (Options
// ClientRate and ClientBurst) with 429 and the Retry-After of its next token.
func (s *Server) limitClient(w http.ResponseWriter, r *http.Request, clientID string) bool {
	ok, wait := s.clientRate.Take(clientID)
	if ok {
		return true
	}
	writeError(w, r, limited(wait, "this client is over its request rate; retry after the Retry-After"))
	return false
}

// limitPortal bounds the requests each source address (Server.source) makes to the portal session
// routes (Options PortalRate and PortalBurst): beyond it 429 with the Retry-After of its next token. It
// runs before the session token is verified and before the body is read, so that a flood of made-up
// tokens costs a map look-up each. The bucket is per replica, like the OAuth clients' (ratelimit.Buckets).
func (s *Server) limitPortal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, wait := s.portalRate.Take(s.source(r)); !ok {
			writeError(w, r, limited(wait, "too many portal session requests from this address; retry after the Retry-After"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
