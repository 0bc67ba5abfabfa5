package api_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
)

// The tests of this file send text that no store can keep as given (NUL, bytes that are not UTF-8,
// escaped surrogates that pair with nothing) and JSON objects that repeat a member name, through every
// route where caller text reaches SQL or the customer hasher, and expect a 422 problem that changes
// nothing. Each template is also sent with clean text, so that a refusal for any other reason would show.

// inputMark is replaced in a template by each bad spelling, and by inputClean for the control request.
const (
	inputMark  = "{{X}}"
	inputClean = "xy"
)

// inputPathSpellings are bad spellings of a path segment, percent-encoded as a caller would send them.
var inputPathSpellings = map[string]string{
	"NUL":                 "x%00y",
	"invalid UTF-8":       "x%FFy",
	"UTF-8 of surrogate":  "x%ED%A0%80y",
	"overlong NUL":        "x%C0%80y",
	"lone continuation":   "x%80y",
	"truncated sequence":  "x%E2%82y",
	"NUL at the very end": "xy%00",
}

// inputJSONSpellings are bad spellings of the inside of a JSON string.
var inputJSONSpellings = map[string]string{
	"escaped NUL":            `x\u0000y`,
	"invalid UTF-8":          "x\xffy",
	"raw UTF-8 of surrogate": "x\xed\xa0\x80y",
	"overlong NUL":           "x\xc0\x80y",
	"lone high surrogate":    `\ud800x`,
	"lone low surrogate":     `\udfffx`,
	"high then plain escape": `x\uD83D\u0041y`,
	"high at the end":        `xy\udbff`,
	"low before high":        `x\ude00\ud83dy`,
	"only an escaped NUL":    `\u0000`,
}

// inputTemplate is one request with a place for the bad text.
type inputTemplate struct {
	name, method, path, body string
	clean                    int       // the status of the control request
	outcome                  [2]string // channel, key: an idempotency record that must not exist after the refusals
}

func inputTemplates() []inputTemplate {
	// tx is an adjustment (it has every text field) whose field (if any) ends with the mark.
	tx := func(n int, field string) string {
		fields := map[string]string{"idempotency_key": fmt.Sprintf("bad-text-%d", n), "customer_hash": "cust-bad-text", "channel": "api", "reason": "why", "actor": "ops"}
		if field != "" {
			fields[field] += inputMark
		}
		return fmt.Sprintf(`{"idempotency_key":%q,"customer_hash":%q,"channel":%q,"kind":"adjustment","amount":5,"reason":%q,"actor":%q,"metadata":{"order":"A-1"}}`,
			fields["idempotency_key"], fields["customer_hash"], fields["channel"], fields["reason"], fields["actor"])
	}
	const reward = `{"name":"Coffee","point_cost":100,"fulfillment_method":"email"}`
	const guide = `{"event_id":"EID","type":"WebChat","state":"closed","user_id":"UID","channel":"CH"}`
	const customerEnd = `{"conversationId":"CONV","participantId":"PART","mediaType":"MESSAGE","messageType":"WEBMESSAGING","externalContactId":"EXT"}`
	const bridge = `{"detail-type":"v2.detail.events.conversation.{id}.customer.end","detail":{"topicName":"v2.detail.events.conversation.CONV.customer.endTOPIC","eventBody":` +
		`{"conversationId":"CONV","mediaType":"MESSAGE","messageType":"WEBMESSAGING","externalContactId":"EXT"}}}`
	sub := func(body string, pairs ...string) string { return strings.NewReplacer(pairs...).Replace(body) }
	return []inputTemplate{
		// Item 7 of the issue: the reward id in the path, and every text field of a reward.
		{name: "reward id in the path", method: "PUT", path: "/v1/catalog/rewards/" + inputMark, body: reward, clean: http.StatusOK},
		{name: "reward id to read", method: "GET", path: "/v1/catalog/rewards/r-get-" + inputMark, clean: http.StatusNotFound},
		{name: "reward name", method: "PUT", path: "/v1/catalog/rewards/r-name", body: `{"name":"` + inputMark + `","point_cost":100,"fulfillment_method":"email"}`, clean: http.StatusOK},
		{name: "reward min_tier", method: "PUT", path: "/v1/catalog/rewards/r-tier", body: `{"name":"Coffee","point_cost":100,"min_tier":"` + inputMark + `","fulfillment_method":"email"}`, clean: http.StatusOK},
		{name: "reward description", method: "PUT", path: "/v1/catalog/rewards/r-desc", body: `{"name":"Coffee","description":"` + inputMark + `","point_cost":100,"fulfillment_method":"email"}`, clean: http.StatusOK},
		{name: "reward webhook_url", method: "PUT", path: "/v1/catalog/rewards/r-hook", body: `{"name":"Coffee","point_cost":100,"fulfillment_method":"webhook","webhook_url":"https://example.test/` + inputMark + `"}`, clean: http.StatusOK},

		// Customers in paths and lookups: hashed, so refused before hashing.
		{name: "history customer", method: "GET", path: "/v1/ledger/accounts/" + inputMark + "/history", clean: http.StatusOK},
		{name: "status customer", method: "POST", path: "/v1/ledger/accounts/" + inputMark + "/status", body: `{"status":"frozen"}`, clean: http.StatusNotFound},
		{name: "lookup customer_hash", method: "POST", path: e2eLookupPath, body: `{"customer_hash":"c-` + inputMark + `"}`, clean: http.StatusOK},
		{name: "lookup channel", method: "POST", path: e2eLookupPath, body: `{"customer_hash":"c","channel":"` + inputMark + `"}`, clean: http.StatusOK},
		{name: "lookup request_id", method: "POST", path: e2eLookupPath, body: `{"customer_hash":"c","request_id":"` + inputMark + `"}`, clean: http.StatusOK},

		// Explicit transactions: every text field.
		{name: "transaction customer_hash", method: "POST", path: e2eProcessPath, body: tx(1, "customer_hash"), clean: http.StatusCreated, outcome: [2]string{"api", "bad-text-1"}},
		{name: "transaction idempotency_key", method: "POST", path: e2eProcessPath, body: tx(2, "idempotency_key"), clean: http.StatusCreated},
		{name: "transaction channel", method: "POST", path: e2eProcessPath, body: tx(3, "channel"), clean: http.StatusCreated},
		{name: "transaction reason", method: "POST", path: e2eProcessPath, body: tx(4, "reason"), clean: http.StatusCreated, outcome: [2]string{"api", "bad-text-4"}},
		{name: "transaction actor", method: "POST", path: e2eProcessPath, body: tx(5, "actor"), clean: http.StatusCreated, outcome: [2]string{"api", "bad-text-5"}},
		{name: "transaction metadata value", method: "POST", path: e2eProcessPath, body: strings.Replace(tx(6, ""), `"A-1"`, `"A-1`+inputMark+`"`, 1), clean: http.StatusCreated, outcome: [2]string{"api", "bad-text-6"}},
		{name: "transaction metadata name", method: "POST", path: e2eProcessPath, body: strings.Replace(tx(7, ""), `"order"`, `"order`+inputMark+`"`, 1), clean: http.StatusCreated, outcome: [2]string{"api", "bad-text-7"}},
		{name: "transaction metadata nested", method: "POST", path: e2eProcessPath, body: strings.Replace(tx(8, ""), `"A-1"`, `["ok",{"deep":"`+inputMark+`"}]`, 1), clean: http.StatusCreated, outcome: [2]string{"api", "bad-text-8"}},

		// Events of every shape: the fields that become customers and idempotency keys.
		{name: "guide user_id", method: "POST", path: e2eProcessPath, body: sub(guide, "EID", "g-1", "UID", inputMark, "CH", "webchat"), clean: http.StatusCreated, outcome: [2]string{"event:webchat", "g-1"}},
		{name: "guide customer_hash", method: "POST", path: e2eProcessPath, body: sub(guide, "EID", "g-2", `"user_id":"UID"`, `"customer_hash":"`+inputMark+`"`, "CH", "webchat"), clean: http.StatusCreated, outcome: [2]string{"event:webchat", "g-2"}},
		{name: "guide event_id", method: "POST", path: e2eProcessPath, body: sub(guide, "EID", "g-3"+inputMark, "UID", "u", "CH", "webchat"), clean: http.StatusCreated},
		{name: "guide channel", method: "POST", path: e2eProcessPath, body: sub(guide, "EID", "g-4", "UID", "u", "CH", inputMark), clean: http.StatusCreated},
		{name: "guide extra field", method: "POST", path: e2eProcessPath, body: sub(guide, "EID", "g-5", "UID", "u", "CH", "webchat", `"closed"`, `"closed","note":"`+inputMark+`"`), clean: http.StatusCreated, outcome: [2]string{"event:webchat", "g-5"}},
		{name: "customer.end externalContactId", method: "POST", path: e2eProcessPath, body: sub(customerEnd, "CONV", "c-1", "PART", "p", "EXT", inputMark), clean: http.StatusCreated, outcome: [2]string{"event:genesys", "customer.end/c-1/p"}},
		{name: "customer.end conversationId", method: "POST", path: e2eProcessPath, body: sub(customerEnd, "CONV", "c-2"+inputMark, "PART", "p", "EXT", "e"), clean: http.StatusCreated},
		{name: "customer.end participantId", method: "POST", path: e2eProcessPath, body: sub(customerEnd, "CONV", "c-3", "PART", inputMark, "EXT", "e"), clean: http.StatusCreated},
		{name: "eventbridge externalContactId", method: "POST", path: e2eProcessPath, body: sub(bridge, "TOPIC", "", "CONV", "b-1", "EXT", inputMark), clean: http.StatusCreated, outcome: [2]string{"event:genesys", "customer.end/b-1"}},
		{name: "eventbridge conversationId", method: "POST", path: e2eProcessPath, body: sub(bridge, "TOPIC", "", "CONV", "b-2"+inputMark, "EXT", "e"), clean: http.StatusCreated},
		// A topic of another event than customer.end is taken, and earns nothing: 200.
		{name: "eventbridge topicName", method: "POST", path: e2eProcessPath, body: sub(bridge, "TOPIC", inputMark, "CONV", "b-3", "EXT", "e"), clean: http.StatusOK},
	}
}

// inputState is what a refused request must leave as it was.
type inputState struct {
	transactions, accounts int64
	rewards                string
}

func inputSnapshot(t *testing.T, srv *apitest.Server) inputState {
	t.Helper()
	ctx := context.Background()
	var s inputState
	s.transactions = e2eCount(t, srv)
	if err := srv.Store.Audit().ScanAccounts(ctx, func(tally.Account) error { s.accounts++; return nil }); err != nil {
		t.Fatal(err)
	}
	rewards, err := srv.Store.Rewards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.rewards = fmt.Sprint(rewards)
	return s
}

func TestE2EInputBadText(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		token := srv.Token(apitest.AllScopes...)
		templates := inputTemplates()
		before := inputSnapshot(t, srv)
		for _, tp := range templates {
			t.Run(tp.name, func(t *testing.T) {
				spellings := inputJSONSpellings
				if strings.Contains(tp.path, inputMark) {
					spellings = inputPathSpellings
				}
				for spelling, bad := range spellings {
					path, body := strings.ReplaceAll(tp.path, inputMark, bad), strings.ReplaceAll(tp.body, inputMark, bad)
					var b []byte
					if tp.body != "" {
						b = []byte(body)
					}
					res := e2eDo(t, srv, tp.method, path, token, b)
					if res.Status != http.StatusUnprocessableEntity {
						t.Errorf("%s: %s %s %q: status %d, want 422; body %s", spelling, tp.method, path, body, res.Status, res.Body)
						continue
					}
					e2eProblem(t, res, http.StatusUnprocessableEntity, tally.EINVALID)
				}
				if tp.outcome[1] != "" {
					if _, err := srv.Store.Outcome(context.Background(), tp.outcome[0], tp.outcome[1]); tally.ErrorCode(err) != tally.ENOTFOUND {
						t.Errorf("after the refusals, the outcome of %q on %q: %v, want not found", tp.outcome[1], tp.outcome[0], err)
					}
				}
			})
		}
		if after := inputSnapshot(t, srv); after != before {
			t.Fatalf("refused requests changed the store: before %+v, after %+v", before, after)
		}
		// The same requests with clean text are taken: what was refused was the text.
		for _, tp := range templates {
			path, body := strings.ReplaceAll(tp.path, inputMark, inputClean), strings.ReplaceAll(tp.body, inputMark, inputClean)
			var b []byte
			if tp.body != "" {
				b = []byte(body)
			}
			if res := e2eDo(t, srv, tp.method, path, token, b); res.Status != tp.clean {
				t.Errorf("%s with clean text: status %d, want %d; body %s", tp.name, res.Status, tp.clean, res.Body)
			}
		}
	})
}

// TestE2EInputSurrogatePairs: an escaped surrogate pair is one character, the same customer as the
// character written as such, and another customer than U+FFFD (what a lone surrogate used to become).
func TestE2EInputSurrogatePairs(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		escaped := e2eLookup(t, srv, []byte(`{"customer_hash":"\ud83d\ude00-cust"}`))
		raw := e2eLookup(t, srv, []byte(`{"customer_hash":"😀-cust"}`))
		replacement := e2eLookup(t, srv, []byte(`{"customer_hash":"\ufffd-cust"}`))
		if escaped.CustomerHash != raw.CustomerHash || escaped.CustomerHash != "th_"+srv.Hasher.Hash("😀-cust") {
			t.Errorf("an escaped pair hashes to %s, the character to %s", escaped.CustomerHash, raw.CustomerHash)
		}
		if replacement.CustomerHash == escaped.CustomerHash {
			t.Error("U+FFFD and 😀 name one customer")
		}
	})
}

// TestE2EInputEscapedNULWhereGenesysIsNotRead: a Genesys body is Genesys's to fill, and an escaped NUL in a
// field Tally neither stores nor hashes is not refused.
func TestE2EInputEscapedNULWhereGenesysIsNotRead(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		body := `{"conversationId":"c-nul","mediaType":"MESSAGE","messageType":"WEBMESSAGING","externalContactId":"e","addressTo":"Queue\u0000 A"}`
		e2eStatus(t, e2eDo(t, srv, "POST", e2eProcessPath, srv.Token(tally.ScopeLedgerWrite), []byte(body)), http.StatusCreated)
	})
}

func TestE2EInputRepeatedNames(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		token := srv.Token(apitest.AllScopes...)
		const reward = "/v1/catalog/rewards/r-dup"
		for _, tc := range []struct {
			name, method, path, body string
		}{
			{"amount", "POST", e2eProcessPath, `{"idempotency_key":"d-1","customer_hash":"c","kind":"accrual","amount":1,"amount":500}`},
			{"amount in another case", "POST", e2eProcessPath, `{"idempotency_key":"d-2","customer_hash":"c","kind":"accrual","amount":1,"AMOUNT":500}`},
			{"amount spelt with an escape", "POST", e2eProcessPath, `{"idempotency_key":"d-3","customer_hash":"c","kind":"accrual","amount":1,"\u0061mount":500}`},
			{"kind with a Kelvin sign", "POST", e2eProcessPath, `{"idempotency_key":"d-4","customer_hash":"c","kind":"accrual","amount":1,"\u212aind":"expiry"}`},
			{"customer_hash", "POST", e2eProcessPath, `{"idempotency_key":"d-5","customer_hash":"a","customer_hash":"b","kind":"accrual","amount":1}`},
			{"idempotency_key", "POST", e2eProcessPath, `{"idempotency_key":"d-6","customer_hash":"c","kind":"accrual","amount":1,"idempotency_key":"d-6b"}`},
			{"metadata member", "POST", e2eProcessPath, `{"idempotency_key":"d-7","customer_hash":"c","kind":"accrual","amount":1,"metadata":{"order":"A","order":"B"}}`},
			{"metadata deep member", "POST", e2eProcessPath, `{"idempotency_key":"d-8","customer_hash":"c","kind":"accrual","amount":1,"metadata":{"lines":[{"sku":"A","sku":"B"}]}}`},
			{"lookup customer_hash", "POST", e2eLookupPath, `{"customer_hash":"a","customer_hash":"b"}`},
			{"lookup in another case", "POST", e2eLookupPath, `{"customer_hash":"a","Customer_Hash":"b"}`},
			{"status", "POST", "/v1/ledger/accounts/c/status", `{"status":"active","status":"closed"}`},
			{"reward point_cost", "PUT", reward, `{"name":"Coffee","point_cost":100,"point_cost":1,"fulfillment_method":"email"}`},
			{"reward active in another case", "PUT", reward, `{"name":"Coffee","point_cost":100,"fulfillment_method":"email","active":false,"ACTIVE":true}`},
			{"guide user_id", "POST", e2eProcessPath, `{"event_id":"dg-1","type":"WebChat","state":"closed","user_id":"a","user_id":"b"}`},
			{"guide event_id", "POST", e2eProcessPath, `{"event_id":"dg-2","type":"WebChat","state":"closed","user_id":"a","event_id":"dg-2b"}`},
			{"guide state", "POST", e2eProcessPath, `{"event_id":"dg-3","type":"WebChat","state":"open","state":"closed","user_id":"a"}`},
			{"guide nested", "POST", e2eProcessPath, `{"event_id":"dg-4","type":"WebChat","state":"closed","user_id":"a","extra":{"x":1,"x":2}}`},
			{"customer.end externalContactId", "POST", e2eProcessPath, `{"conversationId":"dc-1","mediaType":"MESSAGE","messageType":"WEBMESSAGING","externalContactId":"a","externalContactId":"b"}`},
			{"customer.end conversationId", "POST", e2eProcessPath, `{"conversationId":"dc-2","mediaType":"MESSAGE","messageType":"WEBMESSAGING","externalContactId":"a","conversationId":"dc-2b"}`},
			{"customer.end mediaType", "POST", e2eProcessPath, `{"conversationId":"dc-3","mediaType":"VOICE","messageType":"WEBMESSAGING","externalContactId":"a","mediaType":"MESSAGE"}`},
			{"eventbridge externalContactId", "POST", e2eProcessPath, `{"detail":{"topicName":"t","eventBody":{"conversationId":"db-1","mediaType":"MESSAGE","externalContactId":"a","externalContactId":"b"}}}`},
			{"eventbridge eventBody", "POST", e2eProcessPath, `{"detail":{"topicName":"t","eventBody":{"conversationId":"db-2","mediaType":"MESSAGE","externalContactId":"a"},"eventBody":{"conversationId":"db-2","mediaType":"MESSAGE","externalContactId":"b"}}}`},
			{"eventbridge detail", "POST", e2eProcessPath, `{"detail":{"topicName":"t","eventBody":{"conversationId":"db-3","externalContactId":"a"}},"detail":{"topicName":"t","eventBody":{"conversationId":"db-3","externalContactId":"b"}}}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := inputSnapshot(t, srv)
				p := e2eProblem(t, e2eDo(t, srv, tc.method, tc.path, token, []byte(tc.body)), http.StatusUnprocessableEntity, tally.EINVALID)
				if d, _ := p["detail"].(string); !strings.Contains(d, "member") {
					t.Errorf("detail %q does not name the repeated member", d)
				}
				if after := inputSnapshot(t, srv); after != before {
					t.Fatalf("a refused request changed the store: before %+v, after %+v", before, after)
				}
			})
		}

		// Genesys's own bodies may repeat names in objects Tally does not read by name: tolerated, so that
		// an event is not lost to a serializer Tally does not control.
		for _, tc := range []struct{ name, body string }{
			{"customer.end participant attributes", `{"conversationId":"ok-1","mediaType":"MESSAGE","messageType":"WEBMESSAGING","externalContactId":"a","attributes":{"x":"1","x":"2"}}`},
			{"eventbridge metadata", `{"detail":{"topicName":"v2.detail.events.conversation.ok-2.customer.end","eventBody":{"conversationId":"ok-2","messageType":"WEBMESSAGING","mediaType":"MESSAGE","externalContactId":"a"},"metadata":{"CorrelationId":"1","CorrelationId":"2"}}}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e2eStatus(t, e2eDo(t, srv, "POST", e2eProcessPath, token, []byte(tc.body)), http.StatusCreated)
			})
		}
	})
}

// TestE2EInputTokenEndpoint: a client id that is not text, in the Basic header or the form, is refused
// as the OAuth request it is (RFC 6749 §5.2: 400 invalid_request), never looked up (a 500 on PostgreSQL).
func TestE2EInputTokenEndpoint(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		id, secret := srv.Client(tally.ScopeLedgerRead)
		grant := url.Values{"grant_type": {"client_credentials"}}
		post := func(form url.Values, authorization string) apitest.Response {
			t.Helper()
			header := []string{"Content-Type", "application/x-www-form-urlencoded"}
			if authorization != "" {
				header = append(header, "Authorization", authorization)
			}
			return e2eDo(t, srv, "POST", "/oauth/token", "", []byte(form.Encode()), header...)
		}
		basic := func(user, pass string) string {
			return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
		}
		for spelling, bad := range map[string]string{"NUL": "\x00", "invalid UTF-8": "\xff", "UTF-8 of a surrogate": "\xed\xa0\x80"} {
			for _, tc := range []struct {
				name          string
				form          url.Values
				authorization string
			}{
				{"Basic id, encoded", grant, basic(url.QueryEscape(id+bad), url.QueryEscape(secret))},
				{"Basic id, raw", grant, basic(id+bad, secret)},
				{"Basic secret", grant, basic(id, url.QueryEscape(secret+bad))},
				{"form id", url.Values{"grant_type": {"client_credentials"}, "client_id": {id + bad}, "client_secret": {secret}}, ""},
				{"form secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {bad + secret}}, ""},
			} {
				res := post(tc.form, tc.authorization)
				if res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), `"invalid_request"`) {
					t.Errorf("%s, %s: status %d, body %s; want 400 invalid_request", tc.name, spelling, res.Status, res.Body)
				}
			}
		}
		e2eStatus(t, post(grant, basic(id, secret)), http.StatusOK)
	})
}
