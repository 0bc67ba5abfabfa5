package filter

import (
	"testing"
)

// FuzzMatchJSON fuzzes an expression and an event body together: whatever the two, compiling and
// matching never panics, a body that is not one JSON object is refused, and matching is deterministic.
// (FuzzCompile checks the parser against itself on fixed events.)
func FuzzMatchJSON(f *testing.F) {
	for _, c := range matchCases {
		f.Add(c.src, []byte(events[c.event]))
	}
	f.Add(`$.a[0].b == 1 and exists($.c)`, []byte(`{"a":[{"b":1}],"c":null}`))
	f.Add(`lowercase($.x) in ["a", "b"]`, []byte(`{"x":"A"}`))
	f.Add(`$.n > 1e308`, []byte(`{"n":1e309}`))
	f.Add(`$.n == 9007199254740993`, []byte(`{"n":9007199254740993}`))
	f.Add(`not(contains($.s, ""))`, []byte(`{"s":"\ud800"}`))
	f.Add(`$["a b"]["c"] != true`, []byte(`[1]`))
	f.Fuzz(func(t *testing.T, src string, body []byte) {
		e, err := Compile(src)
		if err != nil {
			return
		}
		a, errA := MatchJSON(e, body)
		b, errB := MatchJSON(e, body)
		if a != b || (errA == nil) != (errB == nil) {
			t.Fatalf("%q on %q: %v %v, then %v %v", src, body, a, errA, b, errB)
		}
		if errA != nil && a {
			t.Fatalf("%q on %q: matched and failed: %v", src, body, errA)
		}
	})
}
