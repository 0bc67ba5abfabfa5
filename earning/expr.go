package earning

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Points expressions compute a rule's points from an event's fields in integer arithmetic only:
//
//	10 + handle_time_seconds / 60
//	min(50, $.interactingDurationMs / 60000 * 5)
//
//	expr    = term { ("+" | "-") term }
//	term    = unary { ("*" | "/" | "%") unary }
//	unary   = "-" unary | primary
//	primary = integer | field | call | "(" expr ")"
//	field   = [ "$." ] name { "." name }
//	call    = ("min" | "max") "(" expr { "," expr } ")"
//
// Division truncates toward zero (7 / 2 = 3). A field holds a number; a number with a fraction is
// truncated toward zero. A missing field, a field that is not a number, a division by zero or a result
// outside ±2^53 make the expression undefined: the rule then pays nothing for that event. A negative
// result pays nothing.

// Limits on an expression's source.
const (
	maxExprLen   = 1024
	maxExprDepth = 32
	exprBound    = int64(1) << 53 // every intermediate value stays within ±exprBound
)

// Expr is a compiled points expression; immutable and safe for concurrent use.
type Expr struct {
	src  string
	root exprNode
}

type exprNode interface {
	eval(fields map[string]any) (int64, bool)
}

// String returns the expression's source.
func (e *Expr) String() string { return e.src }

// Eval computes the expression over an event's fields; ok is false when it is undefined.
func (e *Expr) Eval(fields map[string]any) (int64, bool) { return e.root.eval(fields) }

// CompileExpr parses a points expression.
func CompileExpr(src string) (*Expr, error) {
	if len(src) > maxExprLen {
		return nil, fmt.Errorf("points expression is longer than %d bytes", maxExprLen)
	}
	p := &exprParser{src: src}
	p.lex()
	if p.err != nil {
		return nil, p.err
	}
	n, err := p.expr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != "eof" {
		return nil, fmt.Errorf("points expression: at offset %d: unexpected %q", t.pos, t.text)
	}
	return &Expr{src: src, root: n}, nil
}

type exprToken struct {
	kind string // "int", "name", "op", "eof"
	text string
	pos  int
}

type exprParser struct {
	src   string
	toks  []exprToken
	i     int
	depth int
	err   error
}

func (p *exprParser) lex() {
	s := p.src
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c >= '0' && c <= '9':
			j := i
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			p.toks = append(p.toks, exprToken{"int", s[i:j], i})
			i = j
		case c == '$' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] == '.' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			p.toks = append(p.toks, exprToken{"name", s[i:j], i})
			i = j
		case strings.IndexByte("+-*/%(),", c) >= 0:
			p.toks = append(p.toks, exprToken{"op", string(c), i})
			i++
		default:
			p.err = fmt.Errorf("points expression: at offset %d: unexpected character %q (integers, fields, + - * / %%, min, max and parentheses only)", i, c)
			return
		}
	}
	p.toks = append(p.toks, exprToken{"eof", "end of expression", len(s)})
}

func (p *exprParser) peek() exprToken { return p.toks[p.i] }

func (p *exprParser) next() exprToken {
	t := p.toks[p.i]
	if p.i < len(p.toks)-1 {
		p.i++
	}
	return t
}

func (p *exprParser) isOp(ops string) (string, bool) {
	t := p.peek()
	if t.kind == "op" && strings.Contains(ops, t.text) {
		return t.text, true
	}
	return "", false
}

func (p *exprParser) expr() (exprNode, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxExprDepth {
		return nil, fmt.Errorf("points expression nests deeper than %d levels", maxExprDepth)
	}
	x, err := p.term()
	if err != nil {
		return nil, err
	}
	for {
		op, ok := p.isOp("+-")
		if !ok {
			return x, nil
		}
		p.next()
		y, err := p.term()
		if err != nil {
			return nil, err
		}
		x = binary{op: op[0], x: x, y: y}
	}
}

func (p *exprParser) term() (exprNode, error) {
	x, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		op, ok := p.isOp("*/%")
		if !ok {
			return x, nil
		}
		p.next()
		y, err := p.unary()
		if err != nil {
			return nil, err
		}
		x = binary{op: op[0], x: x, y: y}
	}
}

func (p *exprParser) unary() (exprNode, error) {
	if _, ok := p.isOp("-"); ok {
		p.next()
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxExprDepth {
			return nil, fmt.Errorf("points expression nests deeper than %d levels", maxExprDepth)
		}
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return binary{op: '-', x: constant(0), y: x}, nil
	}
	return p.primary()
}

func (p *exprParser) primary() (exprNode, error) {
	t := p.next()
	switch {
	case t.kind == "int":
		n, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil || n > exprBound {
			return nil, fmt.Errorf("points expression: at offset %d: %s is too large", t.pos, t.text)
		}
		return constant(n), nil
	case t.kind == "op" && t.text == "(":
		x, err := p.expr()
		if err != nil {
			return nil, err
		}
		if _, ok := p.isOp(")"); !ok {
			return nil, fmt.Errorf("points expression: at offset %d: expected ')'", p.peek().pos)
		}
		p.next()
		return x, nil
	case t.kind == "name":
		if _, ok := p.isOp("("); ok {
			return p.call(t)
		}
		name := strings.TrimPrefix(t.text, "$.")
		if name == "" || name == "$" || strings.HasPrefix(name, "$") || strings.Contains(name, "..") || strings.HasSuffix(name, ".") {
			return nil, fmt.Errorf("points expression: at offset %d: %q is not a field", t.pos, t.text)
		}
		return field(strings.Split(name, ".")), nil
	}
	return nil, fmt.Errorf("points expression: at offset %d: expected a number, a field or '(', found %q", t.pos, t.text)
}

func (p *exprParser) call(name exprToken) (exprNode, error) {
	fn := strings.ToLower(name.text)
	if fn != "min" && fn != "max" {
		return nil, fmt.Errorf("points expression: at offset %d: unknown function %q (min and max only)", name.pos, name.text)
	}
	p.next() // (
	var args []exprNode
	for {
		x, err := p.expr()
		if err != nil {
			return nil, err
		}
		args = append(args, x)
		if _, ok := p.isOp(","); ok {
			p.next()
			continue
		}
		if _, ok := p.isOp(")"); ok {
			p.next()
			return extremum{max: fn == "max", args: args}, nil
		}
		return nil, fmt.Errorf("points expression: at offset %d: expected ',' or ')'", p.peek().pos)
	}
}

type constant int64

func (c constant) eval(map[string]any) (int64, bool) { return int64(c), true }

type field []string

func (f field) eval(fields map[string]any) (int64, bool) {
	var v any = fields
	for _, name := range f {
		m, ok := v.(map[string]any)
		if !ok {
			return 0, false
		}
		if v, ok = m[name]; !ok {
			return 0, false
		}
	}
	return integer(v)
}

// integer reads a JSON number as an integer, truncating a fraction toward zero.
func integer(v any) (int64, bool) {
	var f float64
	switch n := v.(type) {
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return bounded(i)
		}
		x, err := n.Float64()
		if err != nil {
			return 0, false
		}
		f = x
	case float64:
		f = n
	case int:
		return bounded(int64(n))
	case int64:
		return bounded(n)
	default:
		return 0, false
	}
	if math.IsNaN(f) || math.Abs(f) > float64(exprBound) {
		return 0, false
	}
	return int64(f), true
}

func bounded(n int64) (int64, bool) {
	if n < -exprBound || n > exprBound {
		return 0, false
	}
	return n, true
}

type binary struct {
	op   byte
	x, y exprNode
}

func (b binary) eval(fields map[string]any) (int64, bool) {
	x, ok := b.x.eval(fields)
	if !ok {
		return 0, false
	}
	y, ok := b.y.eval(fields)
	if !ok {
		return 0, false
	}
	var r int64
	switch b.op {
	case '+':
		r = x + y // both within ±2^53: no overflow
	case '-':
		r = x - y
	case '*':
		if x != 0 && y != 0 && (abs(x) > exprBound/abs(y)) {
			return 0, false
		}
		r = x * y
	case '/':
		if y == 0 {
			return 0, false
		}
		r = x / y
	case '%':
		if y == 0 {
			return 0, false
		}
		r = x % y
	}
	return bounded(r)
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

type extremum struct {
	max  bool
	args []exprNode
}

func (e extremum) eval(fields map[string]any) (int64, bool) {
	var best int64
	for i, a := range e.args {
		v, ok := a.eval(fields)
		if !ok {
			return 0, false
		}
		if i == 0 || e.max && v > best || !e.max && v < best {
			best = v
		}
	}
	return best, true
}
