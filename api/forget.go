package api

import (
	"net/http"
	"time"

	"github.com/tally-ledger/tally"
)

// forgetRequest is the body of POST /v1/admin/customers/{customer}/forget.
type forgetRequest struct {
	Reason string `json:"reason"`
	// Actor names the person who asked (a DPO, a ticket); the calling client is recorded beside it.
	Actor string `json:"actor"`
}

// forgetResponse is the erasure record as the requester sees it: without the pseudonym, which the
// requester, who knows the raw id, could otherwise link to it.
type forgetResponse struct {
	Erasure      int64     `json:"erasure"`
	Actor        string    `json:"actor"`
	Reason       string    `json:"reason"`
	ErasedAt     time.Time `json:"erased_at"`
	Transactions int64     `json:"transactions"`
}

// handleForget erases a customer: the account is re-keyed to a random pseudonym (see ledger.Forget).
// 404 when no account has this customer's hash: never had one, or was forgotten already.
func (s *Server) handleForget(w http.ResponseWriter, r *http.Request) {
	hash, err := s.customerHash(r.PathValue("customer"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	body, err := readJSON(w, r, s.opts.BodyLimit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var req forgetRequest
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, r, err)
		return
	}
	actor := "client:" + principal(r).ClientID
	if req.Actor != "" {
		actor = req.Actor + " (via " + actor + ")"
	}
	e, err := s.Ledger.Forget(r.Context(), hash, actor, req.Reason)
	if tally.ErrorCode(err) == tally.ENOTFOUND {
		err = tally.Errorf(tally.ENOTFOUND, "no account for this customer: it never had one, or it was forgotten already (a forgotten customer cannot be found by its id)")
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	if s.Cache != nil {
		if err := s.Cache.Delete(r.Context(), hash); err != nil {
			logger(r.Context()).Warn("balance cache: could not drop a forgotten customer's entry; it expires with its TTL", "err", err)
		}
	}
	writeJSON(w, http.StatusOK, forgetResponse{Erasure: e.No, Actor: e.Actor, Reason: e.Reason, ErasedAt: e.ErasedAt, Transactions: e.Transactions})
}
