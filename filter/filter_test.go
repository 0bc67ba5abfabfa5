package filter

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
)

// guideExpression is the rule from the integration guide, exactly as written there.
const guideExpression = `$.type = 'WebChat' AND $.state = 'closed'`

// events are the JSON bodies the cases match against, by name.
var events = map[string]string{
	"guide":         `{"event_id":"8b0f...","type":"WebChat","state":"closed","user_id":"c7d1...","channel":"webchat"}`,
	"guide-open":    `{"event_id":"8b0f...","type":"WebChat","state":"open","user_id":"c7d1...","channel":"webchat"}`,
	"guide-nostate": `{"event_id":"8b0f...","type":"WebChat","user_id":"c7d1...","channel":"webchat"}`,
	"empty":         `{}`,
	// The body of a Genesys Cloud v2.detail.events.conversation.{id}.customer.end notification.
	"customer-end": `{
		"eventTime": 1718035200000,
		"conversationId": "4b6c2a1e-9d7f-4c1a-8e2b-5f0a3d9c7e61",
		"participantId": "a1f0c3d2-7b8e-4f6a-9c5d-2e1b0a9f8c7d",
		"sessionId": "0e9d8c7b-6a5f-4e3d-2c1b-0a9f8e7d6c5b",
		"disconnectType": "CLIENT",
		"mediaType": "MESSAGE",
		"provider": "PureCloud Messaging",
		"direction": "INBOUND",
		"addressFrom": "c7d1...",
		"addressTo": "Tally Web Messaging",
		"callbackNumbers": [],
		"subject": "Refund REQUEST",
		"messageType": "WEBMESSAGING",
		"interactingDurationMs": 412877,
		"conversationExternalContactIds": ["e5b4c3d2-1a0f-4e9d-8c7b-6a5f4e3d2c1b"],
		"divisionId": "d0c1b2a3-9f8e-4d7c-6b5a-4f3e2d1c0b9a"
	}`,
	"nested": `{
		"customer": {"tier": "gold", "address": {"city": "Leeds"}, "first name": "Ann"},
		"items": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 1}],
		"tags": ["vip", "b"],
		"odd key": 1,
		"and": "keyword",
		"vip": true,
		"zero": 0,
		"zeroFloat": 0.0,
		"empty": "",
		"emptyList": [],
		"emptyObject": {},
		"falseList": [false, 0],
		"nothing": null,
		"big": 9007199254740993,
		"ratio": 0.25,
		"neg": -3,
		"huge": 1e400,
		"name": "Zoë"
	}`,
}

var matchCases = []struct {
	src   string
	event string
	want  bool
}{
	// The guide expression, and idiomatic spellings of it.
	{guideExpression, "guide", true},
	{guideExpression, "guide-open", false},
	{guideExpression, "guide-nostate", false},
	{guideExpression, "empty", false},
	{`type = "WebChat" and state = "closed"`, "guide", true},
	{`$.type='WebChat' and $.state='closed'`, "guide", true},
	{`($.type = 'WebChat') And ($.state = 'closed')`, "guide", true},
	{`$.type = 'WebChat' AND $.state = 'closed'`, "guide-open", false},
	{`$.type = 'WebChat' AND NOT $.state = 'open'`, "guide", true},
	{`$.type = 'WebChat' AND NOT $.state = 'open'`, "guide-open", false},
	{`$.state != 'open'`, "guide", true},
	{` $.type  =  'WebChat' `, "guide", true},
	{"$.type\n\t= 'WebChat'\u00a0AND $.state = 'closed'", "guide", true},
	{`$['type'] = 'WebChat' and $["state"] = 'closed'`, "guide", true},
	{"$.`type` = 'WebChat'", "guide", true},
	{`$.type = 'webchat'`, "guide", false},
	{`lowercase($.type) = 'webchat'`, "guide", true},

	// Undefined: every comparison with a missing field is false, as in JSONata.
	{`$.missing = 'x'`, "guide", false},
	{`$.missing != 'x'`, "guide", false},
	{`$.missing < 1`, "guide", false},
	{`$.missing = $.alsoMissing`, "guide", false},
	{`$.missing = null`, "guide", false},
	{`$.nothing = null`, "nested", true},
	{`$.missing in ['x']`, "guide", false},
	{`$.state.deeper = 'x'`, "guide", false},
	{`NOT $.missing = 'x'`, "guide", true},
	{`not($.missing)`, "guide", false},
	{`NOT $.missing`, "guide", false},
	{`not(exists($.missing))`, "guide", true},
	{`exists($.missing)`, "guide", false},
	{`exists($.user_id)`, "guide", true},
	{`exists(user_id)`, "guide", true},
	{`$exists($.user_id)`, "guide", true},
	{`EXISTS($.nothing)`, "nested", true},
	{`$.missing or $.state = 'closed'`, "guide", true},

	// Numbers compare by value; mixed types are never ordered.
	{`$.interactingDurationMs > 60000`, "customer-end", true},
	{`$.interactingDurationMs >= 412877`, "customer-end", true},
	{`$.interactingDurationMs > 412877`, "customer-end", false},
	{`$.interactingDurationMs <= 412877.0`, "customer-end", true},
	{`$.interactingDurationMs < 4.12878e5`, "customer-end", true},
	{`$.interactingDurationMs = 412877`, "customer-end", true},
	{`$.interactingDurationMs = 412877.5`, "customer-end", false},
	{`$.interactingDurationMs > '60000'`, "customer-end", false},
	{`$.interactingDurationMs = '412877'`, "customer-end", false},
	{`$.interactingDurationMs != '412877'`, "customer-end", true},
	{`$.neg < -2.5`, "nested", true},
	{`$.neg > -3E0`, "nested", false},
	{`$.ratio = 2.5e-1`, "nested", true},
	{`$.big = 9007199254740993`, "nested", true},
	{`$.big = 9007199254740992`, "nested", false},
	{`$.big > 9007199254740992.0`, "nested", true},
	{`$.huge > 1e300`, "nested", true},
	{`$.zero = -0`, "nested", true},
	{`$.zeroFloat = 0`, "nested", true},
	{`$.vip > false`, "nested", false},

	// Strings order by code point.
	{`$.mediaType < 'N'`, "customer-end", true},
	{`$.mediaType >= 'MESSAGE'`, "customer-end", true},
	{`$.name > 'Zoe'`, "nested", true},
	{`$.name = 'Zo\u00eb'`, "nested", true},
	{`$.name = "Zo\u00EB"`, "nested", true},

	// in.
	{`$.mediaType in ['MESSAGE', 'CHAT']`, "customer-end", true},
	{`$.mediaType IN ['VOICE', 'CALLBACK']`, "customer-end", false},
	{`$.mediaType in []`, "customer-end", false},
	{`$.mediaType in 'MESSAGE'`, "customer-end", true},
	{`'vip' in $.tags`, "nested", true},
	{`'gold' in $.tags`, "nested", false},
	{`2 in [1, 2.0, 3]`, "guide", true},
	{`$.customer.tier in ['gold', $.missing, 'silver']`, "nested", true},
	{`$.interactingDurationMs in [412877]`, "customer-end", true},
	{`not($.mediaType in ['VOICE'])`, "customer-end", true},

	// Nested paths, indexes and odd names.
	{`$.customer.address.city = 'Leeds'`, "nested", true},
	{`customer.address.city = 'Leeds'`, "nested", true},
	{`$.customer.address = 'Leeds'`, "nested", false},
	{`$.customer['first name'] = 'Ann'`, "nested", true},
	{"$.customer.`first name` = 'Ann'", "nested", true},
	{`$['odd key'] = 1`, "nested", true},
	{`$.items[0].sku = 'A1'`, "nested", true},
	{`$.items[1].sku = 'B2'`, "nested", true},
	{`$.items[-1].qty = 1`, "nested", true},
	{`$.items[2].sku = 'C3'`, "nested", false},
	{`$.items[-3].sku = 'A1'`, "nested", false},
	{`$.items.sku = 'A1'`, "nested", false},
	{`$.customer.tier[0] = 'gold'`, "nested", true},
	{`$.and = 'keyword'`, "nested", true},
	{`$['and'] = 'keyword'`, "nested", true},
	{`$.tags = ['vip', 'b']`, "nested", true},
	{`$.tags = ['b', 'vip']`, "nested", false},
	{`$.items[0] = $.items[0]`, "nested", true},
	{`$.customer.address != $.customer`, "nested", true},

	// Truthiness of bare values.
	{`$.vip`, "nested", true},
	{`vip and $.customer.tier`, "nested", true},
	{`$.zero`, "nested", false},
	{`$.zeroFloat`, "nested", false},
	{`$.neg`, "nested", true},
	{`$.empty`, "nested", false},
	{`$.emptyList`, "nested", false},
	{`$.emptyObject`, "nested", false},
	{`$.falseList`, "nested", false},
	{`$.tags`, "nested", true},
	{`$.nothing`, "nested", false},
	{`$.customer`, "nested", true},
	{`$`, "guide", true},
	{`$`, "empty", false},
	{`true`, "empty", true},
	{`FALSE`, "empty", false},
	{`null`, "empty", false},
	{`'x'`, "empty", true},
	{`0`, "empty", false},

	// Precedence: comparison > not > and > or.
	{`$.zero = 0 or $.vip = false and $.neg = 0`, "nested", true},
	{`($.zero = 0 or $.vip = false) and $.neg = 0`, "nested", false},
	{`NOT $.vip = false AND $.zero = 0`, "nested", true},
	{`NOT ($.vip = true AND $.zero = 1)`, "nested", true},
	{`not NOT $.vip`, "nested", true},
	{`not($.vip) = false`, "nested", true},
	{`NOT $.zero = 1 or $.missing`, "nested", true},
	{`$.zero = 1 OR $.zero = 2 Or $.zero = 0`, "nested", true},
	{`((($.vip)))`, "nested", true},

	// Functions.
	{`contains($.channel, 'chat')`, "guide", true},
	{`contains($.channel, 'Chat')`, "guide", false},
	{`contains(lowercase($.subject), 'refund')`, "customer-end", true},
	{`$contains($lowercase($.subject), 'request')`, "customer-end", true},
	{`uppercase($.channel) = 'WEBCHAT'`, "guide", true},
	{`Uppercase($.channel) = 'WEBCHAT'`, "guide", true},
	{`contains($.missing, 'x')`, "guide", false},
	{`contains($.interactingDurationMs, '4')`, "customer-end", false},
	{`lowercase($.interactingDurationMs) = '412877'`, "customer-end", false},
	{`exists(lowercase($.interactingDurationMs))`, "customer-end", false},
	{`contains($.channel, '')`, "guide", true},
	{`not(contains($.subject, 'test'))`, "customer-end", true},

	// The Genesys customer.end rules the guide suggests.
	{`$.mediaType = 'MESSAGE' and $.messageType = 'WEBMESSAGING'`, "customer-end", true},
	{`$.mediaType = 'MESSAGE' and $.messageType in ['SMS', 'WHATSAPP']`, "customer-end", false},
	{`$.mediaType in ['MESSAGE', 'CHAT'] and $.direction = 'INBOUND' and $.interactingDurationMs > 60000`, "customer-end", true},
	{`$.disconnectType != 'ERROR' and exists($.conversationExternalContactIds[0])`, "customer-end", true},
	{`exists($.callbackNumbers[0])`, "customer-end", false},
	{`$.eventTime > 1700000000000`, "customer-end", true},
}

func TestMatch(t *testing.T) {
	for _, c := range matchCases {
		t.Run(c.event+"/"+c.src, func(t *testing.T) {
			e := MustCompile(t, c.src)
			if got := MustMatchJSON(t, e, events[c.event]); got != c.want {
				t.Errorf("Match = %v, want %v", got, c.want)
			}
			// The canonical form must mean the same thing.
			canon := MustCompile(t, e.canonical())
			if got := MustMatchJSON(t, canon, events[c.event]); got != c.want {
				t.Errorf("canonical form %q: Match = %v, want %v", e.canonical(), got, c.want)
			}
		})
	}
}

// TestMatchGoValues matches events built in Go or decoded without UseNumber, whose numbers are
// float64, int or int64.
func TestMatchGoValues(t *testing.T) {
	e := MustCompile(t, `$.interactingDurationMs > 60000 and $.mediaType in ['MESSAGE']`)
	for _, d := range []any{float64(412877), 412877, int64(412877), json.Number("412877")} {
		if !e.Match(map[string]any{"interactingDurationMs": d, "mediaType": "MESSAGE"}) {
			t.Errorf("%T: no match", d)
		}
	}
	var event map[string]any
	if err := json.Unmarshal([]byte(events["customer-end"]), &event); err != nil {
		t.Fatal(err)
	}
	if !e.Match(event) {
		t.Error("float64 event: no match")
	}
	if e.Match(nil) {
		t.Error("nil event matches")
	}
	// A float64 cannot hold 9007199254740993; the comparison with the exact literal says so.
	big := MustCompile(t, `$.big = 9007199254740993`)
	if big.Match(map[string]any{"big": float64(9007199254740993)}) {
		t.Error("float64(2^53+1) equals 2^53+1")
	}
}

var errorCases = []struct {
	src  string
	want string
}{
	// Unterminated strings and names.
	{`$.type = 'WebChat`, `filter: at offset 9: unterminated string: expected a closing '`},
	{`$.type = "WebChat' AND $.state = 'closed'`, `filter: at offset 9: unterminated string: expected a closing "`},
	{`$.type = 'WebChat\`, `filter: at offset 17: unterminated string: the source ends in an escape`},
	{"$.`type = 'WebChat'", "filter: at offset 2: unterminated name: expected a closing `"},

	// Dangling operators.
	{`$.type = 'WebChat' AND $.state =`, `filter: at offset 32: expected a value after '=', found end of input`},
	{`$.type = 'WebChat' AND`, `filter: at offset 22: expected an expression after 'AND', found end of input`},
	{`AND $.state = 'closed'`, `filter: at offset 0: expected an expression, found 'AND'`},
	{`$.type = 'WebChat' or or $.x`, `filter: at offset 22: expected an expression after 'or', found 'or'`},
	{`$.a in`, `filter: at offset 6: expected a value after 'in', found end of input`},
	{`NOT`, `filter: at offset 3: expected an expression after 'NOT', found end of input`},
	{`$.a = not $.b`, `filter: at offset 6: expected a value after '=', found 'not'`},
	{`$.a = = 1`, `filter: at offset 6: expected a value after '=', found '='`},
	{``, `filter: at offset 0: expected an expression, found end of input`},
	{`   `, `filter: at offset 3: expected an expression, found end of input`},

	// Unbalanced parentheses and brackets.
	{`($.type = 'WebChat' AND $.state = 'closed'`, `filter: at offset 42: expected ')' to close the '(' at offset 0, found end of input`},
	{`$.type = 'WebChat')`, `filter: at offset 18: unbalanced ')': there is no '(' to close`},
	{`()`, `filter: at offset 1: expected an expression after '(', found ')'`},
	{`(($.a = 1)`, `filter: at offset 10: expected ')' to close the '(' at offset 0, found end of input`},
	{`$.items[0 = 1`, `filter: at offset 10: expected ']' to close the '[' at offset 7, found '='`},
	{`$.a in [1, 2`, `filter: at offset 12: expected ',' or ']' to close the '[' at offset 7, found end of input`},
	{`$.a in [1,]`, `filter: at offset 10: expected an expression after ',', found ']'`},
	{`contains($.a, 'x'`, `filter: at offset 17: expected ',' or ')' to close the '(' at offset 8, found end of input`},

	// Functions.
	{`startsWith($.type, 'Web')`, `filter: at offset 0: unknown function 'startsWith': the functions are contains, exists, lowercase, not, uppercase`},
	{`$frob(1)`, `filter: at offset 0: unknown function '$frob': the functions are contains, exists, lowercase, not, uppercase`},
	{`contains($.type)`, `filter: at offset 0: contains takes 2 arguments, not 1`},
	{`exists()`, `filter: at offset 0: exists takes 1 argument, not 0`},
	{`$type = 'WebChat'`, `filter: at offset 0: variables are not supported: did you mean '$.type'?`},

	// Operators from other languages.
	{`$.a == 1`, `filter: at offset 4: '==' is not an operator; use '='`},
	{`$.a = 1 && $.b = 2`, `filter: at offset 8: '&&' is not an operator; use 'and'`},
	{`$.a = 1 || $.b = 2`, `filter: at offset 8: '||' is not an operator; use 'or'`},
	{`$.a <> 1`, `filter: at offset 4: '<>' is not an operator; use '!='`},
	{`!($.a = 1)`, `filter: at offset 0: '!' is not an operator; use 'not'`},
	{`$.a = 1 = 2`, `filter: at offset 8: comparisons do not chain: join them with 'and'`},
	{`$.a = 1 $.b = 2`, `filter: at offset 8: expected an operator or end of input, found '$'`},
	{`$.type = 'WebChat' AN $.state = 'closed'`, `filter: at offset 19: expected an operator or end of input, found 'AN'`},

	// Paths.
	{`$.`, `filter: at offset 2: expected a field name after '.', found end of input`},
	{`$.items.0 = 1`, `filter: at offset 8: expected a field name after '.', found number 0: index arrays with [0]`},
	{`$.items[1.5]`, `filter: at offset 8: expected a quoted field name or an integer index after '[', found number 1.5`},
	{`$.a.'b' = 1`, `filter: at offset 4: expected a field name after '.', found string 'b'`},

	// Literals.
	{`$.a = 'x\q'`, `filter: at offset 8: unknown escape '\q' in string`},
	{`$.a = '\u12'`, `filter: at offset 7: expected 4 hex digits after '\u'`},
	{`$.a = 1e`, `filter: at offset 6: malformed number "1e": expected digits in the exponent`},
	{`$.a = 12abc`, `filter: at offset 6: malformed number "12abc"`},
	{`$.a = 1e999`, `filter: at offset 6: number 1e999 is out of range`},
	{`$.a = -`, `filter: at offset 6: unexpected '-': it may only start a negative number`},
	{`$.type = ‘WebChat’`, `filter: at offset 9: unexpected '‘'; quote strings with straight quotes ' or "`},
	{`$.a = #`, `filter: at offset 6: unexpected character '#'`},
	{"$.a = \xff", `filter: at offset 6: unexpected byte 0xff: the source is not valid UTF-8`},
	// A syntax error before a lexical one is reported first.
	{`$.a = = 'x`, `filter: at offset 6: expected a value after '=', found '='`},

	// Limits.
	{strings.Repeat("(", MaxDepth+1) + "$.a" + strings.Repeat(")", MaxDepth+1), `filter: at offset 64: expression nests deeper than 64 levels`},
	{strings.Repeat("NOT ", MaxDepth+1) + "$.a", `filter: at offset 256: expression nests deeper than 64 levels`},
	{strings.Repeat("not(", MaxDepth+1) + "$.a" + strings.Repeat(")", MaxDepth+1), `filter: at offset 259: expression nests deeper than 64 levels`},
	{"1 in " + strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), `filter: at offset 69: expression nests deeper than 64 levels`},
	{strings.Repeat("(", MaxSourceLen+1), `filter: at offset 4096: the expression is 4097 bytes long; the limit is 4096`},
	{"$.a = '" + strings.Repeat("x", MaxSourceLen) + "'", `filter: at offset 4096: the expression is 4104 bytes long; the limit is 4096`},
}

func TestCompileErrors(t *testing.T) {
	for _, c := range errorCases {
		name := c.src
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			e, err := Compile(c.src)
			if err == nil {
				t.Fatalf("Compile = %q, want an error", e.canonical())
			}
			if err.Error() != c.want {
				t.Errorf("error:\n got %s\nwant %s", err, c.want)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Errorf("error is %T, want *SyntaxError", err)
			}
		})
	}
}

// atLimits are sources as long or as deep as Compile takes.
var atLimits = []string{
	strings.Repeat("(", MaxDepth) + "$.a" + strings.Repeat(")", MaxDepth),
	strings.Repeat("NOT ", MaxDepth) + "$.a = 1",
	strings.Repeat("not(", MaxDepth) + "$.a = 1" + strings.Repeat(")", MaxDepth),
	"1 in " + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth),
	"$.a = '" + strings.Repeat("x", MaxSourceLen-8) + "'",
	// Long chains are flat, not deep.
	"$.a = 1" + strings.Repeat(" or $.a = 1", (MaxSourceLen-7)/11),
}

func TestLimitsAreInclusive(t *testing.T) {
	for _, src := range atLimits {
		if _, err := Compile(src); err != nil {
			t.Errorf("Compile(%.40q...): %v", src, err)
		}
	}
}

func TestString(t *testing.T) {
	e := MustCompile(t, guideExpression)
	if e.String() != guideExpression {
		t.Errorf("String = %q, want the source", e.String())
	}
	if got, want := e.canonical(), `$.type = 'WebChat' and $.state = 'closed'`; got != want {
		t.Errorf("canonical = %q, want %q", got, want)
	}
}

func TestCanonical(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{`type = "Web\"Chat"`, `$.type = 'Web"Chat'`},
		{`$['odd key'] IN [1, 2.50, -3e2, 1e21]`, `$['odd key'] in [1, 2.5, -300.0, 1e+21]`},
		{`NOT a = 1 AND (b OR c) OR d`, `not($.a = 1) and ($.b or $.c) or $.d`},
		{`((a = 1)) and (b and c)`, `$.a = 1 and $.b and $.c`},
		{`$EXISTS($.items[-1]) = TRUE`, `exists($.items[-1]) = true`},
		{"$.`a.b`['c\\'d'] = '\\n'", `$['a.b']['c\'d'] = '\u000a'`},
	} {
		if got := MustCompile(t, c.src).canonical(); got != c.want {
			t.Errorf("canonical(%s) = %s, want %s", c.src, got, c.want)
		}
	}
}

func TestMatchJSONErrors(t *testing.T) {
	e := MustCompile(t, guideExpression)
	for _, body := range []string{``, `{`, `[]`, `null`, `"x"`, `{} {}`, `{"type": "WebChat"} x`} {
		if _, err := MatchJSON(e, []byte(body)); err == nil {
			t.Errorf("MatchJSON(%q): no error", body)
		}
	}
	if ok, err := MatchJSON(e, []byte(events["guide"]+"\n")); !ok || err != nil {
		t.Errorf("MatchJSON with a trailing newline = %v, %v", ok, err)
	}
}

// TestConcurrentMatch shares one Expr between goroutines; -race checks that Match writes nothing.
func TestConcurrentMatch(t *testing.T) {
	e := MustCompile(t, `$.mediaType in ['MESSAGE', 'CHAT'] and contains(lowercase($.subject), 'refund')`)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if ok, err := MatchJSON(e, []byte(events["customer-end"])); !ok || err != nil {
					t.Errorf("MatchJSON = %v, %v", ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// FuzzCompile checks that Compile never panics, that its errors say where, and that an expression
// survives a round trip through its source and through its canonical form with the same meaning.
func FuzzCompile(f *testing.F) {
	for _, c := range matchCases {
		f.Add(c.src)
	}
	for _, c := range errorCases {
		f.Add(c.src)
	}
	for _, src := range atLimits {
		f.Add(src)
	}
	var decoded []map[string]any
	for _, body := range events {
		var event map[string]any
		dec := json.NewDecoder(strings.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&event); err != nil {
			f.Fatal(err)
		}
		decoded = append(decoded, event)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Compile(src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Msg == "" || se.Offset < 0 || se.Offset > len(src) {
				t.Fatalf("Compile(%q): error %#v does not say where and what", src, err)
			}
			return
		}
		if e.String() != src {
			t.Fatalf("String() = %q, want %q", e.String(), src)
		}
		again, err := Compile(e.String())
		if err != nil || again.String() != src {
			t.Fatalf("Compile(String()) = %v, %v", again, err)
		}
		canon := e.canonical()
		if len(canon) > MaxSourceLen {
			return // quoting and $. prefixes can lengthen a source past the limit
		}
		e2, err := Compile(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not compile: %v", canon, src, err)
		}
		if c2 := e2.canonical(); c2 != canon {
			t.Fatalf("canonical form is not stable:\n src %q\n one %q\n two %q", src, canon, c2)
		}
		for _, event := range decoded {
			if a, b := e.Match(event), e2.Match(event); a != b {
				t.Fatalf("%q matches %v but its canonical form %q matches %v", src, a, canon, b)
			}
		}
	})
}

// MustCompile compiles src or fails the test.
func MustCompile(tb testing.TB, src string) *Expr {
	tb.Helper()
	e, err := Compile(src)
	if err != nil {
		tb.Fatalf("Compile(%q): %v", src, err)
	}
	return e
}

// MustMatchJSON matches a JSON body or fails the test.
func MustMatchJSON(tb testing.TB, e *Expr, body string) bool {
	tb.Helper()
	ok, err := MatchJSON(e, []byte(body))
	if err != nil {
		tb.Fatalf("MatchJSON: %v", err)
	}
	return ok
}
