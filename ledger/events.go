package ledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"

	"github.com/tally-ledger/tally"
)

// EventBody is the JSON body of every event out (package webhooks delivers it): the same for every
// subscriber and every retry. CustomerHash is shown as the API shows it (th_...).
type EventBody struct {
	ID           string    `json:"id"`
	Type         string    `json:"type"`
	CreatedAt    time.Time `json:"created_at"`
	CustomerHash string    `json:"customer_hash,omitempty"`
	Data         any       `json:"data"`
}

// PointsData is the data of points.earned, points.redeemed and points.expired: the transaction that
// moved the points and the customer's balance right after it.
type PointsData struct {
	TransactionID int64  `json:"transaction_id"`
	Kind          string `json:"kind"`
	Points        int64  `json:"points"`
	Balance       int64  `json:"balance"`
	Channel       string `json:"channel"`
	Reason        string `json:"reason,omitempty"`
	RewardID      string `json:"reward_id,omitempty"`
	ReceiptID     string `json:"receipt_id,omitempty"`
}

// ExpiringData is the data of points.expiring_soon.
type ExpiringData struct {
	Points    int64     `json:"points"`
	ExpiresAt time.Time `json:"expires_at"`
	Days      int       `json:"days"` // how many days ahead the warning was asked for
}

// TierData is the data of tier.changed.
type TierData struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason,omitempty"`
}

// NewEvent builds an event with its body. id must be derived from the event's cause (so that writing it
// again writes nothing new), account is the customer hash ("" for none), seq the causing transaction (0
// for none).
func NewEvent(id, typ, account string, seq int64, at time.Time, data any) (tally.Event, error) {
	at = tally.LedgerTime(at)
	body := EventBody{ID: id, Type: typ, CreatedAt: at, Data: data}
	if account != "" {
		body.CustomerHash = "th_" + account
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return tally.Event{}, err
	}
	return tally.Event{ID: id, Type: typ, AccountID: account, TxSeq: seq, Payload: payload, CreatedAt: at}, nil
}

// transactionEventTypes are the events a transaction of each kind causes.
var transactionEventTypes = map[tally.Kind]string{
	tally.KindAccrual:    tally.EventPointsEarned,
	tally.KindRedemption: tally.EventPointsRedeemed,
	tally.KindExpiry:     tally.EventPointsExpired,
}

// TransactionEvent is the event a committed transaction causes, if any: points.earned for an accrual,
// points.redeemed for a redemption, points.expired for an expiry. Its id is "evt_" and the transaction
// number, so that it exists once per transaction.
func TransactionEvent(t *tally.Transaction, balance int64, redemption *tally.Redemption) (tally.Event, bool, error) {
	typ, ok := transactionEventTypes[t.Kind]
	if !ok {
		return tally.Event{}, false, nil
	}
	d := PointsData{TransactionID: t.Seq, Kind: string(t.Kind), Points: t.Amount, Balance: balance, Channel: t.Channel, Reason: t.Reason}
	if redemption != nil {
		d.RewardID, d.ReceiptID = redemption.RewardID, redemption.ReceiptID
	}
	e, err := NewEvent("evt_"+strconv.FormatInt(t.Seq, 10), typ, t.AccountID, t.Seq, t.CreatedAt, d)
	return e, err == nil, err
}

// ExpiringSoonEvent warns that points of a customer expire in days days. lot names what expires (the
// lot's seq, once lots exist), so that the job that emits warnings may run as often as it likes: each
// (lot, days) warning exists once.
func ExpiringSoonEvent(account string, lot int64, points int64, expiresAt time.Time, days int, now time.Time) (tally.Event, error) {
	// Not the account: an event id is never rewritten, and an erasure must leave nothing of the old id.
	id := "evt_expiring_" + strconv.FormatInt(lot, 10) + "_" + strconv.Itoa(days)
	e, err := NewEvent(id, tally.EventPointsExpiringSoon, account, 0, now, ExpiringData{Points: points, ExpiresAt: expiresAt.UTC(), Days: days})
	e.Days = days
	return e, err
}

// TierChangedEvent reports a tier change; change names it (the tier_changes row, or the transaction of
// an upgrade), so that it exists once.
func TierChangedEvent(account, change, from, to, reason string, at time.Time) (tally.Event, error) {
	return NewEvent("evt_tier_"+change, tally.EventTierChanged, account, 0, at, TierData{From: from, To: to, Reason: reason})
}

// writeEvents adds the events of the batch's transactions to the webhook outbox, in the batch's
// database transaction: an event exists if and only if its transaction committed.
func (b *batchRun) writeEvents(ctx context.Context) error {
	if b.eventsWanted == nil {
		b.eventsWanted = b.tx.EventsWanted(ctx)
	}
	if want, err := b.eventsWanted(); err != nil || !want {
		return err // nobody subscribes: the events are not built
	}
	var events []tally.Event
	for _, i := range b.fresh {
		t := b.txOf[i]
		if t == nil || b.results[i].err != nil {
			continue
		}
		e, ok, err := TransactionEvent(t, b.results[i].receipt.Balance, b.results[i].receipt.Redemption)
		if err != nil {
			return err
		}
		if ok {
			events = append(events, e)
		}
	}
	return b.tx.InsertEvents(ctx, events)
}

// EmitEvents writes events that no ledger write causes (the warnings of a job, points.expiring_soon) to
// the webhook outbox. Events written before (same id) are not written again.
func (s *Service) EmitEvents(ctx context.Context, events []tally.Event) error {
	return s.store.EmitEvents(ctx, events)
}

// tierChangeEvents are the tier.changed events of tier changes, written with them. An upgrade's event is
// named by the accrual that earned it; a review's by a random id, the review itself happening once per
// customer and period (never by the account: an event id is never rewritten by an erasure).
func tierChangeEvents(changes []tally.TierChange) ([]tally.Event, error) {
	var out []tally.Event
	for _, c := range changes {
		name := "up_" + strconv.FormatInt(c.Seq, 10)
		if c.Seq == 0 {
			b := make([]byte, 12)
			if _, err := rand.Read(b); err != nil {
				return nil, err
			}
			name = "review_" + hex.EncodeToString(b)
		}
		e, err := TierChangedEvent(c.AccountID, name, c.From, c.To, c.Reason, c.At)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// setTiers records tier changes and their events in one write transaction.
func setTiers(ctx context.Context, tx tally.WriteTx, tiers []tally.CustomerTier, changes []tally.TierChange) error {
	if err := tx.SetTiers(ctx, tiers, changes); err != nil {
		return err
	}
	events, err := tierChangeEvents(changes)
	if err != nil {
		return err
	}
	return tx.InsertEvents(ctx, events)
}
