package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
)

// book is what the emulator was told: for each event and redemption it sent, what the server answered.
// The invariants compare it with what the ledger holds at the end.
type book struct {
	mu          sync.Mutex
	events      map[string]*eventEntry // by identity
	redemptions map[string]*redemptionEntry
	receipts    map[int64]*receipt // acknowledged redemptions by transaction id
	conflicts   []string           // answers that contradict each other (a duplicate counted twice)
	deliveries  int64              // event deliveries sent, duplicates included
	duplicates  int64              // of which duplicates
	refused     map[string]int64   // redemption refusals by problem code
}

// eventEntry is one unique event and its acknowledged outcome.
type eventEntry struct {
	conv    *conversation
	known   bool   // a 200 or 201 answered it
	applied bool   // status applied (it earned points)
	amount  int64  // what it earned, as the server said
	txID    int64  // its transaction, when applied
	created int    // 201 answers (more than one: counted twice)
	refusal string // a 4xx that is not a retryable status, when it was refused
}

// redemptionEntry is one redemption attempt (one idempotency key) and its outcome.
type redemptionEntry struct {
	customer, reward, key string
	cost                  int64
	portal                bool // from the portal (session token); else by an agent through transaction/process
	known                 bool
	txID                  int64 // when a receipt answered it
}

// receipt is an acknowledged redemption.
type receipt struct {
	customer, reward string
	points           int64
}

func newBook() *book {
	return &book{events: map[string]*eventEntry{}, redemptions: map[string]*redemptionEntry{}, receipts: map[int64]*receipt{}, refused: map[string]int64{}}
}

// addEvent registers a new event before its first delivery.
func (b *book) addEvent(c *conversation) *eventEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := &eventEntry{conv: c}
	b.events[c.identity()] = e
	return e
}

// delivered counts a delivery.
func (b *book) delivered(duplicate bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.deliveries++
	if duplicate {
		b.duplicates++
	}
}

// eventAnswer records the answer to one delivery of e.
func (b *book) eventAnswer(e *eventEntry, a answer) {
	if !a.known() {
		return
	}
	var body struct {
		Status        string `json:"status"`
		Amount        int64  `json:"amount"`
		TransactionID int64  `json:"transaction_id"`
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case a.status == http.StatusCreated || a.status == http.StatusOK:
		if json.Unmarshal(a.body, &body) != nil {
			b.conflicts = append(b.conflicts, fmt.Sprintf("event %s: unreadable answer %s", e.conv.identity(), a.body))
			return
		}
		if a.status == http.StatusCreated {
			e.created++
			if e.created == 2 {
				b.conflicts = append(b.conflicts, fmt.Sprintf("event %s was answered 201 twice", e.conv.identity()))
			}
		}
		applied := body.Status == "applied"
		if e.known && (applied != e.applied || body.TransactionID != e.txID || body.Amount != e.amount) {
			b.conflicts = append(b.conflicts, fmt.Sprintf("event %s: one delivery answered %s %d (transaction %d), another %s %d (transaction %d)",
				e.conv.identity(), status(e.applied), e.amount, e.txID, body.Status, body.Amount, body.TransactionID))
			return
		}
		e.known, e.applied, e.amount, e.txID = true, applied, body.Amount, body.TransactionID
		if !applied {
			e.amount, e.txID = 0, 0
		}
	case a.status >= 400 && a.status < 500 && a.status != http.StatusTooManyRequests && a.status != http.StatusUnauthorized:
		if !e.known {
			e.refusal = fmt.Sprintf("%d %s", a.status, a.body)
		}
	}
}

func status(applied bool) string {
	if applied {
		return "applied"
	}
	return "ignored"
}

// addRedemption registers a redemption before it is sent.
func (b *book) addRedemption(r *redemptionEntry) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.redemptions[r.key] = r
}

// redemptionAnswer records the answer to one sending of r.
func (b *book) redemptionAnswer(r *redemptionEntry, a answer) {
	if !a.known() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case a.status == http.StatusCreated || a.status == http.StatusOK:
		var rc struct {
			TransactionID int64  `json:"transaction_id"`
			RewardID      string `json:"reward_id"`
			PointsDebited int64  `json:"points_debited"`
		}
		if json.Unmarshal(a.body, &rc) != nil || rc.TransactionID == 0 {
			b.conflicts = append(b.conflicts, fmt.Sprintf("redemption %s: unreadable receipt %s", r.key, a.body))
			return
		}
		if r.known && r.txID != 0 && r.txID != rc.TransactionID {
			b.conflicts = append(b.conflicts, fmt.Sprintf("redemption %s: receipts for transactions %d and %d", r.key, r.txID, rc.TransactionID))
			return
		}
		if old := b.receipts[rc.TransactionID]; old != nil && (old.customer != r.customer || old.points != rc.PointsDebited) {
			b.conflicts = append(b.conflicts, fmt.Sprintf("transaction %d is the receipt of two different redemptions", rc.TransactionID))
		}
		r.known, r.txID = true, rc.TransactionID
		b.receipts[rc.TransactionID] = &receipt{customer: r.customer, reward: rc.RewardID, points: rc.PointsDebited}
	case a.status >= 400 && a.status < 500 && a.status != http.StatusTooManyRequests && a.status != http.StatusUnauthorized:
		var p struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(a.body, &p)
		if !r.known {
			r.known = true
			b.refused[fmt.Sprintf("%d %s", a.status, p.Code)]++
		}
	}
}

// unknownEvents are the events no delivery got an answer for.
func (b *book) unknownEvents() []*eventEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*eventEntry
	for _, e := range b.events {
		if !e.known && e.refusal == "" {
			out = append(out, e)
		}
	}
	return out
}

// unknownRedemptions are the redemptions no sending got an answer for.
func (b *book) unknownRedemptions() []*redemptionEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*redemptionEntry
	for _, r := range b.redemptions {
		if !r.known {
			out = append(out, r)
		}
	}
	return out
}
