package sim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Delivery shapes of a conversation-end event.
const (
	// ShapeWorkflow is the customer.end event body, forwarded by a Workflow's Call Data Action (the real
	// Genesys path: a Process Automation Trigger starts the Workflow).
	ShapeWorkflow = "workflow"
	// ShapeEventBridge is the same event in an Amazon EventBridge envelope.
	ShapeEventBridge = "eventbridge"
	// ShapeWebhook is the integration guide's webhook event.
	ShapeWebhook = "webhook"
)

// media is how Genesys describes a channel in a customer.end event, and how the guide's webhook names it.
type media struct {
	mediaType, messageType, guideType string
}

// Channels the emulator knows.
var channels = map[string]media{
	"webchat":  {"MESSAGE", "WEBMESSAGING", "WebChat"},
	"sms":      {"MESSAGE", "SMS", "SMS"},
	"voice":    {"VOICE", "", "Voice"},
	"email":    {"EMAIL", "", "Email"},
	"callback": {"CALLBACK", "", "Callback"},
}

// conversation is one customer interaction that ends, and the event that says so.
type conversation struct {
	customer      string // the externalContactId, as Genesys knows the customer
	channel       string
	id            string // conversationId
	participantID string
	sessionID     string
	eventID       string // the webhook event's event_id
	shape         string // how it is first delivered; ShapeWorkflow and ShapeEventBridge name the same event
	ended         time.Time
	duration      time.Duration
}

// identity is what makes two deliveries the same event for the server: the channel and the key of the
// event (Workflow and EventBridge deliveries share one, the webhook's is its event_id).
func (c *conversation) identity() string {
	if c.shape == ShapeWebhook {
		return c.channel + "|" + c.eventID
	}
	return "genesys|customer.end/" + c.id + "/" + c.participantID
}

// historyKey is the idempotency key the ledger shows for the event's transaction.
func (c *conversation) historyKey() string {
	if c.shape == ShapeWebhook {
		return c.eventID
	}
	return "customer.end/" + c.id + "/" + c.participantID
}

// body renders a delivery of the event in shape (a Genesys event may be redelivered in the other Genesys
// shape: a Workflow and EventBridge both forwarding it).
func (c *conversation) body(shape string) []byte {
	m := channels[c.channel]
	if shape == ShapeWebhook {
		return mustJSON(map[string]any{
			"event_id": c.eventID, "interaction_id": c.id, "type": m.guideType, "state": "closed",
			"user_id": c.customer, "channel": c.channel, "timestamp": c.ended.UTC().Format("2006-01-02T15:04:05.000Z"),
		})
	}
	ev := map[string]any{
		"eventTime": c.ended.UnixMilli(), "conversationId": c.id, "participantId": c.participantID,
		"sessionId": c.sessionID, "disconnectType": "client", "mediaType": m.mediaType, "direction": "inbound",
		"provider": "PureCloud Messaging", "externalContactId": c.customer, "externalOrganizationId": nil,
		"interactingDurationMs": c.duration.Milliseconds(), "divisionId": "sim-division",
		"addressFrom": "sim-visitor", "addressTo": "Loyalty_Redemptions",
	}
	if m.messageType != "" {
		ev["messageType"] = m.messageType
	}
	if shape == ShapeWorkflow {
		return mustJSON(ev)
	}
	return mustJSON(map[string]any{
		"version": "0", "id": newID(), "detail-type": "v2.detail.events.conversation.{id}.customer.end",
		"source": "aws.partner/genesys.com/cloud/sim-org/loyalty", "account": "123456789012",
		"time": c.ended.UTC().Format(time.RFC3339), "region": "us-east-1", "resources": []string{},
		"detail": map[string]any{
			"topicName": "v2.detail.events.conversation." + c.id + ".customer.end", "version": "2",
			"eventBody": ev, "metadata": map[string]string{"CorrelationId": newID()},
			"timestamp": c.ended.UTC().Format("2006-01-02T15:04:05.000Z"),
		},
	})
}

// newID is a random UUID (version 4), as Genesys identifiers are.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[:8], h[8:12], h[12:16], h[16:20], h[20:])
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of plain values are rendered
	}
	return b
}
