package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/balancecache"
	"github.com/tally-ledger/tally/earning"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/strictjson"
)

// writeResponse is the body of every answer of transaction/process. It is rendered only from the stored
// receipt and the request's idempotency key, so a replay renders the same bytes as the first answer.
type writeResponse struct {
	Status         string     `json:"status"` // applied, ignored, or queued (202: kept in the spool)
	EventID        string     `json:"event_id,omitempty"`
	IdempotencyKey string     `json:"idempotency_key,omitempty"`
	Channel        string     `json:"channel"`
	TransactionID  int64      `json:"transaction_id,omitempty"`
	Kind           tally.Kind `json:"kind,omitempty"`
	CustomerHash   string     `json:"customer_hash,omitempty"`
	Amount         int64      `json:"amount,omitempty"`
	Balance        *int64     `json:"balance,omitempty"`
	PendingPoints  int64      `json:"pending_points,omitempty"`
	BalanceVersion *int64     `json:"balance_version,omitempty"`
	Reason         string     `json:"reason,omitempty"`
	CreatedAt      *time.Time `json:"created_at,omitempty"`
	Hash           string     `json:"hash,omitempty"`
	// Receipt is the receipt of a redemption that named a reward (its coupon code included).
	Receipt *writeReceipt `json:"receipt,omitempty"`
	// Rules are the earning rules (versions) that paid an event's accrual, and what each paid.
	Rules []tally.AccrualRule `json:"rules,omitempty"`
	// Tier is the tier the accrual raised the customer to, when it did.
	Tier string `json:"tier_upgrade,omitempty"`
}

// writeReceipt is what an explicit redemption of a reward answers of its receipt.
type writeReceipt struct {
	ReceiptID   string             `json:"receipt_id"`
	RewardID    string             `json:"reward_id"`
	Fulfillment receiptFulfillment `json:"fulfillment"`
}

// handleProcess takes an event (which earns points when an earning rule matches it) or, from a trusted
// client, an explicit transaction. The first delivery of a key answers 201 (200 for an event that earned
// nothing); every later delivery answers 200 with the same body.
func (s *Server) handleProcess(w http.ResponseWriter, r *http.Request) {
	body, rep, err := readBody(w, r, s.opts.BodyLimit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	// Only the presence of idempotency_key is read here: decoding into a struct with one field skips the
	// rest without building it.
	var probe struct {
		Key json.RawMessage `json:"idempotency_key"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		writeError(w, r, tally.Errorf(tally.EINVALID, "the body must be a JSON object"))
		return
	}
	if probe.Key != nil {
		if err := checkTallyBody(rep); err != nil {
			writeError(w, r, err)
			return
		}
		if isRedeemBody(body) {
			s.processRedeem(w, r, body)
			return
		}
		s.processTransaction(w, r, body)
		return
	}
	s.processEvent(w, r, body, rep)
}

// processEvent turns an event into an accrual, or into a remembered "ignored".
func (s *Server) processEvent(w http.ResponseWriter, r *http.Request, body []byte, rep strictjson.Report) {
	ev, req, err := s.eventRequest(r.Context(), body, rep, time.Time{})
	if err != nil {
		writeError(w, r, err)
		return
	}
	if s.spoolFirst(req) {
		s.spoolWrite(w, r, body, req, nil)
		return
	}
	rc, err := s.write(r.Context(), req)
	if err != nil {
		if s.spoolable(r, req, err) {
			s.spoolWrite(w, r, body, req, err)
			return
		}
		writeError(w, r, err)
		return
	}
	s.wantMirror(r.Context(), ev, rc)
	resp := render(rc, req)
	resp.EventID, resp.IdempotencyKey, resp.Channel = ev.ID, "", ev.Channel
	s.answerWrite(w, rc, resp)
}

// eventRequest builds the ledger request of an event: the one code path of a live event and of a
// spooled one replayed, so that both make the same request and idempotency decides between them.
// received is when a spooled event arrived (zero for a live one): the rules in force then decide it.
func (s *Server) eventRequest(ctx context.Context, body []byte, rep strictjson.Report, received time.Time) (earning.Event, ledger.Request, error) {
	ev, err := earning.ParseEvent(body)
	if err != nil {
		return ev, ledger.Request{}, err
	}
	if err := checkEventBody(ev.Shape, rep); err != nil {
		return ev, ledger.Request{}, err
	}
	var hash string
	if ev.Customer != "" {
		if hash, err = s.customerHash(ev.Customer); err != nil {
			return ev, ledger.Request{}, err
		}
	}
	// Events have idempotency channels of their own, apart from explicit transactions' (the ledger keeps
	// them apart): an event whose channel is "api" cannot replay or block an explicit transaction's key.
	req := ledger.Request{Kind: ledger.KindNone, Event: true, Channel: ev.Channel, Key: ev.ID, Identity: eventIdentity(hash)}
	earns, err := s.Earning.EarnsAt(ctx, ev.Fields, received)
	if err != nil {
		// The rules cannot be read (the store is down and this replica has none yet): an event that names
		// a customer goes to the ledger, which decides what it earns (or the spool keeps it meanwhile).
		if hash == "" {
			return ev, ledger.Request{}, err
		}
		earns = true
	}
	if earns {
		if hash == "" {
			return ev, ledger.Request{}, tally.Errorf(tally.EINVALID, "the event earns points but names no customer (user_id, customer_hash or externalContactId)")
		}
		// The ledger computes the amount (rules, tier multiplier, caps) under the customer's lock.
		req.Kind, req.Account, req.Earn, req.EarnAt = tally.KindAccrual, hash, ev.Fields, received
	}
	return ev, req, nil
}

// checkEventBody refuses what an event's shape makes dangerous. The integration guide's webhook event is
// a shape Tally defines (checkTallyBody, but for case: its members are read from a map, by exact name).
// The bodies Genesys Cloud and EventBridge write are theirs: a repeat is refused in the objects Tally
// reads members of by name (the event, detail and detail.eventBody: the customer, the conversation, and
// the fields earning rules usually filter on), where the first and last values could name different
// customers or conversations; deeper objects (participants, attributes) are Genesys's to shape, passed
// over, and tolerated, so that an event is not lost to a quirk of a serializer Tally does not control.
// Their strings may hold escaped NULs where Tally does not read them; the fields it reads are checked one
// by one (earning.ParseEvent).
func checkEventBody(shape string, rep strictjson.Report) error {
	if shape == earning.ShapeGuide {
		if err := refuseDuplicates(rep, false, everywhere); err != nil {
			return err
		}
		return refuseNULs(rep)
	}
	return refuseDuplicates(rep, false, func(parent string) bool {
		return parent == "" || parent == "/detail" || parent == "/detail/eventBody"
	})
}

// eventIdentity is what makes two deliveries of an event the same request: the event key and the
// customer it names, whatever rule matched (rules may change between deliveries).
func eventIdentity(customerHash string) string {
	sum := sha256.Sum256([]byte("event-customer:" + customerHash))
	return "event:" + hex.EncodeToString(sum[:16])
}

type transactionRequest struct {
	IdempotencyKey        string          `json:"idempotency_key"`
	Channel               string          `json:"channel"`
	CustomerHash          string          `json:"customer_hash"`
	Kind                  tally.Kind      `json:"kind"`
	Amount                int64           `json:"amount"`
	Reason                string          `json:"reason"`
	Actor                 string          `json:"actor"`
	Metadata              json.RawMessage `json:"metadata"`
	ReversesTransactionID int64           `json:"reverses_transaction_id"`
	BalanceVersion        *int64          `json:"balance_version"`
	RewardID              string          `json:"reward_id"`
	PendingUntil          *time.Time      `json:"pending_until"`
	ExpiresAt             *time.Time      `json:"expires_at"`
}

// adminKinds are the kinds only a client with the admin scope may write.
var adminKinds = map[tally.Kind]bool{tally.KindAdjustment: true, tally.KindReversal: true}

func (s *Server) processTransaction(w http.ResponseWriter, r *http.Request, body []byte) {
	tr, err := decodeTransaction(body)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if adminKinds[tr.Kind] && !requireScope(w, r, tally.ScopeAdmin) {
		return
	}
	req, err := s.transactionRequest(tr, principal(r).ClientID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if s.spoolFirst(req) {
		s.spoolWrite(w, r, body, req, nil)
		return
	}
	rc, err := s.write(r.Context(), req)
	if err != nil {
		if s.spoolable(r, req, err) {
			s.spoolWrite(w, r, body, req, err)
			return
		}
		writeError(w, r, err)
		return
	}
	s.answerWrite(w, rc, render(rc, req))
}

// decodeTransaction decodes an explicit transaction's body.
func decodeTransaction(body []byte) (transactionRequest, error) {
	var tr transactionRequest
	if err := decodeStrict(body, &tr); err != nil {
		return tr, err
	}
	if !tr.Kind.Valid() {
		return tr, tally.Errorf(tally.EINVALID, "kind must be one of accrual, redemption, expiry, adjustment, reversal")
	}
	return tr, nil
}

// transactionRequest builds the ledger request of an explicit transaction sent by client: the one code
// path of a live transaction and of a spooled one replayed.
func (s *Server) transactionRequest(tr transactionRequest, client string) (ledger.Request, error) {
	req := ledger.Request{
		Kind: tr.Kind, Channel: tr.Channel, Key: tr.IdempotencyKey, Amount: tr.Amount, Reason: tr.Reason,
		Actor: tr.Actor, Metadata: tr.Metadata, ReversesSeq: tr.ReversesTransactionID, ExpectedVersion: tr.BalanceVersion,
		RewardID: tr.RewardID, PendingUntil: tr.PendingUntil, ExpiresAt: tr.ExpiresAt,
	}
	if req.Actor == "" && adminKinds[tr.Kind] {
		req.Actor = "client:" + client
	}
	if tr.Kind != tally.KindReversal {
		hash, err := s.customerHash(tr.CustomerHash)
		if err != nil {
			return req, err
		}
		req.Account = hash
	} else if tr.CustomerHash != "" {
		return req, tally.Errorf(tally.EINVALID, "a reversal takes its customer from the reversed transaction: omit customer_hash")
	}
	return req, nil
}

// write applies a ledger write within the write deadline.
func (s *Server) write(parent context.Context, req ledger.Request) (ledger.Receipt, error) {
	if err := s.spoolConflict(req); err != nil {
		return ledger.Receipt{}, err
	}
	ctx, cancel := context.WithTimeout(parent, s.opts.WriteDeadline)
	defer cancel()
	rc, err := s.Ledger.Write(ctx, req)
	if err == nil && rc.Transaction.Seq != 0 && !rc.Replayed {
		t := rc.Transaction
		if s.Cache != nil {
			// The ledger read the tier under the account lock for accruals and tier-gated redemptions:
			// only other writes cost a read of it here.
			tier, terr := rc.Tier, error(nil)
			if tier == "" {
				tier, terr = s.Earning.Tier(parent, t.AccountID)
			}
			if terr == nil {
				s.remember(parent, balancecache.Entry{CustomerHash: t.AccountID, Balance: rc.Balance, BalanceVersion: rc.BalanceVersion,
					Tier: tier, AsOf: t.CreatedAt})
			}
		}
		if s.Mirror != nil {
			// Any write of a mirrored customer (an adjustment, a redemption, a reversal) moves the balance
			// Genesys shows, not only the events that first named the contact.
			if merr := s.Mirror.Refresh(parent, t.AccountID, rc.BalanceVersion); merr != nil {
				s.log.Warn("genesys mirror: refresh", "err", merr)
			}
		}
	}
	return rc, err
}

// render builds the answer of a write from its receipt.
func render(rc ledger.Receipt, req ledger.Request) writeResponse {
	channel := req.Channel
	if channel == "" {
		channel = ledger.DefaultChannel
	}
	resp := writeResponse{Status: "ignored", IdempotencyKey: req.Key, Channel: channel}
	t := rc.Transaction
	if t.Seq == 0 {
		return resp
	}
	created := t.CreatedAt
	resp.Status, resp.TransactionID, resp.Kind, resp.CustomerHash = "applied", t.Seq, t.Kind, publicHash(t.AccountID)
	resp.Amount, resp.Balance, resp.BalanceVersion, resp.PendingPoints = t.Amount, &rc.Balance, &rc.BalanceVersion, rc.Pending
	resp.Reason, resp.CreatedAt, resp.Hash = t.Reason, &created, t.Hash
	resp.Rules = rc.Rules
	if rc.TierChange != nil {
		resp.Tier = rc.TierChange.To
	}
	if red := rc.Redemption; red != nil {
		resp.Receipt = &writeReceipt{ReceiptID: red.ReceiptID, RewardID: red.RewardID,
			Fulfillment: receiptFulfillment{Method: red.Method, Status: red.Status, CouponCode: red.CouponCode}}
	}
	return resp
}

func (s *Server) answerWrite(w http.ResponseWriter, rc ledger.Receipt, resp writeResponse) {
	status := http.StatusOK
	if !rc.Replayed && rc.Transaction.Seq != 0 {
		status = http.StatusCreated
	}
	writeJSON(w, status, resp)
}
