package filter

import (
	"cmp"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
)

// A node is one element of a compiled expression. eval returns the node's value and whether it is
// defined: a missing path is undefined, which is not the same as JSON null.
type node interface {
	eval(event map[string]any) (v any, defined bool)
	// format writes the node in canonical form: paths as $.name or $['name'], strings single-quoted,
	// keywords lower case, and only the parentheses that precedence needs.
	format(b *strings.Builder)
	prec() int
}

// Binding strength, weakest first, for format.
const (
	precOr = iota + 1
	precAnd
	precCompare
	precOperand
)

// formatIn writes n, in parentheses if it binds less tightly than least.
func formatIn(b *strings.Builder, n node, least int) {
	if n.prec() >= least {
		n.format(b)
		return
	}
	b.WriteByte('(')
	n.format(b)
	b.WriteByte(')')
}

// orNode and andNode hold two or more operands: a flat list keeps the tree as shallow as the source's
// parentheses, whatever the length of a chain of ORs.
type orNode []node

func (n orNode) eval(event map[string]any) (any, bool) {
	for _, x := range n {
		if v, ok := x.eval(event); ok && truthy(v) {
			return true, true
		}
	}
	return false, true
}

func (n orNode) format(b *strings.Builder) { formatList(b, n, " or ", precOr) }
func (n orNode) prec() int                 { return precOr }

type andNode []node

func (n andNode) eval(event map[string]any) (any, bool) {
	for _, x := range n {
		if v, ok := x.eval(event); !ok || !truthy(v) {
			return false, true
		}
	}
	return true, true
}

func (n andNode) format(b *strings.Builder) { formatList(b, n, " and ", precAnd) }
func (n andNode) prec() int                 { return precAnd }

func formatList(b *strings.Builder, xs []node, sep string, least int) {
	for i, x := range xs {
		if i > 0 {
			b.WriteString(sep)
		}
		formatIn(b, x, least)
	}
}

// compareNode is l op r for the six comparison operators. Following JSONata, a comparison with an
// undefined operand is false, for != as much as for =.
type compareNode struct {
	op   tokenKind
	l, r node
}

var compareText = map[tokenKind]string{
	tokEq: "=", tokNe: "!=", tokLt: "<", tokLe: "<=", tokGt: ">", tokGe: ">=",
}

func (n *compareNode) eval(event map[string]any) (any, bool) {
	l, lok := n.l.eval(event)
	r, rok := n.r.eval(event)
	if !lok || !rok {
		return false, true
	}
	switch n.op {
	case tokEq:
		return equal(l, r), true
	case tokNe:
		return !equal(l, r), true
	}
	c, ok := order(l, r)
	if !ok {
		return false, true
	}
	switch n.op {
	case tokLt:
		return c < 0, true
	case tokLe:
		return c <= 0, true
	case tokGt:
		return c > 0, true
	default:
		return c >= 0, true
	}
}

func (n *compareNode) format(b *strings.Builder) {
	formatIn(b, n.l, precOperand)
	b.WriteString(" " + compareText[n.op] + " ")
	formatIn(b, n.r, precOperand)
}

func (n *compareNode) prec() int { return precCompare }

// inNode is l in r: whether r, an array, holds a value equal to l. A value r that is not an array
// counts as an array of one, as in JSONata.
type inNode struct{ l, r node }

func (n *inNode) eval(event map[string]any) (any, bool) {
	l, lok := n.l.eval(event)
	r, rok := n.r.eval(event)
	if !lok || !rok {
		return false, true
	}
	rs, ok := r.([]any)
	if !ok {
		return equal(l, r), true
	}
	for _, x := range rs {
		if equal(l, x) {
			return true, true
		}
	}
	return false, true
}

func (n *inNode) format(b *strings.Builder) {
	formatIn(b, n.l, precOperand)
	b.WriteString(" in ")
	formatIn(b, n.r, precOperand)
}

func (n *inNode) prec() int { return precCompare }

// pathNode walks the event: $ alone is the whole event.
type pathNode []step

// step is one field name or, if isIndex, one array index, negative counting from the end.
type step struct {
	name    string
	index   int64
	isIndex bool
}

func (n pathNode) eval(event map[string]any) (any, bool) {
	var v any = event
	for _, s := range n {
		var ok bool
		if v, ok = s.apply(v); !ok {
			return nil, false
		}
	}
	return v, true
}

func (s step) apply(v any) (any, bool) {
	if !s.isIndex {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		v, ok = m[s.name]
		return v, ok
	}
	a, ok := v.([]any)
	if !ok {
		// JSONata treats a single value as an array of one.
		return v, s.index == 0 || s.index == -1
	}
	i := s.index
	if i < 0 {
		i += int64(len(a))
	}
	if i < 0 || i >= int64(len(a)) {
		return nil, false
	}
	return a[i], true
}

func (n pathNode) format(b *strings.Builder) {
	b.WriteByte('$')
	for _, s := range n {
		switch {
		case s.isIndex:
			b.WriteString("[" + strconv.FormatInt(s.index, 10) + "]")
		case isPlainName(s.name):
			b.WriteString("." + s.name)
		default:
			b.WriteByte('[')
			quote(b, s.name)
			b.WriteByte(']')
		}
	}
}

func (n pathNode) prec() int { return precOperand }

// isPlainName reports whether name can follow a '.' unquoted. It is stricter than the lexer, which
// also takes non-ASCII letters, so that canonical forms stay ASCII where they can.
func isPlainName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && isDigit(c)) {
			return false
		}
	}
	return name != ""
}

// literal is a string, a number, a bool or nil (JSON null).
type literal struct{ v any }

func (n literal) eval(map[string]any) (any, bool) { return n.v, true }

func (n literal) format(b *strings.Builder) {
	switch v := n.v.(type) {
	case string:
		quote(b, v)
	case number:
		b.WriteString(v.String())
	case bool:
		b.WriteString(strconv.FormatBool(v))
	default:
		b.WriteString("null")
	}
}

func (n literal) prec() int { return precOperand }

// quote writes s single-quoted, escaping only what the lexer needs escaped. It works byte by byte so
// that invalid UTF-8 survives a round trip unchanged.
func quote(b *strings.Builder, s string) {
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[c>>4])
			b.WriteByte("0123456789abcdef"[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
}

// arrayNode is an array constructor. As in JSONata, undefined elements are left out.
type arrayNode []node

func (n arrayNode) eval(event map[string]any) (any, bool) {
	a := make([]any, 0, len(n))
	for _, x := range n {
		if v, ok := x.eval(event); ok {
			a = append(a, v)
		}
	}
	return a, true
}

func (n arrayNode) format(b *strings.Builder) {
	b.WriteByte('[')
	formatList(b, n, ", ", 0)
	b.WriteByte(']')
}

func (n arrayNode) prec() int { return precOperand }

// callNode is a call of a builtin function.
type callNode struct {
	name string
	fn   builtin
	args []node
}

func (n *callNode) eval(event map[string]any) (any, bool) { return n.fn.call(n.args, event) }

func (n *callNode) format(b *strings.Builder) {
	b.WriteString(n.name + "(")
	formatList(b, n.args, ", ", 0)
	b.WriteByte(')')
}

func (n *callNode) prec() int { return precOperand }

// builtin is a function: its arity and its body, which evaluates its own arguments.
type builtin struct {
	arity int
	call  func(args []node, event map[string]any) (any, bool)
}

// builtins are the functions, by lower-case name. Following JSONata, a function of an undefined
// argument is undefined, except exists; unlike JSONata, an argument of the wrong type makes the result
// undefined rather than an error, so a rule never fails at match time.
var builtins = map[string]builtin{
	"contains":  {2, callContains},
	"exists":    {1, callExists},
	"lowercase": {1, callLowercase},
	"not":       {1, callNot},
	"uppercase": {1, callUppercase},
}

func callExists(args []node, event map[string]any) (any, bool) {
	_, ok := args[0].eval(event)
	return ok, true
}

func callNot(args []node, event map[string]any) (any, bool) {
	v, ok := args[0].eval(event)
	if !ok {
		return nil, false
	}
	return !truthy(v), true
}

func callContains(args []node, event map[string]any) (any, bool) {
	s, ok := evalString(args[0], event)
	sub, ok2 := evalString(args[1], event)
	if !ok || !ok2 {
		return nil, false
	}
	return strings.Contains(s, sub), true
}

func callLowercase(args []node, event map[string]any) (any, bool) {
	s, ok := evalString(args[0], event)
	if !ok {
		return nil, false
	}
	return strings.ToLower(s), true
}

func callUppercase(args []node, event map[string]any) (any, bool) {
	s, ok := evalString(args[0], event)
	if !ok {
		return nil, false
	}
	return strings.ToUpper(s), true
}

func evalString(n node, event map[string]any) (string, bool) {
	v, _ := n.eval(event)
	s, ok := v.(string)
	return s, ok
}

// truthy converts a defined value to a boolean as JSONata's $boolean does.
func truthy(v any) bool {
	if n, ok := numberOf(v); ok {
		return n.isInt && n.i != 0 || !n.isInt && n.f != 0 && !math.IsNaN(n.f)
	}
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return v != ""
	case []any:
		for _, x := range v {
			if truthy(x) {
				return true
			}
		}
	case map[string]any:
		return len(v) > 0
	}
	return false
}

// equal is JSONata's deep equality: numbers by value whatever their representation, arrays and objects
// member by member, and values of different types never equal.
func equal(a, b any) bool {
	if x, ok := numberOf(a); ok {
		y, ok := numberOf(b)
		if !ok {
			return false
		}
		c, ok := compareNumbers(x, y)
		return ok && c == 0
	}
	switch a := a.(type) {
	case nil:
		return b == nil
	case string:
		b, ok := b.(string)
		return ok && a == b
	case bool:
		b, ok := b.(bool)
		return ok && a == b
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !equal(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, x := range a {
			if y, ok := b[k]; !ok || !equal(x, y) {
				return false
			}
		}
		return true
	}
	return false
}

// order compares two numbers or two strings (by bytes, which is Unicode code point order for UTF-8).
// Any other pair is unordered.
func order(a, b any) (int, bool) {
	if x, ok := numberOf(a); ok {
		if y, ok := numberOf(b); ok {
			return compareNumbers(x, y)
		}
		return 0, false
	}
	if x, ok := a.(string); ok {
		if y, ok := b.(string); ok {
			return strings.Compare(x, y), true
		}
	}
	return 0, false
}

// number is a numeric value. Integers that fit in int64 are kept exact, so that large IDs compare
// correctly when the event was decoded with UseNumber.
type number struct {
	i     int64
	f     float64
	isInt bool
}

func (n number) String() string {
	if n.isInt {
		return strconv.FormatInt(n.i, 10)
	}
	s := strconv.FormatFloat(n.f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eIN") {
		s += ".0" // keep it a float when it is read back: -0 and 1e21 are not integers here
	}
	return s
}

// parseNumber reads a number in JSON syntax. It fails on syntax errors and on overflow.
func parseNumber(s string) (number, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return number{i: i, isInt: true}, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return number{}, err
	}
	return number{f: f}, nil
}

// numberOf returns v as a number if it is one: the types encoding/json decodes to, plus int and int64
// for events built in Go.
func numberOf(v any) (number, bool) {
	switch v := v.(type) {
	case number:
		return v, true
	case float64:
		return number{f: v}, true
	case json.Number:
		n, err := parseNumber(string(v))
		if errors.Is(err, strconv.ErrRange) {
			// An event may carry 1e400: it is larger than any literal, which is what ±Inf says.
			f, _ := strconv.ParseFloat(string(v), 64)
			return number{f: f}, true
		}
		return n, err == nil
	case int:
		return number{i: int64(v), isInt: true}, true
	case int64:
		return number{i: v, isInt: true}, true
	}
	return number{}, false
}

// compareNumbers compares exactly, even an int64 with a float64; NaN is unordered.
func compareNumbers(a, b number) (int, bool) {
	switch {
	case a.isInt && b.isInt:
		return cmp.Compare(a.i, b.i), true
	case a.isInt:
		return compareIntFloat(a.i, b.f)
	case b.isInt:
		c, ok := compareIntFloat(b.i, a.f)
		return -c, ok
	case math.IsNaN(a.f) || math.IsNaN(b.f):
		return 0, false
	}
	return cmp.Compare(a.f, b.f), true
}

func compareIntFloat(i int64, f float64) (int, bool) {
	switch {
	case math.IsNaN(f):
		return 0, false
	case f >= 0x1p63:
		return -1, true
	case f < -0x1p63:
		return 1, true
	}
	t := math.Trunc(f) // now an exact int64
	if c := cmp.Compare(i, int64(t)); c != 0 {
		return c, true
	}
	return cmp.Compare(t, f), true // i == t: f's fraction decides
}
