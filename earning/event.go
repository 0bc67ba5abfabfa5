// Package earning turns the events a contact centre sends into accruals: it reads the event shapes
// Genesys Cloud delivers (the integration guide's webhook body, a customer.end event body forwarded by a
// Workflow's Data Action, and the Amazon EventBridge envelope), and holds the programme's earning rules
// and tiers.
package earning

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/tally-ledger/tally"
)

// Event shapes.
const (
	ShapeGuide       = "guide"
	ShapeCustomerEnd = "customer.end"
	ShapeEventBridge = "eventbridge"
)

// GenesysChannel is the idempotency channel of Genesys conversation events, whichever way they arrive,
// so that one event delivered by both a Workflow and EventBridge is counted once.
const GenesysChannel = "genesys"

// Event is an incoming event, normalised.
type Event struct {
	Shape string
	// ID identifies the event within Channel; (Channel, ID) is its idempotency key.
	ID      string
	Channel string
	// Customer is the customer as the event names it: a raw identifier, or a Tally hash, or "".
	Customer string
	// Fields are what earning rules filter on: the event's own fields, plus type and state derived for
	// Genesys events so that the guide's rule applies to them too.
	Fields map[string]any
}

const (
	maxIDLen      = 200
	maxChannelLen = 48
)

// ParseEvent reads an event body. It fails with EINVALID when the body is JSON but no event Tally knows.
func ParseEvent(body []byte) (Event, error) {
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return Event{}, tally.Errorf(tally.EINVALID, "the event must be a JSON object")
	}
	switch {
	case obj["detail"] != nil:
		return parseEventBridge(obj)
	case obj["conversationId"] != nil:
		return parseCustomerEnd(obj, "customer.end")
	case obj["event_id"] != nil:
		return parseGuide(obj)
	}
	return Event{}, tally.Errorf(tally.EINVALID, "unknown event shape: expected an event_id (webhook event), a conversationId (Genesys event body) or an EventBridge detail")
}

func parseGuide(obj map[string]any) (Event, error) {
	id, err := stringField(obj, "event_id", true)
	if err != nil {
		return Event{}, err
	}
	channel, err := stringField(obj, "channel", false)
	if err != nil {
		return Event{}, err
	}
	if channel, err = guideChannel(channel); err != nil {
		return Event{}, err
	}
	customer, err := stringField(obj, "customer_hash", false)
	if err != nil {
		return Event{}, err
	}
	if customer == "" {
		if customer, err = stringField(obj, "user_id", false); err != nil {
			return Event{}, err
		}
	}
	return Event{Shape: ShapeGuide, ID: id, Channel: channel, Customer: customer, Fields: obj}, nil
}

// guideChannel is the idempotency channel of a webhook event: the channel it names, in one spelling
// (lower case: "WebChat" and "webchat" are one channel, so that one event cannot be credited once per
// spelling), "webhook" when it names none. "genesys" is refused: it is the channel of Genesys Cloud's
// own event bodies, and a webhook event under it could take a conversation's key and block the real
// event for good.
func guideChannel(channel string) (string, error) {
	channel = strings.ToLower(channel)
	switch {
	case channel == "":
		return "webhook", nil
	case channel == GenesysChannel:
		return "", tally.Errorf(tally.EINVALID, "channel %q is reserved for Genesys Cloud's own event bodies (customer.end, EventBridge): name the webhook's channel otherwise", GenesysChannel)
	case len(channel) > maxChannelLen:
		return "", tally.Errorf(tally.EINVALID, "channel is longer than %d bytes", maxChannelLen)
	}
	for _, c := range channel {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return "", tally.Errorf(tally.EINVALID, "channel may hold only letters, digits, '.', '_' and '-'")
		}
	}
	return channel, nil
}

// parseCustomerEnd reads the body of a v2.detail.events.conversation.{id}.<topic> event.
func parseCustomerEnd(body map[string]any, topic string) (Event, error) {
	conv, err := stringField(body, "conversationId", true)
	if err != nil {
		return Event{}, err
	}
	participant, err := stringField(body, "participantId", false)
	if err != nil {
		return Event{}, err
	}
	customer, err := stringField(body, "externalContactId", false)
	if err != nil {
		return Event{}, err
	}
	id := topic + "/" + conv
	if participant != "" {
		id += "/" + participant
	}
	if len(id) > maxIDLen {
		return Event{}, tally.Errorf(tally.EINVALID, "conversationId and participantId are too long")
	}
	fields := make(map[string]any, len(body)+4)
	for k, v := range body {
		fields[k] = v
	}
	media, _ := body["mediaType"].(string)
	message, _ := body["messageType"].(string)
	setDefault(fields, "type", interactionType(media, message))
	if topic == "customer.end" {
		setDefault(fields, "state", "closed")
	}
	setDefault(fields, "event_id", id)
	setDefault(fields, "interaction_id", conv)
	setDefault(fields, "channel", channelOf(media, message))
	return Event{Shape: ShapeCustomerEnd, ID: id, Channel: GenesysChannel, Customer: customer, Fields: fields}, nil
}

func parseEventBridge(obj map[string]any) (Event, error) {
	detail, ok := obj["detail"].(map[string]any)
	if !ok {
		return Event{}, tally.Errorf(tally.EINVALID, "detail must be an object")
	}
	topicField := "detail.topicName"
	topicName, _ := detail["topicName"].(string)
	if topicName == "" {
		topicField = "detail-type"
		topicName, _ = obj["detail-type"].(string)
	}
	// The topic's event part becomes part of the idempotency key.
	if err := tally.CheckText(topicField, topicName); err != nil {
		return Event{}, err
	}
	body, ok := detail["eventBody"].(map[string]any)
	if !ok {
		return Event{}, tally.Errorf(tally.EINVALID, "detail.eventBody must be an object")
	}
	ev, err := parseCustomerEnd(body, topicSuffix(topicName))
	if err != nil {
		return Event{}, err
	}
	ev.Shape = ShapeEventBridge
	ev.Fields["topicName"] = topicName
	return ev, nil
}

// topicSuffix is the event part of a conversation topic: "customer.end" in
// v2.detail.events.conversation.{id}.customer.end.
func topicSuffix(topic string) string {
	parts := strings.Split(topic, ".")
	if len(parts) >= 7 && parts[3] == "conversation" {
		return strings.Join(parts[5:], ".")
	}
	if topic == "" {
		return "customer.end"
	}
	return topic
}

// interactionType names a Genesys media type the way the guide's events do ("WebChat" for web chat and
// web messaging).
func interactionType(media, message string) string {
	switch {
	case media == "CHAT", media == "MESSAGE" && (message == "WEBMESSAGING" || message == ""):
		return "WebChat"
	case media == "MESSAGE" && message == "SMS":
		return "SMS"
	case media == "MESSAGE":
		return "Message"
	case media == "VOICE", media == "CALL":
		return "Voice"
	case media == "EMAIL":
		return "Email"
	case media == "CALLBACK":
		return "Callback"
	}
	return media
}

func channelOf(media, message string) string {
	if t := interactionType(media, message); t != "" {
		return strings.ToLower(t)
	}
	return GenesysChannel
}

func setDefault(m map[string]any, k string, v any) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

// stringField reads a string field; a present field of another type is invalid.
func stringField(obj map[string]any, name string, required bool) (string, error) {
	v, ok := obj[name]
	if !ok || v == nil {
		if required {
			return "", tally.Errorf(tally.EINVALID, "%s is required", name)
		}
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", tally.Errorf(tally.EINVALID, "%s must be a string", name)
	}
	// These fields become idempotency keys and customer hashes: an escaped NUL (\u0000) is no identifier,
	// and PostgreSQL's text cannot hold it.
	if err := tally.CheckText(name, s); err != nil {
		return "", err
	}
	s = strings.TrimSpace(s)
	if required && s == "" {
		return "", tally.Errorf(tally.EINVALID, "%s must not be empty", name)
	}
	if len(s) > maxIDLen {
		return "", tally.Errorf(tally.EINVALID, "%s is longer than %d bytes", name, maxIDLen)
	}
	return s, nil
}
