package tally_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
)

func sampleTx() tally.Transaction {
	return tally.Transaction{
		Seq: 7, Kind: tally.KindAccrual, AccountID: strings.Repeat("a", 64), Channel: "webchat", IdempotencyKey: "evt-1",
		RequestHash: "rh", Amount: 10, Reason: "chat", Metadata: json.RawMessage(`{"a":1}`),
		CreatedAt: time.Date(2026, 11, 20, 14, 3, 22, 481000000, time.UTC),
		Postings:  []tally.Posting{{AccountID: strings.Repeat("a", 64), Amount: 10}, {AccountID: tally.AccountIssuance, Amount: -10}},
	}
}

func TestChainHashCoversEveryField(t *testing.T) {
	base := sampleTx()
	h0, err := tally.ChainHash("", &base)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := tally.ChainHash("", &base); again != h0 {
		t.Fatal("hash is not deterministic")
	}
	if len(h0) != 64 {
		t.Fatalf("hash %q is not hex SHA-256", h0)
	}
	changes := map[string]func(*tally.Transaction){
		"seq":      func(t *tally.Transaction) { t.Seq++ },
		"kind":     func(t *tally.Transaction) { t.Kind = tally.KindRedemption },
		"account":  func(t *tally.Transaction) { t.AccountID = strings.Repeat("b", 64) },
		"channel":  func(t *tally.Transaction) { t.Channel = "sms" },
		"key":      func(t *tally.Transaction) { t.IdempotencyKey = "evt-2" },
		"request":  func(t *tally.Transaction) { t.RequestHash = "other" },
		"amount":   func(t *tally.Transaction) { t.Amount = 11 },
		"reason":   func(t *tally.Transaction) { t.Reason = "chat!" },
		"actor":    func(t *tally.Transaction) { t.Actor = "ops" },
		"metadata": func(t *tally.Transaction) { t.Metadata = json.RawMessage(`{"a":2}`) },
		"reverses": func(t *tally.Transaction) { t.ReversesSeq = 3 },
		"time":     func(t *tally.Transaction) { t.CreatedAt = t.CreatedAt.Add(time.Microsecond) },
		"posting":  func(t *tally.Transaction) { t.Postings[1].Amount = -11 },
		"order":    func(t *tally.Transaction) { t.Postings[0], t.Postings[1] = t.Postings[1], t.Postings[0] },
		"dropped":  func(t *tally.Transaction) { t.Postings = t.Postings[:1] },
		// Field boundaries: moving a character from one field to the next must change the hash.
		"boundary": func(t *tally.Transaction) { t.Reason, t.Actor = "cha", "hr" },
	}
	for name, change := range changes {
		tx := sampleTx()
		change(&tx)
		h, err := tally.ChainHash("", &tx)
		if err != nil {
			t.Fatal(err)
		}
		if h == h0 {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
	chained, _ := tally.ChainHash(h0, &base)
	if chained == h0 {
		t.Error("the previous hash does not change the hash")
	}
	if _, err := tally.ChainHash("zz", &base); tally.ErrorCode(err) != tally.EINVALID {
		t.Errorf("non-hex previous hash: %v", err)
	}
}

func TestCustomerHasher(t *testing.T) {
	if _, err := tally.NewCustomerHasher([]byte("short")); err == nil {
		t.Fatal("a short secret was accepted")
	}
	a, _ := tally.NewCustomerHasher([]byte("0123456789abcdef-one"))
	b, _ := tally.NewCustomerHasher([]byte("0123456789abcdef-two"))
	h := a.Hash("jane@example.com")
	if !tally.IsCustomerHash(h) || h != a.Hash("jane@example.com") {
		t.Fatalf("hash %q", h)
	}
	if h == b.Hash("jane@example.com") {
		t.Fatal("the secret does not key the hash")
	}
	if h == a.Hash("jane@example.co") {
		t.Fatal("different ids share a hash")
	}
	for _, s := range []string{"", strings.Repeat("A", 64), strings.Repeat("a", 63), strings.Repeat("g", 64)} {
		if tally.IsCustomerHash(s) {
			t.Errorf("%q taken for a customer hash", s)
		}
	}
}

func TestErrors(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", tally.Errorf(tally.EINSUFFICIENT, "not enough"))
	if tally.ErrorCode(err) != tally.EINSUFFICIENT || tally.ErrorMessage(err) != "not enough" {
		t.Fatalf("code %q message %q", tally.ErrorCode(err), tally.ErrorMessage(err))
	}
	plain := errors.New("disk on fire")
	if tally.ErrorCode(plain) != tally.EINTERNAL || tally.ErrorMessage(plain) != "internal error" {
		t.Fatal("an error without a code must be internal and hide its text")
	}
	if tally.ErrorCode(nil) != "" {
		t.Fatal("nil has a code")
	}
	cause := errors.New("connection refused")
	u := tally.Unavailable(cause, "database")
	if !errors.Is(u, cause) || tally.ErrorCode(u) != tally.EUNAVAILABLE {
		t.Fatal("Unavailable loses its cause or code")
	}
	if tally.EVERSION.Remembered() || tally.EUNAVAILABLE.Remembered() || !tally.EINSUFFICIENT.Remembered() {
		t.Fatal("wrong codes remembered")
	}
}

func TestTransactionDelta(t *testing.T) {
	tx := sampleTx()
	if tx.Delta() != 10 {
		t.Fatalf("delta %d", tx.Delta())
	}
}
