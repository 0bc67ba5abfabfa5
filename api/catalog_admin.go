package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/tally-ledger/tally"
)

// Catalog administration (admin scope): partial updates of rewards, stock, coupon codes, and the
// redemptions' fulfillment queue with its dead letters. Creating or replacing a reward whole is PUT
// (admin.go).

// logChange records who changed the catalog and how, beside the request id, for the programme's own
// audit of its catalog.
func logChange(r *http.Request, change string, args ...any) {
	args = append([]any{"change", change, "client_id", principal(r).ClientID}, args...)
	logger(r.Context()).Info("catalog changed", args...)
}

// couponBodyLimit bounds a coupon upload, larger than other bodies: it is a file of codes.
const couponBodyLimit = 4 << 20

// patchField is a member of a partial update: whether it was given, and whether as null, which
// encoding/json alone does not tell apart from absent.
type patchField[T any] struct {
	set, null bool
	v         T
}

func (f *patchField[T]) UnmarshalJSON(b []byte) error {
	f.set = true
	if string(b) == "null" {
		f.null = true
		return nil
	}
	return json.Unmarshal(b, &f.v)
}

// rewardPatch is the body of PATCH /v1/catalog/rewards/{id}: the members to change.
type rewardPatch struct {
	ID                patchField[string] `json:"reward_id"`
	Name              patchField[string] `json:"name"`
	Description       patchField[string] `json:"description"`
	ImageURL          patchField[string] `json:"image_url"`
	PointCost         patchField[int64]  `json:"point_cost"`
	Inventory         patchField[int64]  `json:"inventory"` // null: unlimited
	MinTier           patchField[string] `json:"min_tier"`
	FulfillmentMethod patchField[string] `json:"fulfillment_method"`
	WebhookURL        patchField[string] `json:"webhook_url"`
	Active            patchField[bool]   `json:"active"`
}

// changes reports whether the patch names a member to change (reward_id alone changes nothing).
func (p rewardPatch) changes() bool {
	for _, set := range []bool{p.Name.set, p.Description.set, p.ImageURL.set, p.PointCost.set, p.Inventory.set,
		p.MinTier.set, p.FulfillmentMethod.set, p.WebhookURL.set, p.Active.set} {
		if set {
			return true
		}
	}
	return false
}

// apply changes r as the patch says; EINVALID for a null where the member takes none.
func (p rewardPatch) apply(r *tally.Reward) error {
	strs := []struct {
		name string
		f    patchField[string]
		to   *string
	}{
		{"name", p.Name, &r.Name}, {"description", p.Description, &r.Description}, {"image_url", p.ImageURL, &r.ImageURL},
		{"min_tier", p.MinTier, &r.MinTier}, {"fulfillment_method", p.FulfillmentMethod, &r.FulfillmentMethod},
		{"webhook_url", p.WebhookURL, &r.WebhookURL},
	}
	for _, s := range strs {
		if s.f.null {
			return tally.Errorf(tally.EINVALID, "%s cannot be null (send \"\" to clear an optional text)", s.name)
		}
		if s.f.set {
			*s.to = s.f.v
		}
	}
	switch {
	case p.PointCost.null:
		return tally.Errorf(tally.EINVALID, "point_cost cannot be null")
	case p.Active.null:
		return tally.Errorf(tally.EINVALID, "active cannot be null")
	}
	if p.PointCost.set {
		r.PointCost = p.PointCost.v
	}
	if p.Active.set {
		r.Active = p.Active.v
	}
	if p.Inventory.null {
		r.Inventory = nil
	} else if p.Inventory.set {
		n := p.Inventory.v
		r.Inventory = &n
	}
	return r.Validate()
}

// handleCreateReward creates a reward that does not exist yet: unlike PUT, it never replaces one, so that
// two administrators choosing one id do not silently overwrite each other.
func (s *Server) handleCreateReward(w http.ResponseWriter, r *http.Request) {
	body, err := readJSON(w, r, s.opts.BodyLimit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	rw := tally.Reward{Active: true}
	if err := decodeStrict(body, &rw); err != nil {
		writeError(w, r, err)
		return
	}
	// The store stamps the times: a caller may not back-date a reward.
	rw.CreatedAt, rw.UpdatedAt = time.Time{}, time.Time{}
	if err := rw.Validate(); err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.Store.CreateReward(r.Context(), rw); err != nil {
		writeError(w, r, err)
		return
	}
	stored, err := s.reward(r.Context(), rw.ID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	logChange(r, "create", "reward_id", stored.ID)
	writeJSON(w, http.StatusCreated, stored)
}

// handlePatchReward changes the members of a reward that the body names, under the reward's lock, so
// that a change of name does not write back a stale stock over concurrent redemptions.
func (s *Server) handlePatchReward(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := tally.CheckText("reward_id", id); err != nil {
		writeError(w, r, err)
		return
	}
	body, err := readJSON(w, r, s.opts.BodyLimit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var p rewardPatch
	if err := decodeStrict(body, &p); err != nil {
		writeError(w, r, err)
		return
	}
	if !p.changes() {
		writeError(w, r, tally.Errorf(tally.EINVALID, "nothing to change: name at least one member of the reward"))
		return
	}
	if p.ID.set && (p.ID.null || p.ID.v != id) {
		writeError(w, r, tally.Errorf(tally.EINVALID, "reward_id in the body differs from the path"))
		return
	}
	rw, err := s.Store.UpdateReward(r.Context(), id, p.apply)
	if err != nil {
		writeError(w, r, err)
		return
	}
	logChange(r, "update", "reward_id", id, "active", rw.Active)
	writeJSON(w, http.StatusOK, rw)
}

// handleRewardInventory sets, adds to, or lifts a reward's stock.
func (s *Server) handleRewardInventory(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := tally.CheckText("reward_id", id); err != nil {
		writeError(w, r, err)
		return
	}
	body, err := readJSON(w, r, s.opts.BodyLimit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var req struct {
		Set       *int64 `json:"set"`
		Add       *int64 `json:"add"`
		Unlimited *bool  `json:"unlimited"`
	}
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, r, err)
		return
	}
	given := 0
	for _, g := range []bool{req.Set != nil, req.Add != nil, req.Unlimited != nil} {
		if g {
			given++
		}
	}
	var rw tally.Reward
	switch {
	case given != 1:
		err = tally.Errorf(tally.EINVALID, `give exactly one of "set" (units left), "add" (units to add, negative to remove) or "unlimited": true`)
	case req.Unlimited != nil && !*req.Unlimited:
		err = tally.Errorf(tally.EINVALID, `"unlimited" must be true: to limit the stock, "set" a number of units`)
	case req.Unlimited != nil:
		rw, err = s.Store.SetInventory(r.Context(), id, nil)
	case req.Set != nil:
		rw, err = s.Store.SetInventory(r.Context(), id, req.Set)
	case *req.Add == 0:
		err = tally.Errorf(tally.EINVALID, `"add" must not be zero`)
	default:
		rw, err = s.Store.AddStock(r.Context(), id, *req.Add)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	logChange(r, "stock", "reward_id", id, "body", string(body), "stock", stockText(rw))
	writeJSON(w, http.StatusOK, rw)
}

// stockText is a reward's stock for a log line.
func stockText(rw tally.Reward) string {
	if rw.Inventory == nil {
		return "unlimited"
	}
	return strconv.FormatInt(*rw.Inventory, 10)
}

// handleAddCoupons uploads coupon codes to a coupon reward.
func (s *Server) handleAddCoupons(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := tally.CheckText("reward_id", id); err != nil {
		writeError(w, r, err)
		return
	}
	body, err := readJSON(w, r, max(s.opts.BodyLimit, couponBodyLimit))
	if err != nil {
		writeError(w, r, err)
		return
	}
	var req struct {
		Codes []string `json:"codes"`
	}
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, r, err)
		return
	}
	up, err := s.Store.AddCoupons(r.Context(), id, req.Codes)
	if err != nil {
		writeError(w, r, err)
		return
	}
	logChange(r, "coupons", "reward_id", id, "added", up.Added, "skipped", up.Skipped)
	writeJSON(w, http.StatusOK, struct {
		RewardID string `json:"reward_id"`
		tally.CouponUpload
	}{id, up})
}

// adminRedemption is how a redemption is shown to an administrator: the customer as a prefixed hash,
// and the state of its delivery.
type adminRedemption struct {
	ReceiptID     string     `json:"receipt_id"`
	TransactionID int64      `json:"transaction_id"`
	CustomerHash  string     `json:"customer_hash"`
	RewardID      string     `json:"reward_id"`
	Points        int64      `json:"points_debited"`
	Method        string     `json:"method"`
	Status        string     `json:"status"`
	CouponCode    string     `json:"coupon_code,omitempty"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"` // while pending
	LastError     string     `json:"last_error,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

func adminRedemptionOf(rd tally.Redemption) adminRedemption {
	v := adminRedemption{ReceiptID: rd.ReceiptID, TransactionID: rd.TxSeq, CustomerHash: publicHash(rd.AccountID),
		RewardID: rd.RewardID, Points: rd.Points, Method: rd.Method, Status: rd.Status, CouponCode: rd.CouponCode,
		Attempts: rd.Attempts, LastError: rd.LastError, CreatedAt: rd.CreatedAt, UpdatedAt: rd.UpdatedAt}
	if rd.Status == tally.FulfillmentPending {
		next := rd.NextAttemptAt
		v.NextAttemptAt = &next
	}
	return v
}

// defaultRedemptionPage is the page size when the caller names none.
const defaultRedemptionPage = 50

// handleAdminRedemptions lists redemptions, newest first, by status and reward, a page at a time:
// ?status=dead lists the dead letters.
func (s *Server) handleAdminRedemptions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := tally.RedemptionFilter{Status: q.Get("status"), RewardID: q.Get("reward_id"), Limit: defaultRedemptionPage}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil {
			writeError(w, r, tally.Errorf(tally.EINVALID, "limit must be a whole number between 1 and %d", tally.MaxRedemptionPage))
			return
		}
		f.Limit = n
	}
	if c := q.Get("cursor"); c != "" {
		after, err := tally.ParseRedemptionCursor(c)
		if err != nil {
			writeError(w, r, err)
			return
		}
		f.After = &after
	}
	if err := f.Check(); err != nil {
		writeError(w, r, err)
		return
	}
	rs, err := s.Store.Redemptions(r.Context(), f)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := struct {
		Redemptions []adminRedemption `json:"redemptions"`
		NextCursor  string            `json:"next_cursor,omitempty"`
	}{Redemptions: make([]adminRedemption, 0, len(rs))}
	for _, rd := range rs {
		out.Redemptions = append(out.Redemptions, adminRedemptionOf(rd))
	}
	if len(rs) == f.Limit {
		out.NextCursor = tally.CursorOf(rs[len(rs)-1]).Encode()
	}
	writeJSON(w, http.StatusOK, out)
}

// handleRetryRedemption puts a dead letter back in the fulfillment queue, due now.
func (s *Server) handleRetryRedemption(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("receipt_id")
	if err := tally.CheckText("receipt_id", id); err != nil {
		writeError(w, r, err)
		return
	}
	rd, err := s.Store.RetryRedemption(r.Context(), id, time.Now().UTC())
	if err != nil {
		writeError(w, r, err)
		return
	}
	logChange(r, "retry", "receipt_id", rd.ReceiptID, "reward_id", rd.RewardID)
	writeJSON(w, http.StatusOK, adminRedemptionOf(rd))
}

// PublicHash is how the API shows a customer hash (th_...), for tools that show customers alike.
func PublicHash(h string) string { return publicHash(h) }
