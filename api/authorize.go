package api

import (
	"context"
	"net/http"

	"github.com/tally-ledger/tally/auth"
)

// authorize lets a request through when it carries a valid bearer token with the scope; otherwise it
// answers 401 or 403 with the RFC 6750 challenge.
func (s *Server) authorize(scope string, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := auth.BearerToken(r)
		if err != nil {
			auth.Challenge(w, err, scope)
			return
		}
		p, err := s.Verifier.Verify(r.Context(), raw)
		if err != nil {
			auth.Challenge(w, err, scope)
			return
		}
		if !p.Has(scope) {
			auth.Challenge(w, nil, scope)
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
	auth.Challenge(w, nil, scope)
	return false
}
