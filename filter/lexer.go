package filter

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// tokenKind classifies a token.
type tokenKind uint8

const (
	tokEOF        tokenKind = iota
	tokError                // a lexical error; val holds the message
	tokIdent                // a name or a keyword: type, AND, exists
	tokQuotedName           // a backquoted name: `odd key`; val holds the name
	tokVar                  // a $-prefixed name: $exists; val holds the name without the $
	tokDollar               // $ alone: the event
	tokString               // val holds the decoded text
	tokNumber               // num holds the value
	tokDot
	tokComma
	tokLParen
	tokRParen
	tokLBrack
	tokRBrack
	tokEq
	tokNe
	tokLt
	tokLe
	tokGt
	tokGe
)

// token is one lexeme. pos and end are byte offsets into the source, so that errors can say where.
type token struct {
	kind     tokenKind
	pos, end int
	val      string
	num      number
}

// lex splits src into tokens ending with tokEOF. It stops at the first lexical error, which it returns
// as a final tokError: the parser reports that error only when it reaches it, so an earlier syntax
// error is reported first.
func lex(src string) []token {
	l := lexer{src: src}
	var toks []token
	for {
		t := l.next()
		toks = append(toks, t)
		if t.kind == tokEOF || t.kind == tokError {
			return toks
		}
	}
}

type lexer struct {
	src string
	pos int
}

// punctuation maps the one- and two-byte operators to their kinds.
var punctuation = map[string]tokenKind{
	".": tokDot, ",": tokComma, "(": tokLParen, ")": tokRParen, "[": tokLBrack, "]": tokRBrack,
	"=": tokEq, "!=": tokNe, "<": tokLt, "<=": tokLe, ">": tokGt, ">=": tokGe,
}

// misspelt holds operators from other languages, with the spelling this one uses.
var misspelt = map[string]string{
	"==": "=", "<>": "!=", "&&": "and", "||": "or", "!": "not", "&": "and", "|": "or",
}

func (l *lexer) next() token {
	l.skipSpace()
	start := l.pos
	if start >= len(l.src) {
		return token{kind: tokEOF, pos: start, end: start}
	}
	c := l.src[start]
	r, size := utf8.DecodeRuneInString(l.src[start:])
	switch {
	case c == '\'' || c == '"':
		return l.string(c)
	case c == '`':
		return l.quotedName()
	case isDigit(c) || c == '-' && isDigit(l.byteAt(start+1)):
		return l.number()
	case c == '$':
		l.pos++
		if r, _ := utf8.DecodeRuneInString(l.src[l.pos:]); isIdentStart(r) {
			name := l.ident()
			return token{kind: tokVar, pos: start, end: l.pos, val: name}
		}
		return token{kind: tokDollar, pos: start, end: l.pos}
	case isIdentStart(r):
		name := l.ident()
		return token{kind: tokIdent, pos: start, end: l.pos, val: name}
	}
	for _, n := range []int{2, 1} {
		if start+n > len(l.src) {
			continue
		}
		op := l.src[start : start+n]
		if kind, ok := punctuation[op]; ok {
			l.pos += n
			return token{kind: kind, pos: start, end: l.pos}
		}
		if use, ok := misspelt[op]; ok {
			return l.errorf(start, "'%s' is not an operator; use '%s'", op, use)
		}
	}
	switch r {
	case '‘', '’', '“', '”':
		return l.errorf(start, "unexpected %q; quote strings with straight quotes ' or \"", r)
	case '-':
		return l.errorf(start, "unexpected '-': it may only start a negative number")
	case utf8.RuneError:
		if size == 1 {
			return l.errorf(start, "unexpected byte %#x: the source is not valid UTF-8", c)
		}
	}
	return l.errorf(start, "unexpected character %q", r)
}

func (l *lexer) errorf(pos int, format string, args ...any) token {
	return token{kind: tokError, pos: pos, end: pos, val: fmt.Sprintf(format, args...)}
}

// byteAt returns the byte at i, or 0 past the end.
func (l *lexer) byteAt(i int) byte {
	if i < len(l.src) {
		return l.src[i]
	}
	return 0
}

// skipSpace skips Unicode white space, so that a no-break space pasted from a document is harmless.
func (l *lexer) skipSpace() {
	for l.pos < len(l.src) {
		r, size := utf8.DecodeRuneInString(l.src[l.pos:])
		if !unicode.IsSpace(r) {
			return
		}
		l.pos += size
	}
}

func (l *lexer) ident() string {
	start := l.pos
	for l.pos < len(l.src) {
		r, size := utf8.DecodeRuneInString(l.src[l.pos:])
		if !isIdentStart(r) && !unicode.IsDigit(r) {
			break
		}
		l.pos += size
	}
	return l.src[start:l.pos]
}

func (l *lexer) digits() {
	for isDigit(l.byteAt(l.pos)) {
		l.pos++
	}
}

// number scans -?digits(.digits)?([eE][+-]?digits)?. A '.' not followed by a digit ends the number,
// so that $.items[0].sku lexes as expected.
func (l *lexer) number() token {
	start := l.pos
	if l.src[l.pos] == '-' {
		l.pos++
	}
	l.digits()
	if l.byteAt(l.pos) == '.' && isDigit(l.byteAt(l.pos+1)) {
		l.pos++
		l.digits()
	}
	if c := l.byteAt(l.pos); c == 'e' || c == 'E' {
		l.pos++
		if c := l.byteAt(l.pos); c == '+' || c == '-' {
			l.pos++
		}
		if !isDigit(l.byteAt(l.pos)) {
			return l.errorf(start, "malformed number %q: expected digits in the exponent", l.src[start:l.pos])
		}
		l.digits()
	}
	end := l.pos
	if r, _ := utf8.DecodeRuneInString(l.src[l.pos:]); isIdentStart(r) {
		return l.errorf(start, "malformed number %q", l.src[start:end]+l.ident())
	}
	n, err := parseNumber(l.src[start:end])
	if err != nil {
		return l.errorf(start, "number %s is out of range", l.src[start:end])
	}
	return token{kind: tokNumber, pos: start, end: end, num: n}
}

// string scans a quoted string with JSON's backslash escapes, plus \' for single-quoted strings.
func (l *lexer) string(quote byte) token {
	start := l.pos
	l.pos++
	var b strings.Builder
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch c {
		case quote:
			l.pos++
			return token{kind: tokString, pos: start, end: l.pos, val: b.String()}
		case '\\':
			if bad := l.escape(&b); bad.kind == tokError {
				return bad
			}
		default:
			b.WriteByte(c)
			l.pos++
		}
	}
	return l.errorf(start, "unterminated string: expected a closing %c", quote)
}

var escapes = map[byte]byte{
	'"': '"', '\'': '\'', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t',
}

// escape decodes the escape sequence at l.pos into b. It returns a tokError token on failure and a
// zero token otherwise.
func (l *lexer) escape(b *strings.Builder) token {
	start := l.pos
	c := l.byteAt(start + 1)
	if e, ok := escapes[c]; ok {
		b.WriteByte(e)
		l.pos += 2
		return token{}
	}
	if c != 'u' {
		if c == 0 && start+1 >= len(l.src) {
			return l.errorf(start, "unterminated string: the source ends in an escape")
		}
		if r, _ := utf8.DecodeRuneInString(l.src[start+1:]); unicode.IsPrint(r) {
			return l.errorf(start, "unknown escape '\\%c' in string", r)
		}
		return l.errorf(start, "unknown escape in string: '\\' followed by %q", c)
	}
	r, ok := l.hex4(start + 2)
	if !ok {
		return l.errorf(start, "expected 4 hex digits after '\\u'")
	}
	l.pos += 6
	if utf16.IsSurrogate(r) {
		// A UTF-16 surrogate pair spells one code point; a lone surrogate becomes U+FFFD, as in encoding/json.
		if l.byteAt(l.pos) == '\\' && l.byteAt(l.pos+1) == 'u' {
			if r2, ok := l.hex4(l.pos + 2); ok {
				if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
					l.pos += 6
					r = pair
				}
			}
		}
		if utf16.IsSurrogate(r) {
			r = utf8.RuneError
		}
	}
	b.WriteRune(r)
	return token{}
}

func (l *lexer) hex4(i int) (rune, bool) {
	if i+4 > len(l.src) {
		return 0, false
	}
	v, err := strconv.ParseUint(l.src[i:i+4], 16, 32)
	return rune(v), err == nil
}

func (l *lexer) quotedName() token {
	start := l.pos
	n := strings.IndexByte(l.src[start+1:], '`')
	if n < 0 {
		return l.errorf(start, "unterminated name: expected a closing `")
	}
	l.pos = start + 1 + n + 1
	return token{kind: tokQuotedName, pos: start, end: l.pos, val: l.src[start+1 : start+1+n]}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isIdentStart(r rune) bool { return r == '_' || unicode.IsLetter(r) }
