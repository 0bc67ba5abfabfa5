package api

import (
	"net/http"
	"time"

	"github.com/tally-ledger/tally/auth"
)

// sessionCustomer verifies the request's portal session token and returns its customer hash. Portal
// routes accept session tokens only: an access token of an integration is refused here, as a session
// token is refused on ledger routes. On failure it has answered.
func (s *Server) sessionCustomer(w http.ResponseWriter, r *http.Request) (string, bool) {
	raw, err := auth.BearerToken(r)
	if err != nil {
		challenge(w, r, err, "")
		return "", false
	}
	hash, err := s.Issuer.VerifySession(r.Context(), raw)
	if err != nil {
		challenge(w, r, err, "")
		return "", false
	}
	return hash, true
}

// handleSessionRefresh renews an unexpired portal session token, so that a portal left open keeps
// working past the first token's short life without a new lookup.
func (s *Server) handleSessionRefresh(w http.ResponseWriter, r *http.Request) {
	hash, ok := s.sessionCustomer(w, r)
	if !ok {
		return
	}
	token, exp, err := s.Issuer.IssueSession(r.Context(), hash, s.opts.SessionTTL)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		SessionToken string `json:"session_token"`
		ExpiresIn    int64  `json:"expires_in"`
		ExpiresAt    string `json:"expires_at"`
	}{token, int64(time.Until(exp).Round(time.Second).Seconds()), exp.UTC().Format(time.RFC3339)})
}
