package storetest

import (
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// lookalikeEventChannels are explicit channels that spell, or nearly spell, the namespace of Genesys
// events ("event:genesys"): none may claim, replay or block an event's key.
var lookalikeEventChannels = []string{
	"event:genesys", "EVENT:genesys", "Event:Genesys", " event:genesys", "event:genesys ", "event: genesys",
	"event%3Agenesys", "event%3agenesys", "event\uff1agenesys", "event\u2236genesys", "event\u02d0genesys",
	"event:", "event:genesys\x00", "event:genesys\n", "\u0435vent:genesys",
}

func testNamespaces(t *testing.T, h Harness) {
	const eventKey = "customer.end/4f6c2b9e-1a7d/0b1c2d3e"
	t.Run("explicit writes cannot take an event's key", func(t *testing.T) {
		e := newEnv(t, h)
		c := e.customer("namespaces")
		for _, ch := range lookalikeEventChannels {
			_, err := e.ledger.Write(e.ctx, ledger.Request{Kind: tally.KindAccrual, Channel: ch, Account: c, Key: eventKey, Amount: 500, Reason: "x"})
			if tally.ErrorCode(err) != tally.EINVALID {
				t.Errorf("explicit channel %q: %v, want %s", ch, err, tally.EINVALID)
			}
		}
		if got := e.balance(c); got != 0 {
			t.Fatalf("balance %d after refused writes", got)
		}
		// The event itself is then credited, once.
		ev := ledger.Request{Kind: tally.KindAccrual, Event: true, Channel: "genesys", Account: c, Key: eventKey, Amount: 10, Reason: "rule", Identity: "event:c"}
		first := e.mustWrite(ev)
		if first.Replayed || first.Transaction.Channel != tally.EventChannelPrefix+"genesys" {
			t.Fatalf("event write %+v, want applied on channel event:genesys", first)
		}
		if again := e.mustWrite(ev); !again.Replayed || again.Transaction.Seq != first.Transaction.Seq {
			t.Fatalf("event redelivery %+v, want the replay of transaction %d", again, first.Transaction.Seq)
		}
		// After it, the lookalikes still neither replay nor block it.
		for _, ch := range lookalikeEventChannels {
			rc, err := e.ledger.Write(e.ctx, ledger.Request{Kind: tally.KindAccrual, Channel: ch, Account: c, Key: eventKey, Amount: 10, Reason: "rule"})
			if tally.ErrorCode(err) != tally.EINVALID {
				t.Errorf("explicit channel %q after the event: %+v %v, want %s", ch, rc, err, tally.EINVALID)
			}
		}
		if got := e.balance(c); got != 10 {
			t.Fatalf("balance %d, want the event's 10", got)
		}
		e.mustVerify()
	})

	t.Run("an event's source never names an explicit channel", func(t *testing.T) {
		e := newEnv(t, h)
		c := e.customer("namespaces-reverse")
		// Explicit writes on plain channels that look like event sources, including the default one.
		for _, ch := range []string{"genesys", "api", "webchat"} {
			e.mustWrite(ledger.Request{Kind: tally.KindAccrual, Channel: ch, Account: c, Key: eventKey, Amount: 1, Reason: "explicit"})
		}
		// Events from sources of those names, under the same key, are other writes: applied, not replays.
		for _, source := range []string{"genesys", "api", "webchat", "event:genesys"} {
			rc := e.mustWrite(ledger.Request{Kind: tally.KindAccrual, Event: true, Channel: source, Account: c, Key: eventKey, Amount: 10, Reason: "rule"})
			if rc.Replayed || rc.Transaction.Channel != tally.EventChannelPrefix+source {
				t.Errorf("event from %q: %+v, want a fresh write on channel %q", source, rc, tally.EventChannelPrefix+source)
			}
		}
		// And an explicit replay is answered by its own write, not by the event's.
		rc := e.mustWrite(ledger.Request{Kind: tally.KindAccrual, Channel: "genesys", Account: c, Key: eventKey, Amount: 1, Reason: "explicit"})
		if !rc.Replayed || rc.Transaction.Channel != "genesys" || rc.Transaction.Amount != 1 {
			t.Errorf("explicit replay %+v, want the replay of the explicit write", rc)
		}
		if got := e.balance(c); got != 3+40 {
			t.Fatalf("balance %d, want 3 explicit points and 40 from events", got)
		}
		e.mustVerify()
	})

	t.Run("channel rules", func(t *testing.T) {
		e := newEnv(t, h)
		c := e.customer("channel-rules")
		for _, ch := range []string{"a", "Back_Office-2.eu", "0123456789012345678901234567890123456789012345678901234567890123"} {
			e.mustWrite(ledger.Request{Kind: tally.KindAccrual, Channel: ch, Account: c, Key: "k", Amount: 1, Reason: "x"})
		}
		for _, ch := range []string{"01234567890123456789012345678901234567890123456789012345678901234", "a/b", "a b", "café"} {
			_, err := e.ledger.Write(e.ctx, ledger.Request{Kind: tally.KindAccrual, Channel: ch, Account: c, Key: "k", Amount: 1, Reason: "x"})
			wantCode(t, err, tally.EINVALID)
		}
		// An event needs a source, short enough to fit the stored channel.
		for _, source := range []string{"", "012345678901234567890123456789012345678901234567890123456789"} {
			_, err := e.ledger.Write(e.ctx, ledger.Request{Kind: ledger.KindNone, Event: true, Channel: source, Key: "k"})
			wantCode(t, err, tally.EINVALID)
		}
	})
}
