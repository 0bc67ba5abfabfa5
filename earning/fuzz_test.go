package earning

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/tally-ledger/tally"
)

// FuzzParseEvent checks the event-shape detection on any body: it never panics; it refuses with
// EINVALID and a message, or yields an event of a known shape whose idempotency key and channel are
// bounded text (they are stored), whose customer is text, whose fields re-encode as JSON (rules match
// them), and which the same body always yields; and the default programme's rules match it without
// panicking.
func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{
		`{"event_id":"8b0f7a52","interaction_id":"4f6c","type":"WebChat","state":"closed","user_id":"c7d1","channel":"webchat","timestamp":"2026-11-20T14:03:22.481Z"}`,
		`{"event_id":"e","customer_hash":"c","channel":"WebChat"}`,
		`{"event_id":"e","channel":"genesys"}`,
		`{"conversationId":"c0","participantId":"p1","externalContactId":"x","mediaType":"MESSAGE","messageType":"SMS"}`,
		`{"detail-type":"v2.detail.events.conversation.{id}.customer.end","detail":{"topicName":"v2.detail.events.conversation.abc.customer.end","eventBody":{"conversationId":"abc","mediaType":"VOICE"}}}`,
		`{"detail":{"eventBody":{"conversationId":"abc"}}}`,
		`{"detail":1}`, `{"event_id":1}`, `{"event_id":"\u0000"}`, `{"event_id":"  "}`, `{"conversationId":null}`,
		`null`, `[]`, `{}`, `{"event_id":"a"} trailing`,
	} {
		f.Add([]byte(s))
	}
	programme := DefaultProgramme()
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := ParseEvent(body)
		if err != nil {
			if tally.ErrorCode(err) != tally.EINVALID || tally.ErrorMessage(err) == "" {
				t.Fatalf("ParseEvent(%q): error %v is not EINVALID with a message", body, err)
			}
			return
		}
		switch ev.Shape {
		case ShapeGuide, ShapeCustomerEnd, ShapeEventBridge:
		default:
			t.Fatalf("ParseEvent(%q): unknown shape %q", body, ev.Shape)
		}
		if ev.ID == "" || len(ev.ID) > maxIDLen || tally.CheckText("id", ev.ID) != nil {
			t.Fatalf("ParseEvent(%q): idempotency key %q is not bounded text", body, ev.ID)
		}
		if ev.Channel == "" || len(ev.Channel) > maxChannelLen || tally.CheckText("channel", ev.Channel) != nil {
			t.Fatalf("ParseEvent(%q): channel %q is not bounded text", body, ev.Channel)
		}
		if ev.Shape == ShapeGuide && ev.Channel == GenesysChannel {
			t.Fatalf("ParseEvent(%q): a webhook event took the Genesys channel", body)
		}
		if tally.CheckText("customer", ev.Customer) != nil || len(ev.Customer) > maxIDLen {
			t.Fatalf("ParseEvent(%q): customer %q is not bounded text", body, ev.Customer)
		}
		if _, err := json.Marshal(ev.Fields); err != nil {
			t.Fatalf("ParseEvent(%q): fields do not re-encode: %v", body, err)
		}
		again, err := ParseEvent(body)
		if err != nil || !reflect.DeepEqual(again, ev) {
			t.Fatalf("ParseEvent(%q) is not deterministic: %+v then %+v, %v", body, ev, again, err)
		}
		programme.Match(ev)
	})
}
