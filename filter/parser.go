package filter

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// parser is a recursive-descent parser over the tokens of one source, one function per grammar rule.
// Each function that can recurse without consuming a closing token counts itself in depth, which
// bounds the recursion, and so the Go stack, by MaxDepth.
type parser struct {
	src   string
	toks  []token
	i     int
	depth int
}

func parse(src string) (node, error) {
	p := &parser{src: src, toks: lex(src)}
	n, err := p.or("")
	if err != nil {
		return nil, err
	}
	switch t := p.peek(); t.kind {
	case tokEOF:
		return n, nil
	case tokRParen:
		return nil, p.errorf(t.pos, "unbalanced ')': there is no '(' to close")
	default:
		return nil, p.unexpected(t, "an operator or end of input")
	}
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) peekNext() token { return p.toks[min(p.i+1, len(p.toks)-1)] }

// next consumes a token. The last token, tokEOF or tokError, is never consumed: it stays to be reported.
func (p *parser) next() token {
	t := p.toks[p.i]
	if p.i < len(p.toks)-1 {
		p.i++
	}
	return t
}

func (p *parser) enter(t token) error {
	p.depth++
	if p.depth > MaxDepth {
		return p.errorf(t.pos, "expression nests deeper than %d levels", MaxDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

// or parses and-expressions joined by OR. after says what came before, for errors: " after 'AND'".
func (p *parser) or(after string) (node, error) {
	x, err := p.and(after)
	if err != nil {
		return nil, err
	}
	xs := orNode{x}
	for isKeyword(p.peek(), "or") {
		op := p.next()
		y, err := p.and(p.after(op))
		if err != nil {
			return nil, err
		}
		xs = append(xs, y)
	}
	if len(xs) == 1 {
		return x, nil
	}
	return xs, nil
}

func (p *parser) and(after string) (node, error) {
	x, err := p.unary(after)
	if err != nil {
		return nil, err
	}
	xs := andNode{x}
	for isKeyword(p.peek(), "and") {
		op := p.next()
		y, err := p.unary(p.after(op))
		if err != nil {
			return nil, err
		}
		xs = append(xs, y)
	}
	if len(xs) == 1 {
		return x, nil
	}
	return xs, nil
}

// unary parses the prefix NOT, which binds less tightly than a comparison: NOT $.a = 1 is
// not($.a = 1). A 'not' followed by '(' is the function instead, so not($.a) = false compares.
func (p *parser) unary(after string) (node, error) {
	t := p.peek()
	if !isKeyword(t, "not") || p.peekNext().kind == tokLParen {
		return p.comparison(after)
	}
	p.next()
	if err := p.enter(t); err != nil {
		return nil, err
	}
	defer p.leave()
	x, err := p.unary(p.after(t))
	if err != nil {
		return nil, err
	}
	return &callNode{name: "not", fn: builtins["not"], args: []node{x}}, nil
}

func (p *parser) comparison(after string) (node, error) {
	l, err := p.operand("an expression" + after)
	if err != nil {
		return nil, err
	}
	op := p.peek()
	_, isCompare := compareText[op.kind]
	isIn := isKeyword(op, "in")
	if !isCompare && !isIn {
		return l, nil
	}
	p.next()
	r, err := p.operand("a value" + p.after(op))
	if err != nil {
		return nil, err
	}
	if t := p.peek(); compareText[t.kind] != "" || isKeyword(t, "in") {
		return nil, p.errorf(t.pos, "comparisons do not chain: join them with 'and'")
	}
	if isIn {
		return &inNode{l: l, r: r}, nil
	}
	return &compareNode{op: op.kind, l: l, r: r}, nil
}

// operand parses a value: a literal, a path, a call, an array or a parenthesised expression. want
// describes it for the error when none is found.
func (p *parser) operand(want string) (node, error) {
	t := p.peek()
	switch t.kind {
	case tokString:
		p.next()
		return literal{t.val}, nil
	case tokNumber:
		p.next()
		return literal{t.num}, nil
	case tokLParen:
		return p.paren()
	case tokLBrack:
		return p.array()
	case tokDollar, tokQuotedName:
		return p.path()
	case tokVar:
		if p.peekNext().kind == tokLParen {
			return p.call()
		}
		return nil, p.errorf(t.pos, "variables are not supported: did you mean '$.%s'?", t.val)
	case tokIdent:
		switch {
		case p.peekNext().kind == tokLParen:
			return p.call()
		case isKeyword(t, "true"), isKeyword(t, "false"):
			p.next()
			return literal{isKeyword(t, "true")}, nil
		case isKeyword(t, "null"):
			p.next()
			return literal{nil}, nil
		case !isKeyword(t, "and") && !isKeyword(t, "or") && !isKeyword(t, "not") && !isKeyword(t, "in"):
			return p.path()
		}
	}
	return nil, p.unexpected(t, want)
}

func (p *parser) paren() (node, error) {
	open := p.next()
	if err := p.enter(open); err != nil {
		return nil, err
	}
	defer p.leave()
	x, err := p.or(p.after(open))
	if err != nil {
		return nil, err
	}
	if t := p.next(); t.kind != tokRParen {
		return nil, p.unexpected(t, fmt.Sprintf("')' to close the '(' at offset %d", open.pos))
	}
	return x, nil
}

func (p *parser) array() (node, error) {
	open := p.next()
	if err := p.enter(open); err != nil {
		return nil, err
	}
	defer p.leave()
	xs, err := p.list(open, tokRBrack)
	return arrayNode(xs), err
}

// list parses comma-separated expressions after the opening token open, up to the closing token.
func (p *parser) list(open token, closing tokenKind) ([]node, error) {
	if p.peek().kind == closing {
		p.next()
		return nil, nil
	}
	var xs []node
	after := p.after(open)
	for {
		x, err := p.or(after)
		if err != nil {
			return nil, err
		}
		xs = append(xs, x)
		t := p.next()
		switch t.kind {
		case closing:
			return xs, nil
		case tokComma:
			after = p.after(t)
		default:
			closer := map[tokenKind]string{tokRBrack: "]", tokRParen: ")"}[closing]
			return nil, p.unexpected(t, fmt.Sprintf("',' or '%s' to close the '%s' at offset %d",
				closer, p.text(open), open.pos))
		}
	}
}

func (p *parser) call() (node, error) {
	name := p.next()
	open := p.next()
	lower := strings.ToLower(name.val)
	fn, ok := builtins[lower]
	if !ok {
		return nil, p.errorf(name.pos, "unknown function '%s': the functions are %s",
			p.text(name), strings.Join(slices.Sorted(maps.Keys(builtins)), ", "))
	}
	if err := p.enter(open); err != nil {
		return nil, err
	}
	defer p.leave()
	args, err := p.list(open, tokRParen)
	if err != nil {
		return nil, err
	}
	if len(args) != fn.arity {
		plural := "s"
		if fn.arity == 1 {
			plural = ""
		}
		return nil, p.errorf(name.pos, "%s takes %d argument%s, not %d", p.text(name), fn.arity, plural, len(args))
	}
	return &callNode{name: lower, fn: fn, args: args}, nil
}

// path parses $, a bare name or a backquoted name, then any number of .name, ['name'] and [index].
func (p *parser) path() (node, error) {
	var steps pathNode
	if t := p.next(); t.kind != tokDollar {
		steps = append(steps, step{name: t.val})
	}
	for {
		switch p.peek().kind {
		case tokDot:
			dot := p.next()
			switch n := p.next(); n.kind {
			case tokIdent, tokQuotedName:
				steps = append(steps, step{name: n.val})
			case tokNumber:
				return nil, p.errorf(n.pos, "expected a field name after '.', found number %s: index arrays with [%s]",
					p.text(n), p.text(n))
			default:
				return nil, p.unexpected(n, "a field name"+p.after(dot))
			}
		case tokLBrack:
			open := p.next()
			switch k := p.next(); {
			case k.kind == tokString:
				steps = append(steps, step{name: k.val})
			case k.kind == tokNumber && k.num.isInt:
				steps = append(steps, step{index: k.num.i, isIndex: true})
			default:
				return nil, p.unexpected(k, "a quoted field name or an integer index"+p.after(open))
			}
			if t := p.next(); t.kind != tokRBrack {
				return nil, p.unexpected(t, fmt.Sprintf("']' to close the '[' at offset %d", open.pos))
			}
		default:
			return steps, nil
		}
	}
}

// isKeyword reports whether t is the keyword kw in any case. Comparing lengths first keeps the match
// ASCII-only: strings.EqualFold alone would take "falſe" (long s) for "false".
func isKeyword(t token, kw string) bool {
	return t.kind == tokIdent && len(t.val) == len(kw) && strings.EqualFold(t.val, kw)
}

func (p *parser) text(t token) string { return p.src[t.pos:t.end] }

func (p *parser) after(t token) string { return " after '" + p.text(t) + "'" }

func (p *parser) errorf(pos int, format string, args ...any) error {
	return &SyntaxError{Offset: pos, Msg: fmt.Sprintf(format, args...)}
}

// unexpected reports that t is not what the grammar wants. If t is a lexical error, that error is
// the better report.
func (p *parser) unexpected(t token, want string) error {
	if t.kind == tokError {
		return p.errorf(t.pos, "%s", t.val)
	}
	return p.errorf(t.pos, "expected %s, found %s", want, p.describe(t))
}

func (p *parser) describe(t token) string {
	const limit = 32
	text := p.text(t)
	if len(text) > limit {
		n := limit
		for n > 0 && !utf8.RuneStart(text[n]) {
			n--
		}
		text = text[:n] + "..."
	}
	switch t.kind {
	case tokEOF:
		return "end of input"
	case tokString:
		return "string " + text
	case tokNumber:
		return "number " + text
	}
	return "'" + text + "'"
}
