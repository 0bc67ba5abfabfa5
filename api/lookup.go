package api

import (
	"context"
	"net/http"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/balancecache"
)

type lookupRequest struct {
	CustomerHash string `json:"customer_hash"`
	Channel      string `json:"channel"`
	RequestID    string `json:"request_id"`
}

type lookupResponse struct {
	CustomerHash string `json:"customer_hash"`
	Balance      int64  `json:"balance"` // spendable: pending points are not in it
	// PendingPoints are earned but not spendable yet; NextExpiry the soonest expiry (null: none).
	PendingPoints    int64       `json:"pending_points"`
	NextExpiry       *nextExpiry `json:"next_expiry"`
	Tier             string      `json:"tier"`
	BalanceVersion   int64       `json:"balance_version"`
	SessionToken     string      `json:"session_token"`
	SessionExpiresIn int64       `json:"session_expires_in"`
	Stale            bool        `json:"stale"`
	AsOf             time.Time   `json:"as_of"`
}

// handleLookup answers a customer's balance. A lookup creates nothing: an unknown customer has 0 points
// and the base tier. When the store is down or slower than the lookup deadline, the last-known balance
// is answered with "stale": true and the time it was known.
func (s *Server) handleLookup(w http.ResponseWriter, r *http.Request) {
	body, err := readJSON(w, r, s.opts.BodyLimit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var req lookupRequest
	if err := decodeInto(body, &req); err != nil {
		writeError(w, r, err)
		return
	}
	hash, err := s.customerHash(req.CustomerHash)
	if err != nil {
		writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.LookupDeadline)
	acct, lag, err := s.balance(ctx, hash)
	cancel()
	now := time.Now().UTC().Add(-lag)
	resp := lookupResponse{CustomerHash: publicHash(hash), AsOf: now}
	switch code := tally.ErrorCode(err); {
	case err == nil:
		resp.Balance, resp.BalanceVersion = acct.Spendable(), acct.BalanceVersion
		resp.PendingPoints, resp.NextExpiry = s.lotDetails(r.Context(), acct)
		tctx, cancel := context.WithTimeout(r.Context(), s.opts.LookupDeadline)
		resp.Tier, err = s.Earning.Tier(tctx, hash)
		cancel()
		if err != nil {
			writeError(w, r, err)
			return
		}
		s.remember(r.Context(), balancecache.Entry{CustomerHash: hash, Balance: resp.Balance, BalanceVersion: acct.BalanceVersion, Tier: resp.Tier, AsOf: now})
	case code == tally.ENOTFOUND:
		resp.Tier = s.Programme.BaseTier()
	case code == tally.EUNAVAILABLE || ctx.Err() != nil && r.Context().Err() == nil:
		e, ok := s.lastKnown(r.Context(), hash)
		if !ok {
			writeError(w, r, err)
			return
		}
		resp.Balance, resp.BalanceVersion, resp.Tier, resp.AsOf, resp.Stale = e.Balance, e.BalanceVersion, e.Tier, e.AsOf, true
		if s.metrics != nil {
			s.metrics.StaleAnswers.Inc()
		}
	default:
		writeError(w, r, err)
		return
	}
	token, exp, err := s.session(r.Context(), hash)
	if err != nil && !resp.Stale {
		writeError(w, r, err)
		return
	}
	if err == nil {
		resp.SessionToken = token
		resp.SessionExpiresIn = int64(time.Until(exp).Round(time.Second).Seconds())
	}
	writeJSON(w, http.StatusOK, resp)
}

// remember keeps a balance for stale answers; a cache that fails is logged, never fatal.
func (s *Server) remember(ctx context.Context, e balancecache.Entry) {
	if s.Cache == nil {
		return
	}
	if err := s.Cache.Put(ctx, e); err != nil {
		logger(ctx).Warn("balance cache put failed", "err", err)
	}
}

func (s *Server) lastKnown(ctx context.Context, hash string) (balancecache.Entry, bool) {
	if s.Cache == nil {
		return balancecache.Entry{}, false
	}
	e, ok, err := s.Cache.Get(ctx, hash)
	if err != nil {
		logger(ctx).Warn("balance cache get failed", "err", err)
		return balancecache.Entry{}, false
	}
	return e, ok
}
