package strictjson_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/strictjson"
)

func TestScanDuplicates(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want []strictjson.Duplicate
	}{
		{"none", `{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}`, nil},
		{"top level", `{"amount":1,"amount":500}`, []strictjson.Duplicate{{Pointer: "/amount", Parent: "", Name: "amount"}}},
		{"escaped spelling", `{"amount":1,"\u0061mount":500}`, []strictjson.Duplicate{{Pointer: "/amount", Name: "amount"}}},
		{"escaped surrogate pair", `{"\ud83d\ude00":1,"😀":2}`, []strictjson.Duplicate{{Pointer: "/😀", Name: "😀"}}},
		{"case at the top level", `{"amount":1,"AMOUNT":500}`, []strictjson.Duplicate{{Pointer: "/AMOUNT", Name: "AMOUNT", Folded: true}}},
		{"Kelvin sign folds to k", `{"kind":"accrual","\u212aind":"adjustment"}`, []strictjson.Duplicate{{Pointer: "/\u212aind", Name: "\u212aind", Folded: true}}},
		{"case below the top level is two names", `{"m":{"a":1,"A":2}}`, nil},
		{"nested", `{"detail":{"eventBody":{"x":1,"x":2}}}`, []strictjson.Duplicate{{Pointer: "/detail/eventBody/x", Parent: "/detail/eventBody", Name: "x"}}},
		{"in an array", `[{"a":1},{"b":1,"b":2}]`, []strictjson.Duplicate{{Pointer: "/1/b", Parent: "/1", Name: "b"}}},
		{"pointer escapes", `{"a/b":{"~":1,"~":2}}`, []strictjson.Duplicate{{Pointer: "/a~1b/~0", Parent: "/a~1b", Name: "~"}}},
		{"names are per object", `{"a":{"x":1},"b":{"x":1},"x":1}`, nil},
		{"after a closed object", `{"a":{"b":1},"b":2,"b":3}`, []strictjson.Duplicate{{Pointer: "/b", Name: "b"}}},
		{"many members", manyMembers(40, "k7"), []strictjson.Duplicate{{Pointer: "/k7", Name: "k7"}}},
		{"many members, case", manyMembers(40, "K7"), []strictjson.Duplicate{{Pointer: "/K7", Name: "K7", Folded: true}}},
		{"many members, none", manyMembers(40, ""), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := strictjson.Scan([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(rep.Duplicates) != fmt.Sprint(tc.want) {
				t.Errorf("duplicates %+v, want %+v", rep.Duplicates, tc.want)
			}
		})
	}
}

// manyMembers is an object of n distinct members k0..k(n-1), and extra as one more when not empty.
func manyMembers(n int, extra string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, `"k%d":%d,`, i, i)
	}
	if extra != "" {
		fmt.Fprintf(&b, `%q:0,`, extra)
	}
	b.WriteString(`"last":0}`)
	return b.String()
}

func TestScanRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, body, detail string
	}{
		{"lone high surrogate", `{"customer_hash":"\ud800x"}`, `the string at "/customer_hash" has an escaped high surrogate (\ud800)`},
		{"lone low surrogate", `{"customer_hash":"\udfffx"}`, `the string at "/customer_hash" has an escaped low surrogate (\udfff)`},
		{"high at the end", `{"a":"x\uDBFF"}`, `high surrogate (\udbff)`},
		{"high then high", `{"a":"\ud800\ud800"}`, `high surrogate (\ud800)`},
		{"high then a plain escape", `{"a":"\ud800\n"}`, `high surrogate`},
		{"reversed pair", `{"a":"\ude00\ud83d"}`, `low surrogate (\ude00)`},
		{"in a member name", `{"a":{"\ud800":1}}`, `a member name in "/a" has an escaped high surrogate`},
		{"deep in an array", `{"a":[1,{"b":["\udc00"]}]}`, `the string at "/a/1/b/0"`},
		{"top-level string", `"\ud800"`, `the string at the top level`},
		{"invalid UTF-8", "{\"name\":\"a\xffb\"}", `the string at "/name" is not valid UTF-8`},
		{"UTF-8 of a surrogate", "{\"name\":\"\xed\xa0\x80\"}", `is not valid UTF-8`},
		{"invalid UTF-8 in a name", "{\"a\xff\":1}", `a member name in the top level is not valid UTF-8`},
		{"not JSON", `{"a":}`, `not valid JSON`},
		{"trailing", `{} {}`, `not valid JSON`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := strictjson.Scan([]byte(tc.body))
			if tally.ErrorCode(err) != tally.EINVALID || !strings.Contains(tally.ErrorMessage(err), tc.detail) {
				t.Errorf("Scan(%s) = %v, want EINVALID with %q", tc.body, err, tc.detail)
			}
		})
	}
}

func TestScanAccepts(t *testing.T) {
	for _, body := range []string{
		`{"a":"\ud83d\ude00"}`, `{"a":"\\ud800"}`, `{"a":"\\\ud83d\ude00"}`, `{"\ud83d\ude00":"😀"}`,
		`[]`, `{}`, `[[],{}]`, `"x"`, `12.5e3`, `true`, `null`, ` { "a" : [ 1 , 2 ] } `, `{"a":"\uFFFD"}`,
	} {
		rep, err := strictjson.Scan([]byte(body))
		if err != nil || len(rep.Duplicates) != 0 || len(rep.NULs) != 0 {
			t.Errorf("Scan(%s) = %+v, %v", body, rep, err)
		}
	}
}

func TestScanNULs(t *testing.T) {
	rep, err := strictjson.Scan([]byte(`{"a":"x\u0000y","b":["\\u0000","ok\u0000"],"n\u0000":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/a", "/b/1", "/n\x00"}; !slices.Equal(rep.NULs, want) {
		t.Errorf("NULs %q, want %q", rep.NULs, want)
	}
}

func TestScanAllocates(t *testing.T) {
	body := []byte(`{"idempotency_key":"k-1","customer_hash":"cust \"42\"","kind":"accrual","amount":10,` +
		`"reason":"caf\u00e9","metadata":{"order":"A-1","lines":[{"sku":"x"},{"sku":"y"}]}}`)
	if n := testing.AllocsPerRun(100, func() { strictjson.Scan(body) }); n > 2 {
		t.Errorf("Scan allocates %v times for a clean body, want only its two stacks", n)
	}
}

// FuzzScan checks Scan against encoding/json: it never panics; on a text json.Valid accepts, it finds
// exactly the duplicate names (compared exactly) that a json.Decoder token walk finds, it refuses every
// text whose strings encoding/json would decode with a U+FFFD not in the text, and it reports an escaped
// NUL exactly when a decoded string holds one.
func FuzzScan(f *testing.F) {
	for _, seed := range []string{
		`{"amount":1,"amount":500}`, `{"amount":1,"AMOUNT":500}`, `{"a":"\ud800x"}`, `{"a":"\udfffx"}`,
		`{"a":"\ud83d\ude00"}`, `{"a":"x\u0000y"}`, `{"a":{"b":[{"c":1,"c":2}]}}`, `{"\u0061":1,"a":2}`,
		"{\"a\":\"\xff\"}", `[1,"2",{"3":4}]`, `{"a":"\\ud800"}`, manyMembers(20, "k3"), `{"detail":{"eventBody":{}}}`,
		`{"a":"\ud800\udc00\ud800"}`, `"\ufffd"`, `{"x":"\uFFFD","x":1}`, `{"":A}`, `1e700`, `-0.5E+2`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := strictjson.Scan(b)
		if !json.Valid(b) {
			if err == nil {
				t.Fatalf("Scan accepts invalid JSON %q", b)
			}
			return
		}
		strs, dups, nul := tokenWalk(t, b)
		if err != nil {
			msg := tally.ErrorMessage(err)
			switch {
			case strings.Contains(msg, "UTF-8") && !utf8.Valid(b):
			case strings.Contains(msg, "surrogate") && slices.ContainsFunc(strs, func(s string) bool { return strings.ContainsRune(s, '\uFFFD') }):
			default:
				t.Fatalf("Scan(%q) refuses valid JSON: %v", b, err)
			}
			return
		}
		var exact []string
		for _, d := range rep.Duplicates {
			if !d.Folded {
				exact = append(exact, d.Parent+"\x00"+d.Name)
			}
		}
		if fmt.Sprint(exact) != fmt.Sprint(dups) {
			t.Fatalf("Scan(%q) duplicates %q, token walk %q", b, exact, dups)
		}
		if (len(rep.NULs) > 0) != nul {
			t.Fatalf("Scan(%q) NULs %q, token walk found NUL: %v", b, rep.NULs, nul)
		}
		raw := bytes.Contains(b, []byte("\uFFFD")) || bytes.Contains(bytes.ToLower(b), []byte(`\ufffd`))
		for _, s := range strs {
			if strings.ContainsRune(s, '\uFFFD') && !raw {
				t.Fatalf("Scan(%q) accepts a text whose string %q decodes with U+FFFD", b, s)
			}
		}
	})
}

// tokenWalk decodes every string of a valid JSON text with encoding/json and lists the duplicate member
// names, as parent pointer and name, and whether a decoded string holds a NUL.
func tokenWalk(t *testing.T, b []byte) (strs, dups []string, nul bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	type frame struct {
		object bool
		names  map[string]bool
		key    bool // the next string token is a member name
		name   string
		index  int
	}
	var stack []*frame
	pointer := func(n int) string {
		var p strings.Builder
		for _, f := range stack[:n] {
			p.WriteByte('/')
			if !f.object {
				p.WriteString(strconv.Itoa(f.index))
				continue
			}
			p.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(f.name))
		}
		return p.String()
	}
	// afterValue moves the enclosing container past the value just read.
	afterValue := func() {
		if len(stack) == 0 {
			return
		}
		if top := stack[len(stack)-1]; top.object {
			top.key = true
		} else {
			top.index++
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return strs, dups, nul
		}
		if err != nil {
			t.Fatalf("token walk of valid JSON %q: %v", b, err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, &frame{object: true, names: map[string]bool{}, key: true})
			case '[':
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
				afterValue()
			}
			continue
		case string:
			strs = append(strs, v)
			nul = nul || strings.ContainsRune(v, 0)
			if top != nil && top.object && top.key {
				top.name, top.key = v, false
				if top.names[v] {
					dups = append(dups, pointer(len(stack)-1)+"\x00"+v)
				}
				top.names[v] = true
				continue
			}
		}
		afterValue()
	}
}

func BenchmarkScan(b *testing.B) {
	body := []byte(`{"idempotency_key":"k-1","customer_hash":"c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21","kind":"accrual",` +
		`"amount":10,"reason":"chat","metadata":{"order":"A-1","lines":[{"sku":"x"},{"sku":"y"}]}}`)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := strictjson.Scan(body); err != nil {
			b.Fatal(err)
		}
	}
}
