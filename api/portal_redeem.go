package api

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// redeemRequest is the integration guide's redeem body.
type redeemRequest struct {
	CustomerHash      string `json:"customer_hash"`
	RewardID          string `json:"reward_id"`
	PointCost         *int64 `json:"point_cost"`
	FulfillmentMethod string `json:"fulfillment_method"`
	IdempotencyKey    string `json:"idempotency_key"`
}

// redeemReceipt is the answer to a redemption: rendered only from the stored receipt, so that a replay
// answers the same bytes.
type redeemReceipt struct {
	ReceiptID     string             `json:"receipt_id"`
	TransactionID int64              `json:"transaction_id"`
	RewardID      string             `json:"reward_id"`
	PointsDebited int64              `json:"points_debited"`
	BalanceAfter  int64              `json:"balance_after"`
	Fulfillment   receiptFulfillment `json:"fulfillment"`
	CreatedAt     string             `json:"created_at"`
}

type receiptFulfillment struct {
	Method     string `json:"method"`
	Status     string `json:"status"`
	CouponCode string `json:"coupon_code,omitempty"`
}

// portalChannel is the idempotency namespace of portal redemptions. Keys there are prefixed by the
// customer, so that one customer's key can never replay, or block, another's.
const portalChannel = "portal"

// handlePortalRedeem redeems a reward for the session's customer. The server decides everything: the
// cost (the body's point_cost must be the current one, and is never what is charged), the tier, the
// balance and the stock, in one ledger decision.
func (s *Server) handlePortalRedeem(w http.ResponseWriter, r *http.Request) {
	hash, ok := s.sessionCustomer(w, r)
	if !ok {
		return
	}
	body, rep, err := readBody(w, r, s.opts.BodyLimit)
	if err == nil {
		err = checkTallyBody(rep)
	}
	var in redeemRequest
	if err == nil {
		err = decodeStrict(body, &in)
	}
	if err == nil {
		err = in.validate()
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.namesSessionCustomer(in.CustomerHash, hash); err != nil {
		writeError(w, r, err)
		return
	}
	req := ledger.Request{
		Kind: tally.KindRedemption, Channel: portalChannel, Internal: true, Key: hash[:32] + "/" + in.IdempotencyKey, Account: hash,
		RewardID: in.RewardID, Amount: *in.PointCost, Reason: "portal redemption of " + in.RewardID, Actor: "customer",
	}
	s.answerRedeem(w, r, req, in.IdempotencyKey)
}

func (in *redeemRequest) validate() error {
	switch {
	case strings.TrimSpace(in.RewardID) == "":
		return tally.Errorf(tally.EINVALID, "reward_id is required")
	case in.PointCost == nil || *in.PointCost <= 0:
		return tally.Errorf(tally.EINVALID, "point_cost is required: the cost the customer was shown")
	case strings.TrimSpace(in.IdempotencyKey) == "":
		return tally.Errorf(tally.EINVALID, "idempotency_key is required")
	case len(in.IdempotencyKey) > 128:
		return tally.Errorf(tally.EINVALID, "idempotency_key is longer than 128 bytes")
	case in.FulfillmentMethod != "" && !tally.ValidMethod(in.FulfillmentMethod):
		return tally.Errorf(tally.EINVALID, "fulfillment_method must be one of webhook, email, coupon, manual")
	}
	return tally.CheckText("customer_hash", in.CustomerHash)
}

// answerRedeem applies a redemption and answers its receipt: 201 when applied now, 200 for a replay.
// Refusals the portal user acts on answer 409 (insufficient points, a changed cost, no stock).
func (s *Server) answerRedeem(w http.ResponseWriter, r *http.Request, req ledger.Request, key string) {
	rc, err := s.write(r.Context(), req)
	if err != nil {
		if tally.ErrorCode(err) == tally.EINSUFFICIENT {
			p := problemFor(err)
			p.Status, p.Instance, p.RequestID = http.StatusConflict, r.URL.Path, requestID(r.Context())
			writeProblem(w, p)
			return
		}
		writeError(w, r, err)
		return
	}
	red := rc.Redemption
	if red == nil { // a key first used for a redemption of no reward
		writeError(w, r, tally.Errorf(tally.EIDEMPOTENCY, "idempotency key %q was already used with a different request", key))
		return
	}
	out := redeemReceipt{
		ReceiptID: red.ReceiptID, TransactionID: red.TxSeq, RewardID: red.RewardID, PointsDebited: red.Points,
		BalanceAfter: rc.Balance, Fulfillment: receiptFulfillment{Method: red.Method, Status: red.Status, CouponCode: red.CouponCode},
		CreatedAt: red.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
	}
	status := http.StatusCreated
	if rc.Replayed {
		status = http.StatusOK
	}
	writeJSON(w, status, out)
}

// isRedeemBody reports whether an idempotent body of transaction/process is the guide's redeem body
// (which names a reward and a point_cost, and no kind) rather than an explicit transaction.
func isRedeemBody(body []byte) bool {
	var probe struct {
		Kind      json.RawMessage `json:"kind"`
		RewardID  json.RawMessage `json:"reward_id"`
		PointCost json.RawMessage `json:"point_cost"`
	}
	return json.Unmarshal(body, &probe) == nil && probe.Kind == nil && probe.RewardID != nil && probe.PointCost != nil
}

// processRedeem takes the guide's redeem body from an integration (an agent redeeming for a customer
// through a Data Action): the same decision as the portal's, for the customer the body names.
func (s *Server) processRedeem(w http.ResponseWriter, r *http.Request, body []byte) {
	var in redeemRequest
	err := decodeStrict(body, &in)
	if err == nil {
		err = in.validate()
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	hash, err := s.customerHash(in.CustomerHash)
	if err != nil {
		writeError(w, r, err)
		return
	}
	req := ledger.Request{
		Kind: tally.KindRedemption, Key: in.IdempotencyKey, Account: hash, RewardID: in.RewardID, Amount: *in.PointCost,
		Reason: "redemption of " + in.RewardID, Actor: "client:" + principal(r).ClientID,
	}
	s.answerRedeem(w, r, req, in.IdempotencyKey)
}
