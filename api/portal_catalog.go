package api

import (
	"net/http"
	"time"

	"github.com/tally-ledger/tally"
)

// catalogReward is what a customer sees of a reward, with what the server decided about it for them.
// Nothing of how it is fulfilled is shown.
type catalogReward struct {
	ID          string `json:"reward_id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	PointCost   int64  `json:"point_cost"`
	ImageURL    string `json:"image_url"`
	MinTier     string `json:"min_tier,omitempty"`
	Inventory   *int64 `json:"inventory"` // units left; null: unlimited
	Affordable  bool   `json:"affordable"`
	Eligible    bool   `json:"eligible"`
	InStock     bool   `json:"in_stock"`
}

// handlePortalCatalog answers the session's customer: the authoritative balance and tier, and every
// active reward with whether this customer can afford it, reaches its tier, and can still get one. The
// query the integration guide sends (?tier=&balance=) is accepted and ignored: the browser is never
// trusted with either.
func (s *Server) handlePortalCatalog(w http.ResponseWriter, r *http.Request) {
	hash, ok := s.sessionCustomer(w, r)
	if !ok {
		return
	}
	resp := struct {
		CustomerHash   string          `json:"customer_hash"`
		Balance        int64           `json:"balance"`
		BalanceVersion int64           `json:"balance_version"`
		Tier           string          `json:"tier"`
		Stale          bool            `json:"stale"`
		AsOf           string          `json:"as_of,omitempty"`
		Rewards        []catalogReward `json:"rewards"`
	}{CustomerHash: publicHash(hash), Rewards: []catalogReward{}}
	acct, err := s.Ledger.Balance(r.Context(), hash)
	switch {
	case err == nil:
		resp.Balance, resp.BalanceVersion = acct.Balance, acct.BalanceVersion
	case tally.ErrorCode(err) == tally.ENOTFOUND:
	default:
		e, ok := s.lastKnown(r.Context(), hash)
		if !ok {
			writeError(w, r, err)
			return
		}
		resp.Balance, resp.BalanceVersion, resp.Stale = e.Balance, e.BalanceVersion, true
		resp.AsOf = e.AsOf.UTC().Format(time.RFC3339)
	}
	resp.Tier = s.Programme.TierOf(resp.Balance)
	have, _ := s.Programme.Rank(resp.Tier)
	rewards, err := s.Store.Rewards(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	for _, rw := range rewards {
		if !rw.Active {
			continue
		}
		eligible := true
		if rw.MinTier != "" {
			need, known := s.Programme.Rank(rw.MinTier)
			eligible = known && have >= need
		}
		resp.Rewards = append(resp.Rewards, catalogReward{
			ID: rw.ID, Name: rw.Name, Description: rw.Description, PointCost: rw.PointCost, ImageURL: rw.ImageURL,
			MinTier: rw.MinTier, Inventory: rw.Inventory, Affordable: resp.Balance >= rw.PointCost, Eligible: eligible,
			InStock: rw.Inventory == nil || *rw.Inventory > 0,
		})
	}
	writeJSON(w, http.StatusOK, resp)
}
