package api

import (
	"net/http"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/auth"
)

// sessionCustomer verifies the request's portal session token and returns its customer hash. Portal
// routes accept session tokens only: an access token of an integration is refused here, as a session
// token is refused on ledger routes. Each customer's requests are bounded as each address's are on the
// session routes (Options PortalRate and PortalBurst, a bucket per customer): beyond it 429 with
// Retry-After. On failure it has answered.
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
	if ok, wait := s.portalRate.Take("customer:" + hash); !ok {
		writeError(w, r, limited(wait, "too many portal requests for this customer; retry after the Retry-After"))
		return "", false
	}
	return hash, true
}

// namesSessionCustomer checks that a customer_hash a page sent names the session's customer. The guide's
// widget fills it with the raw id the page knows: the hash of that, the hash itself, or its th_ form
// must name the session's customer; anything else is EFORBIDDEN.
func (s *Server) namesSessionCustomer(v, sessionHash string) error {
	if v == sessionHash {
		return nil
	}
	named, err := s.customerHash(v)
	if err != nil {
		return err
	}
	if named != sessionHash {
		return tally.Errorf(tally.EFORBIDDEN, "customer_hash does not name the customer of this session")
	}
	return nil
}

// handleSessionVerify answers whether the customer a page knows is the session's, so that a widget
// given another customer's id refuses at once instead of showing the session's customer under it.
func (s *Server) handleSessionVerify(w http.ResponseWriter, r *http.Request) {
	hash, ok := s.sessionCustomer(w, r)
	if !ok {
		return
	}
	body, rep, err := readBody(w, r, s.opts.BodyLimit)
	if err == nil {
		err = checkTallyBody(rep)
	}
	var in struct {
		CustomerHash string `json:"customer_hash"`
	}
	if err == nil {
		err = decodeStrict(body, &in)
	}
	if err == nil && in.CustomerHash == "" {
		err = tally.Errorf(tally.EINVALID, "customer_hash is required")
	}
	if err == nil {
		err = s.namesSessionCustomer(in.CustomerHash, hash)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		CustomerHash string `json:"customer_hash"`
	}{publicHash(hash)})
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
