package sim

import (
	"net/http"
	"strings"
	"testing"
)

// TestBookConflicts: answers that contradict each other for one event or one redemption are what the
// "duplicates counted once" invariant reports; consistent replays are not.
func TestBookConflicts(t *testing.T) {
	applied := func(tx int64) string {
		return `{"status":"applied","amount":10,"transaction_id":` + string(rune('0'+tx)) + `}`
	}
	tests := []struct {
		name    string
		answers []answer
		want    string // in the conflict; "" for none
	}{
		{"first delivery and a replay", []answer{{status: 201, body: []byte(applied(1))}, {status: 200, body: []byte(applied(1))}}, ""},
		{"ignored twice", []answer{{status: 200, body: []byte(`{"status":"ignored"}`)}, {status: 200, body: []byte(`{"status":"ignored"}`)}}, ""},
		{"created twice", []answer{{status: 201, body: []byte(applied(1))}, {status: 201, body: []byte(applied(1))}}, "201 twice"},
		{"two transactions", []answer{{status: 201, body: []byte(applied(1))}, {status: 200, body: []byte(applied(2))}}, "another applied"},
		{"applied, then ignored", []answer{{status: 201, body: []byte(applied(1))}, {status: 200, body: []byte(`{"status":"ignored"}`)}}, "another ignored"},
		{"a timeout, then an answer", []answer{{err: http.ErrHandlerTimeout, timedOut: true}, {status: 201, body: []byte(applied(1))}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBook()
			e := b.addEvent(&conversation{customer: "c", channel: "webchat", id: "conv", participantID: "p", shape: ShapeWorkflow})
			for _, a := range tt.answers {
				b.eventAnswer(e, a)
			}
			switch {
			case tt.want == "" && len(b.conflicts) > 0:
				t.Fatalf("conflicts %v, want none", b.conflicts)
			case tt.want != "" && (len(b.conflicts) == 0 || !strings.Contains(b.conflicts[0], tt.want)):
				t.Fatalf("conflicts %v, want one saying %q", b.conflicts, tt.want)
			}
		})
	}
}

// TestBookRedemptions: a receipt and its replay are one redemption; a refusal is counted by its code.
func TestBookRedemptions(t *testing.T) {
	b := newBook()
	r := &redemptionEntry{customer: "c", reward: "r", key: "k", cost: 20, portal: true}
	b.addRedemption(r)
	receipt := []byte(`{"transaction_id":7,"reward_id":"r","points_debited":20}`)
	b.redemptionAnswer(r, answer{status: http.StatusCreated, body: receipt})
	b.redemptionAnswer(r, answer{status: http.StatusOK, body: receipt})
	if len(b.receipts) != 1 || b.receipts[7].points != 20 || len(b.conflicts) != 0 {
		t.Fatalf("receipts %v conflicts %v", b.receipts, b.conflicts)
	}
	other := &redemptionEntry{customer: "c", reward: "r", key: "k2", cost: 20, portal: true}
	b.redemptionAnswer(other, answer{status: http.StatusConflict, body: []byte(`{"code":"out_of_stock"}`)})
	if b.refused["409 out_of_stock"] != 1 || !other.known || other.txID != 0 {
		t.Fatalf("refused %v, entry %+v", b.refused, other)
	}
}
