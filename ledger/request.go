package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tally-ledger/tally"
)

// DefaultChannel is the idempotency namespace of writes that name none.
const DefaultChannel = "api"

// Limits on request fields, so that one oversized request cannot fail a whole batch in the database.
const (
	maxKeyLen      = 200
	maxChannelLen  = 64
	maxReasonLen   = 500
	maxActorLen    = 200
	maxMetadataLen = 4096
)

// Request is one ledger write. Every write carries an idempotency key, unique within its channel.
type Request struct {
	Kind tally.Kind
	// Channel is the idempotency namespace of an explicit write: a plain token of letters, digits, '.',
	// '_' and '-' (DefaultChannel when empty). For an event (Event set) it is the event's source, and the
	// namespace is tally.EventChannelPrefix followed by it: no explicit channel can name it.
	Channel string
	// Event marks a write made for an incoming event rather than asked for explicitly.
	Event bool
	// Internal marks a write Tally makes itself (a portal redemption, a fulfillment refund): only such
	// writes may use the ReservedChannels, so that no caller of the API can claim, replay or block their
	// keys.
	Internal bool
	Key      string // idempotency key
	Account  string // the customer hash (for a reversal: empty, taken from the reversed transaction)
	// Amount is the number of points: positive for every kind but adjustments, where a positive amount
	// credits the customer and a negative one debits. Reversals take theirs from the reversed transaction.
	Amount      int64
	Reason      string
	Actor       string
	Metadata    json.RawMessage // a JSON object, stored compacted; hashed byte for byte
	ReversesSeq int64           // reversals only
	// ExpectedVersion, when set, is the balance_version the caller last saw; a different current version
	// fails the write with EVERSION. It is not part of the request's identity: a caller that re-reads and
	// retries with the same key and a fresh version is retrying the same request.
	ExpectedVersion *int64
	// Identity, when set, stands for the request's content in the idempotency check: a replay of the key
	// with the same Identity replays the first answer whatever else differs. Events use it, so that a
	// redelivered event replays even if the earning rules changed in between.
	Identity string
	// RewardID, for a redemption, names the reward redeemed. The customer is charged the reward's cost
	// at the moment of the decision, never a number of the caller's: Amount, when not zero, is the cost
	// the caller expects, and a different current cost fails the write with ECOSTCHANGED (not
	// remembered, so that the caller may retry with the same key and the new cost). The decision also
	// checks the reward is active, the customer's tier reaches it and a unit (or coupon code) is left,
	// takes that unit, and records the redemption for fulfillment, in the same transaction.
	RewardID string
	// PendingUntil, for a credit (an accrual or a positive adjustment), holds its points pending until
	// then: they count in the balance but are not spendable until their lot is activated. A time not
	// after the write's is ignored.
	PendingUntil *time.Time
	// ExpiresAt, for a credit, is when its points expire, instead of the programme's expiry policy.
	ExpiresAt *time.Time
	// Lapsed, for an expiry Tally makes itself (Internal), expires whatever remains of the account's lots
	// that have lapsed when the write is decided; Amount is then 0. Nothing lapsed: no transaction.
	Lapsed bool
	// LapsedLots, when set with Lapsed, limits the expiry to these lots (those of them still open and
	// lapsed when it is decided), so that the job expires an account with many lapsed lots in several
	// small transactions.
	LapsedLots []int64
	// Earn, on an accrual, asks for its amount to be computed from these event fields by the earning
	// rules (Options.Earner) inside the locked decision, where caps and the customer's tier are read; the
	// transaction's reason names the paying rules. Amount must then be 0 and Identity set: a redelivered
	// event replays its first answer even if the rules changed in between.
	Earn map[string]any
	// EarnAt, when set, is when the request arrived, if it is decided later (a spooled accrual replayed
	// after an outage): the earning rules' campaign windows and cap periods, and the expiry of the
	// credit's lot, count from it rather than from the decision. Zero (a live request) is the decision's
	// time, and so is a time after it. It is not part of the request's identity: a request replayed
	// from the spool is the same request as the live one.
	EarnAt time.Time
}

// KindNone records an answer under an idempotency key without moving points: an event that earned
// nothing is remembered, so that its redeliveries are answered the same.
const KindNone tally.Kind = "none"

// Validate reports whether Write would refuse r as bad input, without writing anything: what a caller
// that keeps r to write later (the accrual spool) checks before it acknowledges r.
func (r Request) Validate() error { return r.normalize() }

// normalize validates r and puts it in the form that is stored and hashed.
func (r *Request) normalize() error {
	if err := r.normalizeChannel(); err != nil {
		return err
	}
	if !r.Kind.Valid() && r.Kind != KindNone {
		return tally.Errorf(tally.EINVALID, "unknown transaction kind %q", r.Kind)
	}
	if err := checkText("idempotency key", r.Key, maxKeyLen, true); err != nil {
		return err
	}
	if err := checkText("reason", r.Reason, maxReasonLen, false); err != nil {
		return err
	}
	if err := checkText("actor", r.Actor, maxActorLen, false); err != nil {
		return err
	}
	if err := checkText("identity", r.Identity, maxKeyLen, false); err != nil {
		return err
	}
	switch r.Kind {
	case KindNone:
		if r.Amount != 0 || r.ReversesSeq != 0 {
			return tally.Errorf(tally.EINVALID, "a record moves no points")
		}
	case tally.KindReversal:
		if r.ReversesSeq <= 0 {
			return tally.Errorf(tally.EINVALID, "a reversal must name the transaction it reverses")
		}
		if r.Amount != 0 || r.Account != "" {
			return tally.Errorf(tally.EINVALID, "a reversal takes its account and amount from the reversed transaction")
		}
		if r.Reason == "" {
			return tally.Errorf(tally.EINVALID, "a reversal needs a reason")
		}
	default:
		if r.ReversesSeq != 0 {
			return tally.Errorf(tally.EINVALID, "only a reversal names a transaction to reverse")
		}
		if !tally.IsCustomerHash(r.Account) {
			return tally.Errorf(tally.EINVALID, "account must be a customer hash (64 lowercase hex digits)")
		}
		if r.Earn != nil {
			if r.Kind != tally.KindAccrual || r.Amount != 0 || r.Identity == "" {
				return tally.Errorf(tally.EINVALID, "only an accrual without an amount, with an identity, is earned by the rules")
			}
		} else if (r.RewardID == "" || r.Amount != 0) && !r.Lapsed {
			if err := checkAmount(r.Kind, r.Amount); err != nil {
				return err
			}
		}
	}
	if r.RewardID != "" {
		if r.Kind != tally.KindRedemption {
			return tally.Errorf(tally.EINVALID, "only a redemption names a reward")
		}
		if err := checkText("reward_id", r.RewardID, maxKeyLen, true); err != nil {
			return err
		}
	}
	if err := r.normalizeLot(); err != nil {
		return err
	}
	if r.Kind == tally.KindAdjustment && (r.Reason == "" || r.Actor == "") {
		return tally.Errorf(tally.EINVALID, "an adjustment needs a reason and an actor")
	}
	if r.ExpectedVersion != nil && *r.ExpectedVersion < 0 {
		return tally.Errorf(tally.EINVALID, "balance_version must not be negative")
	}
	return r.normalizeMetadata()
}

// normalizeChannel sets the channel the write is stored under. The two namespaces are kept apart here,
// in the ledger, so that every entry point gets the separation: an explicit channel that could spell an
// event's ("event:genesys", " EVENT:genesys", a lookalike colon) is refused, not stored.
func (r *Request) normalizeChannel() error {
	if r.Event {
		if err := checkText("event channel", r.Channel, maxChannelLen-len(tally.EventChannelPrefix), true); err != nil {
			return err
		}
		r.Channel = tally.EventChannelPrefix + r.Channel
		return nil
	}
	if r.Channel == "" {
		r.Channel = DefaultChannel
	}
	if len(r.Channel) > maxChannelLen || !isToken(r.Channel) {
		return tally.Errorf(tally.EINVALID, "channel must be at most %d letters, digits, '.', '_' or '-'", maxChannelLen)
	}
	if !r.Internal && ReservedChannels[strings.ToLower(r.Channel)] {
		return tally.Errorf(tally.EINVALID, "channel %q is reserved for Tally's own writes", r.Channel)
	}
	return nil
}

// ReservedChannels are the idempotency channels of the writes Tally makes itself, refused (in any case)
// to every other write.
var ReservedChannels = map[string]bool{"portal": true, "fulfillment": true, ExpiryChannel: true, "import": true}

// isToken reports whether s is made of ASCII letters, digits, '.', '_' and '-' only.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func checkAmount(kind tally.Kind, amount int64) error {
	if kind == tally.KindAdjustment {
		if amount == 0 {
			return tally.Errorf(tally.EINVALID, "an adjustment amount must not be zero")
		}
		if amount > tally.MaxAmount || amount < -tally.MaxAmount {
			return tally.Errorf(tally.EINVALID, "amount must be within ±%d", tally.MaxAmount)
		}
		return nil
	}
	if amount <= 0 {
		return tally.Errorf(tally.EINVALID, "amount must be positive")
	}
	if amount > tally.MaxAmount {
		return tally.Errorf(tally.EINVALID, "amount must be at most %d", tally.MaxAmount)
	}
	return nil
}

func checkText(name, s string, max int, required bool) error {
	if required && s == "" {
		return tally.Errorf(tally.EINVALID, "%s is required", name)
	}
	if len(s) > max {
		return tally.Errorf(tally.EINVALID, "%s is longer than %d bytes", name, max)
	}
	if !utf8.ValidString(s) {
		return tally.Errorf(tally.EINVALID, "%s is not valid UTF-8", name)
	}
	for _, c := range s {
		if c == 0 {
			return tally.Errorf(tally.EINVALID, "%s contains a NUL character", name)
		}
	}
	return nil
}

func (r *Request) normalizeMetadata() error {
	if len(r.Metadata) == 0 || string(r.Metadata) == "null" {
		r.Metadata = nil
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(r.Metadata, &obj); err != nil {
		return tally.Errorf(tally.EINVALID, "metadata must be a JSON object")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, r.Metadata); err != nil {
		return tally.Errorf(tally.EINVALID, "metadata must be a JSON object")
	}
	if buf.Len() > maxMetadataLen {
		return tally.Errorf(tally.EINVALID, "metadata is longer than %d bytes", maxMetadataLen)
	}
	if !utf8.Valid(buf.Bytes()) || bytes.IndexByte(buf.Bytes(), 0) >= 0 {
		return tally.Errorf(tally.EINVALID, "metadata is not valid UTF-8")
	}
	if err := checkMetadata(buf.Bytes()); err != nil {
		return err
	}
	r.Metadata = buf.Bytes()
	return nil
}

// hash identifies what the request asks for, so that a replay of its key can be told apart from a
// different request reusing the key.
func (r *Request) hash() string {
	h := sha256.New()
	if r.Identity != "" {
		h.Write([]byte("tally-identity-v1\n" + r.Identity))
		return hex.EncodeToString(h.Sum(nil))
	}
	for _, f := range []string{
		"tally-req-v1", string(r.Kind), r.Account, strconv.FormatInt(r.Amount, 10), r.Reason, r.Actor,
		string(r.Metadata), strconv.FormatInt(r.ReversesSeq, 10),
	} {
		h.Write([]byte(strconv.Quote(f)))
		h.Write([]byte{'\n'})
	}
	// Only when set, so that the hashes of requests without a reward, remembered before rewards could be
	// redeemed, stay what they were.
	if r.RewardID != "" {
		h.Write([]byte("reward=" + strconv.Quote(r.RewardID) + "\n"))
	}
	// Likewise the lot attributes, so that hashes remembered before lots existed stay what they were.
	if r.PendingUntil != nil {
		h.Write([]byte("pending_until=" + r.PendingUntil.UTC().Format(time.RFC3339Nano) + "\n"))
	}
	if r.ExpiresAt != nil {
		h.Write([]byte("expires_at=" + r.ExpiresAt.UTC().Format(time.RFC3339Nano) + "\n"))
	}
	if r.Lapsed {
		h.Write([]byte("lapsed\n"))
	}
	if len(r.LapsedLots) > 0 {
		h.Write([]byte("lapsed_lots="))
		for _, s := range r.LapsedLots {
			h.Write([]byte(strconv.FormatInt(s, 10) + ","))
		}
		h.Write([]byte("\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (r *Request) outcomeKey() tally.OutcomeKey {
	return tally.OutcomeKey{Channel: r.Channel, Key: r.Key}
}

// normalizeLot checks the lot attributes: only credits carry them, and only Tally's own expiries expire
// what lapsed.
func (r *Request) normalizeLot() error {
	credit := r.Kind == tally.KindAccrual || r.Kind == tally.KindAdjustment && r.Amount > 0
	if (r.PendingUntil != nil || r.ExpiresAt != nil) && !credit {
		return tally.Errorf(tally.EINVALID, "only a credit (an accrual or a positive adjustment) may be pending or expire")
	}
	for name, t := range map[string]*time.Time{"pending_until": r.PendingUntil, "expires_at": r.ExpiresAt} {
		if t != nil && (t.Year() < 2000 || t.Year() > 9999) {
			return tally.Errorf(tally.EINVALID, "%s must be a time between the years 2000 and 9999", name)
		}
	}
	if r.PendingUntil != nil && r.ExpiresAt != nil && !r.ExpiresAt.After(*r.PendingUntil) {
		return tally.Errorf(tally.EINVALID, "expires_at must be after pending_until")
	}
	if (r.Lapsed || len(r.LapsedLots) > 0) && (r.Kind != tally.KindExpiry || !r.Internal || r.Amount != 0 || !r.Lapsed) {
		return tally.Errorf(tally.EINVALID, "only Tally's own expiry, of no set amount, expires lapsed lots")
	}
	return nil
}
