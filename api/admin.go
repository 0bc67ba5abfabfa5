package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/tally-ledger/tally"
)

// transactionView is how a transaction is shown, with the customer as a prefixed hash.
type transactionView struct {
	TransactionID int64           `json:"transaction_id"`
	Kind          tally.Kind      `json:"kind"`
	CustomerHash  string          `json:"customer_hash"`
	Amount        int64           `json:"amount"`
	Delta         int64           `json:"delta"`
	Channel       string          `json:"channel"`
	Key           string          `json:"idempotency_key"`
	Reason        string          `json:"reason,omitempty"`
	Actor         string          `json:"actor,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
	Reverses      int64           `json:"reverses_transaction_id,omitempty"`
	CreatedAt     string          `json:"created_at"`
	Postings      []tally.Posting `json:"postings"`
	Hash          string          `json:"hash"`
}

func viewOf(t tally.Transaction) transactionView {
	v := transactionView{
		TransactionID: t.Seq, Kind: t.Kind, CustomerHash: publicHash(t.AccountID), Amount: t.Amount, Delta: t.Delta(),
		Channel: t.Channel, Key: t.IdempotencyKey, Reason: t.Reason, Actor: t.Actor, Metadata: t.Metadata,
		Reverses: t.ReversesSeq, CreatedAt: t.CreatedAt.Format("2006-01-02T15:04:05.000000Z07:00"),
		Postings: append([]tally.Posting(nil), t.Postings...), Hash: t.Hash,
	}
	for i, p := range v.Postings {
		if p.AccountID == t.AccountID {
			v.Postings[i].AccountID = publicHash(p.AccountID)
		}
	}
	return v
}

// handleHistory lists a customer's transactions, newest first, a page at a time.
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	hash, err := s.customerHash(r.PathValue("customer"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	limit := 0
	if l := r.URL.Query().Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit <= 0 {
			writeError(w, r, tally.Errorf(tally.EINVALID, "limit must be a positive whole number"))
			return
		}
	}
	page, err := s.Ledger.History(r.Context(), hash, r.URL.Query().Get("cursor"), limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := struct {
		CustomerHash string            `json:"customer_hash"`
		Transactions []transactionView `json:"transactions"`
		NextCursor   string            `json:"next_cursor,omitempty"`
	}{CustomerHash: publicHash(hash), Transactions: make([]transactionView, 0, len(page.Transactions)), NextCursor: page.Next}
	for _, t := range page.Transactions {
		out.Transactions = append(out.Transactions, viewOf(t))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleTransaction shows one transaction.
func (s *Server) handleTransaction(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err != nil || seq <= 0 {
		writeError(w, r, tally.Errorf(tally.EINVALID, "transaction id must be a positive whole number"))
		return
	}
	t, err := s.Ledger.Transaction(r.Context(), seq)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewOf(t))
}

// handleStatus freezes, closes or reactivates a customer account.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
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
	var req struct {
		Status tally.AccountStatus `json:"status"`
	}
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, r, err)
		return
	}
	a, err := s.Ledger.SetStatus(r.Context(), hash, req.Status)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"customer_hash": publicHash(a.ID), "status": a.Status, "balance": a.Spendable(), "balance_version": a.BalanceVersion})
}

// handleRewards lists the reward catalog.
func (s *Server) handleRewards(w http.ResponseWriter, r *http.Request) {
	rewards, err := s.Store.Rewards(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	if rewards == nil {
		rewards = []tally.Reward{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"rewards": rewards})
}

// handleReward shows one reward.
func (s *Server) handleReward(w http.ResponseWriter, r *http.Request) {
	// No reward can have such an id (PUT refuses it): say so rather than "not found".
	if err := tally.CheckText("reward_id", r.PathValue("id")); err != nil {
		writeError(w, r, err)
		return
	}
	rw, err := s.reward(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rw)
}

// reward reads one reward of the catalog (the store reads the catalog whole: it is small). ENOTFOUND when
// absent.
func (s *Server) reward(ctx context.Context, id string) (tally.Reward, error) {
	rewards, err := s.Store.Rewards(ctx)
	if err != nil {
		return tally.Reward{}, err
	}
	for _, rw := range rewards {
		if rw.ID == id {
			return rw, nil
		}
	}
	return tally.Reward{}, tally.Errorf(tally.ENOTFOUND, "no reward %q", id)
}

// handlePutReward creates or replaces a reward, and answers it as stored.
func (s *Server) handlePutReward(w http.ResponseWriter, r *http.Request) {
	body, err := readJSON(w, r, s.opts.BodyLimit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var rw tally.Reward
	rw.Active = true
	if err := decodeStrict(body, &rw); err != nil {
		writeError(w, r, err)
		return
	}
	id := r.PathValue("id")
	if rw.ID != "" && rw.ID != id {
		writeError(w, r, tally.Errorf(tally.EINVALID, "reward_id in the body differs from the path"))
		return
	}
	rw.ID = id
	// The store stamps the times: a caller may not back-date a reward.
	rw.CreatedAt, rw.UpdatedAt = time.Time{}, time.Time{}
	if err := validateReward(rw); err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.Store.PutReward(r.Context(), rw); err != nil {
		writeError(w, r, err)
		return
	}
	stored, err := s.reward(r.Context(), id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, stored)
}

// validateReward is the catalog's rule for a reward (tally.Reward.Validate), which the CLI applies too.
func validateReward(rw tally.Reward) error { return rw.Validate() }
