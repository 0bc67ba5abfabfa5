package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// nextExpiry is how a balance answer shows the soonest expiry of a customer's points (null: none expire).
type nextExpiry struct {
	Points int64     `json:"points"`
	At     time.Time `json:"at"`
}

// lotDetails reads what a balance answer shows beside the spendable balance: the pending points and the
// next expiry. The balance is the answer: when the expiry cannot be read within the lookup deadline it is
// left out (null) and logged, rather than failing the lookup.
func (s *Server) lotDetails(ctx context.Context, a tally.Account) (pending int64, next *nextExpiry) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.LookupDeadline)
	defer cancel()
	e, err := s.Store.NextExpiry(ctx, a.ID)
	switch tally.ErrorCode(err) {
	case "":
		return a.Pending, &nextExpiry{Points: e.Points, At: e.At}
	case tally.ENOTFOUND:
	default:
		logger(ctx).Warn("next expiry unavailable", "err", err)
	}
	return a.Pending, nil
}

// lotView is how a lot is shown.
type lotView struct {
	TransactionID int64      `json:"transaction_id"`
	CustomerHash  string     `json:"customer_hash"`
	Points        int64      `json:"points"`
	Remaining     int64      `json:"remaining"`
	Pending       bool       `json:"pending"`
	PendingUntil  *time.Time `json:"pending_until"`
	ExpiresAt     *time.Time `json:"expires_at"`
	ActivatedAt   *time.Time `json:"activated_at"`
	CreatedAt     time.Time  `json:"created_at"`
}

func lotViewOf(l tally.Lot) lotView {
	return lotView{TransactionID: l.Seq, CustomerHash: publicHash(l.AccountID), Points: l.Points, Remaining: l.Remaining,
		Pending: l.Pending(), PendingUntil: l.PendingUntil, ExpiresAt: l.ExpiresAt, ActivatedAt: l.ActivatedAt, CreatedAt: l.CreatedAt}
}

// adminWriteRequest is the body of the admin ledger writes: adjustments name a customer and an amount,
// clawbacks and reversals the transaction they undo. A reason and an actor are required, and an
// idempotency key, so that an agent's Data Action can retry safely.
type adminWriteRequest struct {
	IdempotencyKey string          `json:"idempotency_key"`
	Channel        string          `json:"channel"`
	CustomerHash   string          `json:"customer_hash"`
	Amount         int64           `json:"amount"`
	TransactionID  int64           `json:"transaction_id"`
	Reason         string          `json:"reason"`
	Actor          string          `json:"actor"`
	Metadata       json.RawMessage `json:"metadata"`
	ExpiresAt      *time.Time      `json:"expires_at"`
	PendingUntil   *time.Time      `json:"pending_until"`
}

func (s *Server) decodeAdminWrite(w http.ResponseWriter, r *http.Request) (adminWriteRequest, bool) {
	var req adminWriteRequest
	body, err := readJSON(w, r, s.opts.BodyLimit)
	if err == nil {
		err = decodeStrict(body, &req)
	}
	if err == nil && (req.Reason == "" || req.Actor == "") {
		err = tally.Errorf(tally.EINVALID, "reason and actor are required")
	}
	if err == nil && req.IdempotencyKey == "" {
		err = tally.Errorf(tally.EINVALID, "idempotency_key is required")
	}
	if err != nil {
		writeError(w, r, err)
		return req, false
	}
	return req, true
}

// handleAdjustment credits (positive amount: a new lot, expiring per the programme or at expires_at) or
// debits a customer by hand. Reinstating expired points is an adjustment.
func (s *Server) handleAdjustment(w http.ResponseWriter, r *http.Request) {
	req, ok := s.decodeAdminWrite(w, r)
	if !ok {
		return
	}
	if req.TransactionID != 0 {
		writeError(w, r, tally.Errorf(tally.EINVALID, "an adjustment names a customer, not a transaction"))
		return
	}
	hash, err := s.customerHash(req.CustomerHash)
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.adminWrite(w, r, ledger.Request{Kind: tally.KindAdjustment, Channel: req.Channel, Key: req.IdempotencyKey, Account: hash,
		Amount: req.Amount, Reason: req.Reason, Actor: req.Actor, Metadata: req.Metadata, ExpiresAt: req.ExpiresAt, PendingUntil: req.PendingUntil})
}

// handleReversal undoes a transaction, once: a redemption's points come back to the lots they came from
// and its reward's unit back to stock; a credit is clawed back under the return policy.
func (s *Server) handleReversal(w http.ResponseWriter, r *http.Request) { s.undo(w, r, false) }

// handleClawback reverses a credit (its source was refunded) under the programme's return policy.
func (s *Server) handleClawback(w http.ResponseWriter, r *http.Request) { s.undo(w, r, true) }

func (s *Server) undo(w http.ResponseWriter, r *http.Request, clawback bool) {
	req, ok := s.decodeAdminWrite(w, r)
	if !ok {
		return
	}
	if req.CustomerHash != "" || req.Amount != 0 || req.ExpiresAt != nil || req.PendingUntil != nil {
		writeError(w, r, tally.Errorf(tally.EINVALID, "a reversal takes its customer and amount from the transaction it reverses: name only transaction_id"))
		return
	}
	if req.TransactionID <= 0 {
		writeError(w, r, tally.Errorf(tally.EINVALID, "transaction_id must be a positive whole number"))
		return
	}
	lr := ledger.Request{Kind: tally.KindReversal, Channel: req.Channel, Key: req.IdempotencyKey, ReversesSeq: req.TransactionID,
		Reason: req.Reason, Actor: req.Actor, Metadata: req.Metadata}
	if !clawback {
		s.adminWrite(w, r, lr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.WriteDeadline)
	defer cancel()
	rc, err := s.Ledger.Clawback(ctx, lr)
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.answerWrite(w, rc, render(rc, lr))
}

func (s *Server) adminWrite(w http.ResponseWriter, r *http.Request, req ledger.Request) {
	rc, err := s.write(r.Context(), req)
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.answerWrite(w, rc, render(rc, req))
}

// handleActivate makes a pending accrual's points spendable now. Activating an active lot changes nothing.
func (s *Server) handleActivate(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err != nil || seq <= 0 {
		writeError(w, r, tally.Errorf(tally.EINVALID, "transaction id must be a positive whole number"))
		return
	}
	l, err := s.Ledger.Activate(r.Context(), seq)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, lotViewOf(l))
}

// handleExpiryRun runs the expiry job now (serve also runs it on a timer): safe to call on any replica,
// at any time, as often as wanted.
func (s *Server) handleExpiryRun(w http.ResponseWriter, r *http.Request) {
	rep, err := s.Ledger.ExpireLapsed(r.Context(), ledger.ExpireOptions{})
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
