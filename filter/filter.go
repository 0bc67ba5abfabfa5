// Package filter is a small, JSONata-like language of boolean expressions over events. Earning rules
// use it to decide whether an incoming event earns points:
//
//	$.type = 'WebChat' AND $.state = 'closed'
//	$.mediaType in ['MESSAGE', 'CHAT'] and $.interactingDurationMs > 60000
//	exists($.user_id) and not(contains(lowercase($.subject), 'test'))
//
// # Grammar
//
//	expr       = and { OR and }
//	and        = unary { AND unary }
//	unary      = NOT unary | comparison
//	comparison = operand [ ( "=" | "!=" | "<" | "<=" | ">" | ">=" | IN ) operand ]
//	operand    = string | number | TRUE | FALSE | NULL | path | call | array | "(" expr ")"
//	path       = ( "$" | name ) { "." name | "[" string "]" | "[" integer "]" }
//	name       = identifier | "`" any text but a backquote "`"
//	call       = [ "$" ] identifier "(" [ expr { "," expr } ] ")"
//	array      = "[" [ expr { "," expr } ] "]"
//
// Precedence, tightest first: comparison, NOT, AND, OR; comparisons do not chain. Keywords (and, or,
// not, in, true, false, null) and function names are case-insensitive; a field whose name is a
// keyword is reached as $.in or $['in'], not as a bare name. Strings are single- or double-quoted with
// JSON's escapes plus \'. Numbers are JSON numbers, optionally negative. $.items[-1] is the last item.
// A 'not' followed by '(' is the function, so not($.a) = false compares its result.
//
// The functions are exists(x), contains(s, sub), lowercase(s), uppercase(s) and not(x); each may also
// be spelt with JSONata's '$' prefix: $exists(x).
//
// # Semantics
//
// The semantics follow JSONata. A path to a missing field, or through a value that is not an object,
// is undefined, which is distinct from null: exists($.a) is true for "a": null. Any comparison with an
// undefined operand is false, so both $.missing = 'x' and $.missing != 'x' are false; use
// not(exists($.x)) to test for absence. = and != compare deeply; values of different types are never
// equal, so 1 != '1' is true. Numbers compare by value whatever their representation (float64,
// json.Number, int, int64). <, <=, > and >= order two numbers or two strings (by Unicode code point)
// and are false for any other pair, where JSONata would raise an error. x in a is true when the array
// a holds a value equal to x; a value that is not an array counts as an array of one, and so does an
// indexed value that is not an array: $.type[0] is $.type.
//
// AND and OR treat their operands as JSONata's $boolean does: false, null, undefined, 0, "", [] and {}
// are false, and an array is true when any member is. The expression matches when its value is true in
// that sense, so a bare path matches when it holds a non-empty string, a non-zero number, true, or a
// non-empty array or object. not(x) and NOT x are undefined when x is, so NOT $.missing does not match,
// while NOT $.missing = 'x' does. The string functions are undefined when an argument is undefined or
// not a string.
//
// Unlike JSONata, a field step on an array does not map over its members: $.items.sku is undefined
// and $.items[0].sku is the first item's.
package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits on a source, so that a rule cannot exhaust the stack or the parser's time.
const (
	MaxSourceLen = 4096 // bytes
	MaxDepth     = 64   // nested parentheses, array constructors, calls and NOTs
)

// Expr is a compiled expression. It is immutable, and safe for concurrent use.
type Expr struct {
	src  string
	root node
}

// SyntaxError reports a source that does not compile: where, as a byte offset into the source, and
// what was expected there.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("filter: at offset %d: %s", e.Offset, e.Msg) }

// Compile parses src. Its errors are *SyntaxError.
func Compile(src string) (*Expr, error) {
	if len(src) > MaxSourceLen {
		return nil, &SyntaxError{Offset: MaxSourceLen, Msg: fmt.Sprintf(
			"the expression is %d bytes long; the limit is %d", len(src), MaxSourceLen)}
	}
	root, err := parse(src)
	if err != nil {
		return nil, err
	}
	return &Expr{src: src, root: root}, nil
}

// String returns the source that e was compiled from.
func (e *Expr) String() string { return e.src }

// Match reports whether event matches e. event is a decoded JSON object: numbers may be float64 or
// json.Number.
func (e *Expr) Match(event map[string]any) bool {
	v, ok := e.root.eval(event)
	return ok && truthy(v)
}

// MatchJSON decodes body, which must hold one JSON object, with UseNumber, and matches it against e.
func MatchJSON(e *Expr, body []byte) (bool, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return false, fmt.Errorf("filter: decoding the event: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return false, errors.New("filter: decoding the event: data after the JSON object")
	}
	event, ok := v.(map[string]any)
	if !ok {
		return false, errors.New("filter: the event is not a JSON object")
	}
	return e.Match(event), nil
}

// canonical returns e in a normal form that compiles to an equivalent expression; the fuzz test uses
// it to check the parser against itself.
func (e *Expr) canonical() string {
	var b strings.Builder
	e.root.format(&b)
	return b.String()
}
