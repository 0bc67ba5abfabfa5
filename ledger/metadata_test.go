package ledger

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tally-ledger/tally"
)

// TestNormalizeRefusesAmbiguousMetadata: metadata is kept and hashed byte for byte, so the ledger itself
// refuses metadata that readers would read differently, whatever route the request came by.
func TestNormalizeRefusesAmbiguousMetadata(t *testing.T) {
	request := func(metadata string) Request {
		return Request{Kind: tally.KindAccrual, Key: "k", Account: strings.Repeat("a", 64), Amount: 1, Metadata: json.RawMessage(metadata)}
	}
	for _, tc := range []struct{ metadata, want string }{
		{`{"a":1,"a":2}`, `metadata repeats the member "a"`},
		{`{"lines":[{"sku":"x","sku":"y"}]}`, `(at "/lines/0/sku")`},
		{`{"a":"\ud800"}`, `metadata: the string at "/a" has an escaped high surrogate`},
		{`{"a":"\udc00"}`, `low surrogate`},
		{`{"a":"x\u0000y"}`, `metadata holds an escaped NUL character (at "/a")`},
		{`{"a\u0000":1}`, `escaped NUL`},
	} {
		r := request(tc.metadata)
		err := r.normalize()
		if tally.ErrorCode(err) != tally.EINVALID || !strings.Contains(tally.ErrorMessage(err), tc.want) {
			t.Errorf("metadata %s: %v, want EINVALID with %q", tc.metadata, err, tc.want)
		}
	}
	for _, ok := range []string{`{"a":1,"A":2}`, `{"a":"\ud83d\ude00","b":"\\u0000"}`, `{"a":{"x":1},"b":{"x":1}}`} {
		r := request(ok)
		if err := r.normalize(); err != nil {
			t.Errorf("metadata %s: %v", ok, err)
		}
	}
}
