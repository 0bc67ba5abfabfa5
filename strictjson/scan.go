// Package strictjson finds what encoding/json accepts in a JSON text without a word but a ledger must
// not: member names repeated within one object (encoding/json keeps the last, other parsers the first,
// so that a proxy and Tally can read different amounts from one body), escaped surrogates that pair with
// nothing (encoding/json decodes each to U+FFFD, so that different texts decode alike: RFC 8259 §8.2
// calls their behaviour unpredictable), strings that are not UTF-8, and escaped NUL characters (which no
// PostgreSQL text can hold).
//
// It is a single pass over the bytes that also checks that they are JSON (as json.Valid), and allocates
// only its two stacks for a usual body with no escaped member names and no finding; what to refuse is
// the caller's choice, by where each finding is.
package strictjson

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tally-ledger/tally"
)

// Duplicate is a member name that an object repeats.
type Duplicate struct {
	Pointer string // RFC 6901 JSON Pointer of the repeated member
	Parent  string // JSON Pointer of the object that repeats it
	Name    string
	// Folded is true when the names differ but only in case, as encoding/json matches struct fields:
	// {"amount":1,"AMOUNT":500} decodes into a struct as 500. Only members of the top-level object are
	// compared this way, since only that object is decoded into structs.
	Folded bool
}

// Report lists what a scan found that a caller may refuse.
type Report struct {
	Duplicates []Duplicate
	NULs       []string // JSON Pointers of the strings (values or member names) holding an escaped NUL
}

// maxDepth bounds the recursion on texts not checked beforehand (the API refuses deeper than 50).
const maxDepth = 10000

// Scan walks one JSON text. It fails with EINVALID for a string that is not UTF-8, an escaped lone
// surrogate, or a text that is not JSON (a caller that wants encoding/json's account of a syntax error
// asks json.Valid when Scan fails), and reports duplicate member names and escaped NULs for the caller
// to judge.
func Scan(b []byte) (Report, error) {
	s := scanner{b: b, path: make([]pathElem, 0, 16), names: make([]span, 0, 32)}
	if err := s.value(0); err != nil {
		return Report{}, err
	}
	s.space()
	if s.i != len(s.b) {
		return Report{}, s.syntax()
	}
	return s.rep, nil
}

// span is a decoded member name: the bytes [start, end) of the input, or of the arena when the name
// has escapes. Spans hold no pointer, so the scanner's stacks cost the garbage collector nothing.
type span struct {
	start, end int
	arena      bool
}

// pathElem is one step of the pointer to the value being scanned.
type pathElem struct {
	name  span // objects: the member's name
	index int  // arrays: the element's index
	array bool
}

type scanner struct {
	b     []byte
	i     int
	path  []pathElem
	names []span // the names of the members of every open object, innermost last
	arena []byte // decoded member names that have escapes
	rep   Report
}

// text is the decoded name a span stands for.
func (s *scanner) text(n span) []byte {
	if n.arena {
		return s.arena[n.start:n.end]
	}
	return s.b[n.start:n.end]
}

func (s *scanner) value(depth int) error {
	if depth > maxDepth {
		return tally.Errorf(tally.EINVALID, "the body nests deeper than %d levels", maxDepth)
	}
	s.space()
	if s.i >= len(s.b) {
		return s.syntax()
	}
	switch s.b[s.i] {
	case '{':
		return s.object(depth + 1)
	case '[':
		return s.array(depth + 1)
	case '"':
		_, nul, err := s.str(false)
		if nul {
			s.rep.NULs = append(s.rep.NULs, s.pointer(len(s.path)))
		}
		return err
	}
	start := s.i
	for s.i < len(s.b) && !isDelimiter(s.b[s.i]) {
		s.i++
	}
	if lit := s.b[start:s.i]; !isLiteral(lit) && !isNumber(lit) {
		s.i = start
		return s.syntax()
	}
	return nil
}

func isLiteral(b []byte) bool {
	return string(b) == "true" || string(b) == "false" || string(b) == "null"
}

// isNumber reports whether b is a number of RFC 8259's grammar.
func isNumber(b []byte) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i, n = i+1, n+1
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}

func isDelimiter(c byte) bool {
	switch c {
	case ',', '}', ']', ':', '"', '{', '[', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// expect consumes c after optional white space.
func (s *scanner) expect(c byte) error {
	s.space()
	if s.i >= len(s.b) || s.b[s.i] != c {
		return s.syntax()
	}
	s.i++
	return nil
}

func (s *scanner) object(depth int) error {
	s.i++ // {
	first := len(s.names)
	defer func() { s.names = s.names[:first] }()
	var seen map[string]bool // names (and fold keys), once the object is too large to compare member by member
	s.space()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.syntax()
		}
		name, nul, err := s.str(true)
		if err != nil {
			return err
		}
		s.path = append(s.path, pathElem{name: name})
		if nul {
			s.rep.NULs = append(s.rep.NULs, s.pointer(len(s.path)))
		}
		s.checkDuplicate(s.text(name), s.names[first:], &seen, depth == 1)
		s.names = append(s.names, name)
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := s.value(depth); err != nil {
			return err
		}
		s.path = s.path[:len(s.path)-1]
		s.space()
		if s.i >= len(s.b) {
			return s.syntax()
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.syntax()
		}
	}
}

// linearNames is how many members an object may have before its names are kept in a map.
const linearNames = 16

// checkDuplicate reports name when an earlier member of its object (earlier) has the same name or, in
// the top-level object (fold), the same name but for case.
func (s *scanner) checkDuplicate(name []byte, earlier []span, seen *map[string]bool, fold bool) {
	dup, folded := false, false
	if len(earlier) < linearNames {
		for _, e := range earlier {
			if bytes.Equal(s.text(e), name) {
				dup = true
				break
			}
		}
		for _, e := range earlier {
			if !dup && fold && bytes.EqualFold(s.text(e), name) {
				dup, folded = true, true
			}
		}
	} else {
		if *seen == nil {
			*seen = make(map[string]bool, 2*len(earlier))
			for _, e := range earlier {
				(*seen)[string(s.text(e))] = true
				if fold {
					(*seen)[foldKey(s.text(e))] = true
				}
			}
		}
		switch {
		case (*seen)[string(name)]:
			dup = true
		case fold && (*seen)[foldKey(name)]:
			dup, folded = true, true
		}
		(*seen)[string(name)] = true
		if fold {
			(*seen)[foldKey(name)] = true
		}
	}
	if dup {
		s.rep.Duplicates = append(s.rep.Duplicates, Duplicate{
			Pointer: s.pointer(len(s.path)), Parent: s.pointer(len(s.path) - 1), Name: string(name), Folded: folded,
		})
	}
}

// foldKey is a key equal for two names exactly when bytes.EqualFold holds for them (as encoding/json
// folds struct field names), kept apart from exact names by a prefix no UTF-8 text has.
func foldKey(name []byte) string {
	var b strings.Builder
	b.WriteByte(0xff)
	for _, r := range string(name) {
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

// foldRune is the smallest rune of r's case-folding orbit (as encoding/json's foldRune).
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

func (s *scanner) array(depth int) error {
	s.i++ // [
	s.space()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	s.path = append(s.path, pathElem{array: true})
	at := len(s.path) - 1
	for {
		if err := s.value(depth); err != nil {
			return err
		}
		s.space()
		if s.i >= len(s.b) {
			return s.syntax()
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.path[at].index++
		case ']':
			s.i++
			s.path = s.path[:at]
			return nil
		default:
			return s.syntax()
		}
	}
}

// str reads a string at s.i (an opening quote). For a member name (name) it returns where its decoded
// text is: in the input when the name has no escape, else in the arena. nul reports an escaped NUL.
func (s *scanner) str(name bool) (text span, nul bool, err error) {
	s.i++ // "
	start := s.i
	decoded := -1 // where the decoded text starts in the arena, once an escape is met in a name
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			end := s.i
			s.i++
			if decoded >= 0 {
				s.arena = append(s.arena, s.b[start:end]...)
				return span{decoded, len(s.arena), true}, nul, nil
			}
			return span{start, end, false}, nul, nil
		case c < 0x20:
			return span{}, false, s.syntax()
		case c < utf8.RuneSelf && c != '\\':
			s.i++
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && n == 1 {
				return span{}, false, s.refuse(name, "is not valid UTF-8 (byte 0x%02x at offset %d)", c, s.i)
			}
			s.i += n
		default: // a backslash
			if name && decoded < 0 {
				decoded = len(s.arena)
			}
			if name {
				s.arena = append(s.arena, s.b[start:s.i]...)
			}
			r, err := s.escape(name)
			if err != nil {
				return span{}, false, err
			}
			if r == 0 {
				nul = true
			}
			if name {
				s.arena = utf8.AppendRune(s.arena, r)
			}
			start = s.i
		}
	}
	return span{}, false, s.syntax()
}

// escape reads the escape sequence at s.i (a backslash) and returns the character it stands for; a
// surrogate pair stands for one character.
func (s *scanner) escape(name bool) (rune, error) {
	if s.i+1 >= len(s.b) {
		return 0, s.syntax()
	}
	c := s.b[s.i+1]
	s.i += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
	default:
		return 0, s.syntax()
	}
	r, ok := s.hex4(s.i)
	if !ok {
		return 0, s.syntax()
	}
	s.i += 4
	switch {
	case r >= 0xdc00 && r <= 0xdfff:
		return 0, s.refuse(name, `has an escaped low surrogate (\u%04x) that follows no high surrogate`, r)
	case r >= 0xd800 && r <= 0xdbff:
		low, ok := rune(0), false
		if s.i+6 <= len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
			low, ok = s.hex4(s.i + 2)
		}
		if !ok || low < 0xdc00 || low > 0xdfff {
			return 0, s.refuse(name, `has an escaped high surrogate (\u%04x) that no low surrogate follows`, r)
		}
		s.i += 6
		return 0x10000 + (r-0xd800)<<10 + (low - 0xdc00), nil
	}
	return r, nil
}

func (s *scanner) hex4(at int) (rune, bool) {
	if at+4 > len(s.b) {
		return 0, false
	}
	var r rune
	for _, c := range s.b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// refuse is the error for a string that cannot be taken: a member name (inName) or the value at the
// current path.
func (s *scanner) refuse(inName bool, format string, args ...any) error {
	where := "the string at " + describe(s.pointer(len(s.path)))
	if inName {
		where = "a member name in " + describe(s.pointer(len(s.path)))
	}
	return tally.Errorf(tally.EINVALID, "%s %s", where, fmt.Sprintf(format, args...))
}

// describe names a pointer in a message.
func describe(pointer string) string {
	if pointer == "" {
		return "the top level"
	}
	return strconv.Quote(pointer)
}

func (s *scanner) syntax() error {
	return tally.Errorf(tally.EINVALID, "the body is not valid JSON (at byte %d)", s.i)
}

// pointer is the RFC 6901 JSON Pointer of the first n steps of the current path.
func (s *scanner) pointer(n int) string {
	var b strings.Builder
	for _, e := range s.path[:n] {
		b.WriteByte('/')
		if e.array {
			b.WriteString(strconv.Itoa(e.index))
			continue
		}
		for _, r := range string(s.text(e.name)) {
			switch r {
			case '~':
				b.WriteString("~0")
			case '/':
				b.WriteString("~1")
			default:
				b.WriteRune(r)
			}
		}
	}
	return b.String()
}
