package api

import (
	"net/http"

	"github.com/tally-ledger/tally"
)

// receiptView is a receipt as its owner sees it later: the redemption's answer, with its fulfillment's
// current status.
type receiptView struct {
	ReceiptID     string `json:"receipt_id"`
	TransactionID int64  `json:"transaction_id"`
	RewardID      string `json:"reward_id"`
	PointsDebited int64  `json:"points_debited"`
	// BalanceAfter is the balance right after the redemption, from its remembered answer; left out in
	// the unlikely case that answer is no longer kept.
	BalanceAfter *int64             `json:"balance_after,omitempty"`
	Fulfillment  receiptFulfillment `json:"fulfillment"`
	CreatedAt    string             `json:"created_at"`
	UpdatedAt    string             `json:"updated_at"`
}

// handlePortalReceipt shows a receipt to the session's customer. Anyone else, and a receipt that does
// not exist, get the same 404: a receipt's existence is no one else's business.
func (s *Server) handlePortalReceipt(w http.ResponseWriter, r *http.Request) {
	hash, ok := s.sessionCustomer(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	notFound := tally.Errorf(tally.ENOTFOUND, "no receipt %q for this customer", id)
	if err := tally.CheckText("receipt id", id); err != nil || len(id) > 100 {
		writeError(w, r, notFound)
		return
	}
	red, err := s.Store.Redemption(r.Context(), id)
	if tally.ErrorCode(err) == tally.ENOTFOUND || err == nil && red.AccountID != hash {
		writeError(w, r, notFound)
		return
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := receiptView{
		ReceiptID: red.ReceiptID, TransactionID: red.TxSeq, RewardID: red.RewardID, PointsDebited: red.Points,
		Fulfillment: receiptFulfillment{Method: red.Method, Status: red.Status, CouponCode: red.CouponCode},
		CreatedAt:   red.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		UpdatedAt:   red.UpdatedAt.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
	}
	if tx, err := s.Store.Transaction(r.Context(), red.TxSeq); err == nil {
		if rc, err := s.Ledger.Outcome(r.Context(), tx.Channel, tx.IdempotencyKey); err == nil {
			out.BalanceAfter = &rc.Balance
		}
	}
	writeJSON(w, http.StatusOK, out)
}
