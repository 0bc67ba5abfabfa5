package earning

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tally-ledger/tally"
)

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "genesys", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseEventShapes(t *testing.T) {
	guide, err := ParseEvent(sample(t, "guide-webhook-event.json"))
	if err != nil {
		t.Fatal(err)
	}
	if guide.Shape != ShapeGuide || guide.ID != "8b0f7a52-3c1e-4d8e-9a51-6f2d1c0b7e11" || guide.Channel != "webchat" ||
		guide.Customer != "c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21" {
		t.Fatalf("guide event: %+v", guide)
	}
	end, err := ParseEvent(sample(t, "customer-end-event-body.json"))
	if err != nil {
		t.Fatal(err)
	}
	bridge, err := ParseEvent(sample(t, "eventbridge-customer-end.json"))
	if err != nil {
		t.Fatal(err)
	}
	if end.Shape != ShapeCustomerEnd || bridge.Shape != ShapeEventBridge {
		t.Fatalf("shapes %q %q", end.Shape, bridge.Shape)
	}
	// One event delivered by a Workflow and by EventBridge has one identity.
	if end.ID != bridge.ID || end.Channel != bridge.Channel || end.Channel != GenesysChannel {
		t.Fatalf("identities differ: %q/%q and %q/%q", end.Channel, end.ID, bridge.Channel, bridge.ID)
	}
	if end.Customer != "c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21" || bridge.Customer != end.Customer {
		t.Fatalf("customers %q %q", end.Customer, bridge.Customer)
	}
	for _, ev := range []Event{end, bridge} {
		if ev.Fields["type"] != "WebChat" || ev.Fields["state"] != "closed" || ev.Fields["mediaType"] != "MESSAGE" {
			t.Fatalf("derived fields %v", ev.Fields)
		}
	}
	p := DefaultProgramme()
	for _, ev := range []Event{guide, end, bridge} {
		if r, ok := p.Match(ev); !ok || r.Fixed != DefaultPoints {
			t.Fatalf("%s event does not earn under the guide rule", ev.Shape)
		}
	}
}

func TestParseEventErrors(t *testing.T) {
	cases := map[string]string{
		"not an object":           `[1,2]`,
		"unknown shape":           `{"hello":"world"}`,
		"empty event id":          `{"event_id":"  "}`,
		"event id not a string":   `{"event_id":42}`,
		"channel not a string":    `{"event_id":"e","channel":7}`,
		"channel too long":        `{"event_id":"e","channel":"` + strings.Repeat("c", 49) + `"}`,
		"event id too long":       `{"event_id":"` + strings.Repeat("e", 201) + `"}`,
		"conversation not string": `{"conversationId":1}`,
		"detail not an object":    `{"detail":"x"}`,
		"detail without body":     `{"detail":{"topicName":"v2.detail.events.conversation.x.customer.end"}}`,
		"contact not a string":    `{"conversationId":"c","externalContactId":5}`,
	}
	for name, body := range cases {
		if _, err := ParseEvent([]byte(body)); tally.ErrorCode(err) != tally.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
}

func TestGuideEventNotMatching(t *testing.T) {
	ev, err := ParseEvent([]byte(`{"event_id":"e1","type":"WebChat","state":"open","user_id":"u"}`))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Channel != "webhook" {
		t.Fatalf("default channel %q", ev.Channel)
	}
	if _, ok := DefaultProgramme().Match(ev); ok {
		t.Fatal("an open chat earned points")
	}
}

func TestTopicSuffix(t *testing.T) {
	for topic, want := range map[string]string{
		"v2.detail.events.conversation.4f6c.customer.end":  "customer.end",
		"v2.detail.events.conversation.{id}.customer.end":  "customer.end",
		"v2.detail.events.conversation.4f6c.acw.completed": "acw.completed",
		"": "customer.end",
	} {
		if got := topicSuffix(topic); got != want {
			t.Errorf("topicSuffix(%q) = %q, want %q", topic, got, want)
		}
	}
}

func TestProgramme(t *testing.T) {
	p, err := ParseProgramme([]byte(`{
		"earning_rules": [
			{"name": "long-voice", "filter": "$.type = 'Voice' and $.interactingDurationMs > 60000", "points": 25},
			{"name": "chat", "filter": "` + GuideFilter + `", "points": 5}
		],
		"tiers": [{"name": "gold", "min_points": 100}, {"name": "member", "min_points": 0}]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	voice := Event{Fields: map[string]any{"type": "Voice", "interactingDurationMs": 412877.0}}
	if r, ok := p.Match(voice); !ok || r.Name != "long-voice" || r.Fixed != 25 {
		t.Fatalf("voice rule: %+v %v", r, ok)
	}
	if p.TierFor(0) != "member" || p.TierFor(99) != "member" || p.TierFor(100) != "gold" {
		t.Fatalf("tiers %v", p.Tiers)
	}
	bad := map[string]string{
		"no rules":     `{"earning_rules": []}`,
		"bad filter":   `{"earning_rules": [{"name": "x", "filter": "$.a = ", "points": 1}]}`,
		"zero points":  `{"earning_rules": [{"name": "x", "filter": "$.a = 1", "points": 0}]}`,
		"unnamed":      `{"earning_rules": [{"filter": "$.a = 1", "points": 1}]}`,
		"no base tier": `{"earning_rules": [{"name": "x", "filter": "$.a = 1", "points": 1}], "tiers": [{"name": "g", "min_points": 5}]}`,
		"not JSON":     `{`,
	}
	for name, src := range bad {
		if _, err := ParseProgramme([]byte(src)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	d := DefaultProgramme()
	if d.TierFor(0) != "base" || d.TierFor(5000) != "silver" || d.TierFor(20000) != "gold" {
		t.Fatal("default tiers")
	}
}
