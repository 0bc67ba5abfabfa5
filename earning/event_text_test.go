package earning

import (
	"strings"
	"testing"

	"github.com/tally-ledger/tally"
)

// TestParseEventRefusesNUL: the fields that become idempotency keys and customers cannot hold a NUL, in
// any shape (the body's UTF-8 and surrogates are checked before ParseEvent, by the HTTP layer).
func TestParseEventRefusesNUL(t *testing.T) {
	const nul = `x\u0000y`
	for _, body := range []string{
		`{"event_id":"` + nul + `","user_id":"u"}`,
		`{"event_id":"e","user_id":"` + nul + `"}`,
		`{"event_id":"e","customer_hash":"` + nul + `"}`,
		`{"event_id":"e","channel":"` + nul + `","user_id":"u"}`,
		`{"conversationId":"` + nul + `","externalContactId":"c"}`,
		`{"conversationId":"c","participantId":"` + nul + `","externalContactId":"c"}`,
		`{"conversationId":"c","externalContactId":"` + nul + `"}`,
		`{"detail":{"topicName":"v2.detail.events.conversation.c.customer.end","eventBody":{"conversationId":"c","externalContactId":"` + nul + `"}}}`,
		`{"detail":{"topicName":"v2.detail.events.conversation.c.customer.end` + nul + `","eventBody":{"conversationId":"c","externalContactId":"e"}}}`,
		`{"detail-type":"` + nul + `","detail":{"eventBody":{"conversationId":"c","externalContactId":"e"}}}`,
	} {
		_, err := ParseEvent([]byte(body))
		if tally.ErrorCode(err) != tally.EINVALID || !strings.HasSuffix(tally.ErrorMessage(err), " contains a NUL character") {
			t.Errorf("ParseEvent(%s) = %v, want EINVALID naming the NUL", body, err)
		}
	}
}
