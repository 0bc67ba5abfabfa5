package api

import (
	"io/fs"
	"net/http"

	"github.com/tally-ledger/tally/widget"
)

// portalFiles serves the portal page and its assets, under the portal's Content-Security-Policy.
func portalFiles(origins []string) http.Handler {
	csp := portalCSP(origins)
	sub, err := fs.Sub(widget.FS, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/portal/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		files.ServeHTTP(w, r)
	})
}

// portalReward is what a customer sees of a reward: nothing of how it is fulfilled.
type portalReward struct {
	ID        string `json:"reward_id"`
	Name      string `json:"name"`
	PointCost int64  `json:"point_cost"`
	MinTier   string `json:"min_tier,omitempty"`
}

// handlePortalMe answers the customer of a portal session: balance, tier and the active rewards.
func (s *Server) handlePortalMe(w http.ResponseWriter, r *http.Request) {
	hash, ok := s.sessionCustomer(w, r)
	if !ok {
		return
	}
	resp := struct {
		CustomerHash string         `json:"customer_hash"`
		Balance      int64          `json:"balance"`
		Pending      int64          `json:"pending_points"`
		NextExpiry   *nextExpiry    `json:"next_expiry"`
		Tier         string         `json:"tier"`
		Stale        bool           `json:"stale"`
		AsOf         string         `json:"as_of,omitempty"`
		Rewards      []portalReward `json:"rewards"`
	}{CustomerHash: publicHash(hash), Rewards: []portalReward{}}
	b, err := s.portalBalance(r.Context(), hash)
	if err != nil {
		writeError(w, r, err)
		return
	}
	resp.Balance, resp.Stale, resp.AsOf = b.Balance, b.stale, b.asOf
	if !b.stale && b.ID != "" {
		resp.Pending, resp.NextExpiry = s.lotDetails(r.Context(), b.Account)
	}
	resp.Tier = b.tier
	rewards, err := s.Store.Rewards(r.Context())
	if err != nil && !resp.Stale {
		writeError(w, r, err)
		return
	}
	for _, rw := range rewards {
		if rw.Active {
			resp.Rewards = append(resp.Rewards, portalReward{rw.ID, rw.Name, rw.PointCost, rw.MinTier})
		}
	}
	writeJSON(w, http.StatusOK, resp)
}
