package tally

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// CatalogStore is the administration of the reward catalog and of the redemptions' fulfillment, as a
// programme manager does it (over HTTP with the admin scope, or with the CLI on the database while
// servers run). Every method is one transaction of its own.
//
// A reward's stock is also taken by redemptions, which lock the reward's row (FOR UPDATE on PostgreSQL;
// SQLite has one writer) and write inventory back relative to what they locked. So no method here reads
// a stock in one statement and writes it back in another: each change of stock is one statement on the
// locked row, and UpdateReward rewrites the inventory it read under the same lock.
type CatalogStore interface {
	// CreateReward inserts a new reward, stamped now. ECONFLICT when the id is taken (PutReward would
	// replace it); EINVALID when it is out of range (cost, stock, text).
	CreateReward(ctx context.Context, r Reward) error
	// UpdateReward locks a reward, calls fn with it, and stores what fn left, in one transaction, so that
	// fields fn does not change (the stock above all) are not overwritten with a stale copy. The id and
	// creation time are kept whatever fn does; UpdatedAt becomes now. ENOTFOUND when there is no such
	// reward; fn's own error is returned as it is and nothing is written; EINVALID when the result is out
	// of range (cost, stock, text).
	UpdateReward(ctx context.Context, id string, fn func(*Reward) error) (Reward, error)
	// SetInventory sets the units left of a reward to n (nil: unlimited) in one statement, and returns
	// the reward. It overwrites whatever redemptions took meanwhile: it is for a stock counted anew.
	// ENOTFOUND when there is no such reward; EINVALID when n is negative.
	SetInventory(ctx context.Context, id string, n *int64) (Reward, error)
	// AddStock adds delta units (negative: removes) to a reward's limited stock in one statement, which
	// composes with concurrent redemptions, and returns the reward. ENOTFOUND when there is no such
	// reward; ECONFLICT when its stock is unlimited; EINVALID when fewer than -delta units are left.
	AddStock(ctx context.Context, id string, delta int64) (Reward, error)

	// AddCoupons adds coupon codes to a coupon reward in one transaction. A code the reward holds
	// already, or that the upload repeats, is skipped and counted, so that uploading a file again adds
	// nothing twice. ENOTFOUND when there is no such reward; ECONFLICT when the reward is not fulfilled by
	// coupon, or when a code belongs to another reward (two customers would get the same code); EINVALID
	// when a code is not a valid code (CheckCouponCode) or there are more than MaxCouponUpload. Nothing is
	// added on error.
	AddCoupons(ctx context.Context, rewardID string, codes []string) (CouponUpload, error)
	// CouponCounts returns, by reward, how many codes are free and how many assigned; rewards without
	// codes are left out.
	CouponCounts(ctx context.Context) (map[string]CouponCount, error)

	// Redemptions lists redemptions newest first (by CreatedAt, then ReceiptID), as the filter selects.
	Redemptions(ctx context.Context, f RedemptionFilter) ([]Redemption, error)
	// RetryRedemption puts a dead-lettered redemption back in the fulfillment queue: pending, no attempt
	// made, due now, no lease. ENOTFOUND when there is no such receipt; ECONFLICT when it is not dead
	// (delivered, refunded, or still being tried).
	RetryRedemption(ctx context.Context, receiptID string, now time.Time) (Redemption, error)
}

// Bounds of coupon uploads.
const (
	MaxCouponCode   = 128    // bytes of one code
	MaxCouponUpload = 100000 // codes in one upload
)

// CouponUpload is what AddCoupons did.
type CouponUpload struct {
	Added   int `json:"added"`
	Skipped int `json:"skipped"` // held by the reward already, or repeated in the upload
	Free    int `json:"free"`    // the reward's codes that no redemption holds, after the upload
}

// CouponCount counts a reward's coupon codes.
type CouponCount struct {
	Free     int `json:"free"`
	Assigned int `json:"assigned"`
}

// CheckCouponCode refuses, with EINVALID, a code a customer could not read back as uploaded: empty,
// longer than MaxCouponCode, text a store cannot keep (CheckText), with a control character, or with
// white space at either end (which a copy from an e-mail would lose).
func CheckCouponCode(code string) error {
	if err := CheckText("coupon code", code); err != nil {
		return err
	}
	switch {
	case code == "":
		return Errorf(EINVALID, "a coupon code is empty")
	case len(code) > MaxCouponCode:
		return Errorf(EINVALID, "coupon code %.20q... is longer than %d bytes", code, MaxCouponCode)
	case strings.TrimSpace(code) != code:
		return Errorf(EINVALID, "coupon code %q begins or ends with white space", code)
	case strings.IndexFunc(code, unicode.IsControl) >= 0:
		return Errorf(EINVALID, "coupon code %q contains a control character", code)
	}
	return nil
}

// CheckCouponCodes checks an upload's codes (CheckCouponCode, at most MaxCouponUpload of them).
func CheckCouponCodes(codes []string) error {
	if len(codes) == 0 {
		return Errorf(EINVALID, "no coupon codes to add")
	}
	if len(codes) > MaxCouponUpload {
		return Errorf(EINVALID, "%d coupon codes in one upload: at most %d", len(codes), MaxCouponUpload)
	}
	for _, c := range codes {
		if err := CheckCouponCode(c); err != nil {
			return err
		}
	}
	return nil
}

// RedemptionFilter selects redemptions to list.
type RedemptionFilter struct {
	Status   string            // one of the Fulfillment* states; "" for any
	RewardID string            // "" for any
	After    *RedemptionCursor // continue a listing after this redemption (older ones come next)
	Limit    int               // at most this many; 1 to MaxRedemptionPage
}

// MaxRedemptionPage bounds a page of Redemptions.
const MaxRedemptionPage = 500

// RedemptionCursor is the position of a redemption in a listing.
type RedemptionCursor struct {
	CreatedAt time.Time
	ReceiptID string
}

// ValidFulfillmentStatus reports whether s is a known fulfillment state.
func ValidFulfillmentStatus(s string) bool {
	switch s {
	case FulfillmentPending, FulfillmentDelivered, FulfillmentManual, FulfillmentDead, FulfillmentRefunded:
		return true
	}
	return false
}

// Check refuses a filter a store cannot run, with EINVALID.
func (f RedemptionFilter) Check() error {
	switch {
	case f.Status != "" && !ValidFulfillmentStatus(f.Status):
		return Errorf(EINVALID, "status must be one of pending, delivered, manual, dead, refunded")
	case f.Limit < 1 || f.Limit > MaxRedemptionPage:
		return Errorf(EINVALID, "limit must be between 1 and %d", MaxRedemptionPage)
	}
	if err := CheckText("reward_id", f.RewardID); err != nil {
		return err
	}
	if f.After != nil {
		return CheckText("cursor", f.After.ReceiptID)
	}
	return nil
}

// Validate refuses, with EINVALID naming the field, a reward the catalog must not hold. Both the API and
// the CLI check every reward they store with it.
func (r Reward) Validate() error {
	if err := r.CheckText(); err != nil {
		return err
	}
	switch {
	case r.ID == "" || len(r.ID) > 64 || strings.ContainsAny(r.ID, " /\\?#"):
		return Errorf(EINVALID, "reward_id must be 1-64 characters without spaces or slashes")
	case strings.TrimSpace(r.Name) == "" || len(r.Name) > 200:
		return Errorf(EINVALID, "name is required (at most 200 bytes)")
	case r.PointCost <= 0 || r.PointCost > MaxAmount:
		return Errorf(EINVALID, "point_cost must be between 1 and %d", MaxAmount)
	case r.Inventory != nil && *r.Inventory < 0:
		return Errorf(EINVALID, "inventory must not be negative (null for unlimited)")
	case r.FulfillmentMethod == "":
		return Errorf(EINVALID, "fulfillment_method is required")
	case !ValidMethod(r.FulfillmentMethod):
		return Errorf(EINVALID, "fulfillment_method must be one of webhook, email, coupon, manual")
	case r.FulfillmentMethod == MethodWebhook && !isHTTPURL(r.WebhookURL):
		return Errorf(EINVALID, "a webhook reward needs an http(s) webhook_url")
	case r.WebhookURL != "" && !isHTTPURL(r.WebhookURL):
		return Errorf(EINVALID, "webhook_url must be an http(s) URL")
	case len(r.Description) > 2000:
		return Errorf(EINVALID, "description is longer than 2000 bytes")
	case r.ImageURL != "" && (!isHTTPURL(r.ImageURL) || len(r.ImageURL) > 2048):
		return Errorf(EINVALID, "image_url must be an http(s) URL of at most 2048 bytes")
	}
	return nil
}

// CheckStockChange refuses adding delta units (negative: removing) to r's stock: ECONFLICT when the
// stock is unlimited, EINVALID when the result would be negative or above MaxAmount.
func (r Reward) CheckStockChange(delta int64) error {
	if r.Inventory == nil {
		return Errorf(ECONFLICT, "reward %q has unlimited stock: set a number of units first", r.ID)
	}
	if delta < -MaxAmount || delta > MaxAmount || *r.Inventory+delta > MaxAmount {
		return Errorf(EINVALID, "the stock of reward %q would exceed %d units", r.ID, MaxAmount)
	}
	if *r.Inventory+delta < 0 {
		return Errorf(EINVALID, "reward %q has %d units left: %d cannot be removed", r.ID, *r.Inventory, -delta)
	}
	return nil
}

func isHTTPURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}

// redemptionCursorPrefix marks a redemption listing's cursor, so that another listing's is refused.
const redemptionCursorPrefix = "rc:"

// Encode returns the cursor as an opaque URL-safe string.
func (c RedemptionCursor) Encode() string {
	raw := redemptionCursorPrefix + strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + ":" + c.ReceiptID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// CursorOf is the cursor that continues a listing after r.
func CursorOf(r Redemption) RedemptionCursor {
	return RedemptionCursor{CreatedAt: r.CreatedAt, ReceiptID: r.ReceiptID}
}

// ParseRedemptionCursor reads a cursor that Encode made. EINVALID when s is not one.
func ParseRedemptionCursor(s string) (RedemptionCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		if rest, ok := strings.CutPrefix(string(b), redemptionCursorPrefix); ok {
			at, id, ok := strings.Cut(rest, ":")
			us, err := strconv.ParseInt(at, 10, 64)
			if ok && err == nil && id != "" && CheckText("cursor", id) == nil {
				return RedemptionCursor{CreatedAt: time.UnixMicro(us).UTC(), ReceiptID: id}, nil
			}
		}
	}
	return RedemptionCursor{}, Errorf(EINVALID, "cursor is malformed")
}
