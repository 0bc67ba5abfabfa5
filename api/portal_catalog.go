package api

import (
	"context"
	"net/http"
	"time"

	"github.com/tally-ledger/tally"
)

// catalogReward is what a customer sees of a reward, with what the server decided about it for them.
// Of how it is fulfilled only the method is shown (the guide's redeem body names it), never where to.
type catalogReward struct {
	ID          string `json:"reward_id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	PointCost   int64  `json:"point_cost"`
	ImageURL    string `json:"image_url"`
	MinTier     string `json:"min_tier,omitempty"`
	Method      string `json:"fulfillment_method"` // what the guide's redeem body echoes back
	Inventory   *int64 `json:"inventory"`          // units left; null: unlimited
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
	b, err := s.portalBalance(r.Context(), hash)
	if err != nil {
		writeError(w, r, err)
		return
	}
	resp.Balance, resp.BalanceVersion, resp.Stale, resp.AsOf = b.Balance, b.BalanceVersion, b.stale, b.asOf
	resp.Tier = b.tier
	have, _ := s.Programme.Rank(resp.Tier)
	rewards, err := s.Store.Rewards(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	var codes map[string]tally.CouponCount
	for _, rw := range rewards {
		if rw.Active && rw.FulfillmentMethod == tally.MethodCoupon {
			// A coupon reward is in stock only while a code is free: read the counts only when one is listed.
			if codes, err = s.Store.CouponCounts(r.Context()); err != nil {
				writeError(w, r, err)
				return
			}
			break
		}
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
			MinTier: rw.MinTier, Method: rw.FulfillmentMethod, Inventory: rw.Inventory, Affordable: resp.Balance >= rw.PointCost, Eligible: eligible,
			InStock: (rw.Inventory == nil || *rw.Inventory > 0) && (rw.FulfillmentMethod != tally.MethodCoupon || codes[rw.ID].Free > 0),
		})
	}
	writeJSON(w, http.StatusOK, resp)
}

// portalState is a customer's balance as the portal shows it.
type portalState struct {
	tally.Account
	stale bool
	asOf  string // when stale: when the balance was last known
	tier  string // the stored tier (when stale: the last known)
}

// portalBalance reads a customer's balance for the portal: the ledger's, zero for a customer with no
// account yet, and when the store is down the last-known balance marked stale.
func (s *Server) portalBalance(ctx context.Context, hash string) (portalState, error) {
	acct, err := s.Ledger.Balance(ctx, hash)
	switch {
	case err == nil:
		// The portal shows and compares what the customer can spend.
		acct.Balance = acct.Spendable()
		var tier string
		if tier, err = s.Earning.Tier(ctx, hash); err == nil {
			return portalState{Account: acct, tier: tier}, nil
		}
	case tally.ErrorCode(err) == tally.ENOTFOUND:
		return portalState{tier: s.Programme.BaseTier()}, nil
	}
	e, ok := s.lastKnown(ctx, hash)
	if !ok {
		return portalState{}, err
	}
	return portalState{Account: tally.Account{Balance: e.Balance, BalanceVersion: e.BalanceVersion}, stale: true,
		asOf: e.AsOf.UTC().Format(time.RFC3339), tier: e.Tier}, nil
}
