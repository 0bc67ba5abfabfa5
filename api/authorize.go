package api

import (
	"context"
	"net/http"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/auth"
)

// authorize lets a request through when it carries a valid bearer token with the scope; otherwise it
// answers 401 or 403 with the RFC 6750 challenge.
func (s *Server) authorize(scope string, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := auth.BearerToken(r)
		if err != nil {
			challenge(w, r, err, scope)
			return
		}
		p, err := s.Verifier.Verify(r.Context(), raw)
		if err != nil {
			challenge(w, r, err, scope)
			return
		}
		if !p.Has(scope) {
			challenge(w, r, nil, scope)
			return
		}
		if s.revoked(r.Context(), p) {
			challenge(w, r, tally.Errorf(tally.EUNAUTHORIZED, "the client was revoked"), scope)
			return
		}
		if !s.limitClient(w, r, p.Issuer+" "+p.ClientID) {
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), keyPrincipal, p)))
	})
}

// principal is the verified caller of a request that passed authorize.
func principal(r *http.Request) auth.Principal {
	p, _ := r.Context().Value(keyPrincipal).(auth.Principal)
	return p
}

// requireScope checks an extra scope inside a handler (writes whose kind needs admin).
func requireScope(w http.ResponseWriter, r *http.Request, scope string) bool {
	if principal(r).Has(scope) {
		return true
	}
	challenge(w, r, nil, scope)
	return false
}

// challengeCodes name the statuses of auth's challenges in the error vocabulary.
var challengeCodes = map[int]tally.Code{
	http.StatusBadRequest:         codeMalformed,
	http.StatusUnauthorized:       tally.EUNAUTHORIZED,
	http.StatusForbidden:          tally.EFORBIDDEN,
	http.StatusServiceUnavailable: tally.EUNAVAILABLE,
}

// challenge refuses a request as auth.Challenge does (same status, same WWW-Authenticate), but with the
// problem body of every other error, so that a refused token too carries a code and the request id.
func challenge(w http.ResponseWriter, r *http.Request, err error, scope string) {
	status := auth.SetChallenge(w.Header(), err, scope)
	code, ok := challengeCodes[status]
	if !ok {
		code = tally.EUNAUTHORIZED
	}
	writeError(w, r, &tally.Error{Code: code, Message: auth.ChallengeDetail(err, scope), Err: err})
}
