package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/strictjson"
)

// maxJSONDepth is the deepest nesting accepted, as Genesys Data Actions allow.
const maxJSONDepth = 50

// readJSON reads a body of a shape Tally defines (rewards, status, lookups): a checked body (readBody)
// that checkTallyBody accepts.
func readJSON(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, rep, err := readBody(w, r, limit)
	if err != nil {
		return nil, err
	}
	if err := checkTallyBody(rep); err != nil {
		return nil, err
	}
	return body, nil
}

// checkTallyBody refuses, in a body of a shape Tally defines, any object that repeats a member name, at
// any depth, and any string holding an escaped NUL. Its top-level object is decoded into a struct,
// where encoding/json matches names without regard to case, so names there that differ only in case are
// repeats too.
func checkTallyBody(rep strictjson.Report) error {
	if err := refuseDuplicates(rep, true, everywhere); err != nil {
		return err
	}
	return refuseNULs(rep)
}

// everywhere counts a repeated member name in any object.
func everywhere(string) bool { return true }

// readBody reads a request body bounded by limit bytes (chunked or not) and checks that it is one JSON
// value of acceptable depth whose strings are UTF-8 without escaped lone surrogates. It does not decode
// it; it returns what else the scan found (repeated names, escaped NULs) for the caller to judge by the
// body's shape.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, strictjson.Report, error) {
	// The Content-Type is not checked: Genesys sends application/json, and a body that parses as JSON
	// is taken whatever a hand-made request called it.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, strictjson.Report{}, tally.Errorf(tally.ETOOLARGE, "the body is larger than %d bytes", limit)
		}
		return nil, strictjson.Report{}, tally.Errorf(codeMalformed, "the body could not be read")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, strictjson.Report{}, tally.Errorf(codeMalformed, "the body is empty: a JSON object is expected")
	}
	if depth(body) > maxJSONDepth {
		return nil, strictjson.Report{}, tally.Errorf(codeMalformed, "the body nests deeper than %d levels", maxJSONDepth)
	}
	// One pass both checks that the body is JSON and finds what encoding/json would take silently.
	// encoding/json would turn each invalid byte (JSON is UTF-8, RFC 8259 §8.1), and each escaped
	// surrogate that pairs with nothing (§8.2), into U+FFFD, so that two different customer identifiers
	// could decode, and hash, to one. A body that is JSON but has such a string is unusable: 422.
	rep, err := strictjson.Scan(body)
	if err != nil {
		if !json.Valid(body) {
			return nil, strictjson.Report{}, tally.Errorf(codeMalformed, "the body is not valid JSON: %s", syntaxError(body))
		}
		return nil, strictjson.Report{}, err
	}
	return body, rep, nil
}

// refuseDuplicates refuses a body whose objects repeat a member name: encoding/json keeps the last value
// and other parsers the first, so that {"amount":1,"amount":500} could be checked as 1 upstream and
// credited as 500 here. Only repeats in objects at the pointers that reads accepts count, and names
// that differ only in case only when the top-level object is decoded into a struct (structs).
func refuseDuplicates(rep strictjson.Report, structs bool, reads func(parent string) bool) error {
	for _, d := range rep.Duplicates {
		if !reads(d.Parent) || d.Folded && !structs {
			continue
		}
		if d.Folded {
			return tally.Errorf(tally.EINVALID, "member %q differs only in case from an earlier member of the same object (at %q): member names are matched without regard to case, so each may appear once", d.Name, d.Pointer)
		}
		return tally.Errorf(tally.EINVALID, "member %q appears more than once in the same object (at %q): JSON parsers disagree on which value counts, so each name may appear once", d.Name, d.Pointer)
	}
	return nil
}

// refuseNULs refuses a body with an escaped NUL (\u0000) in any string: no Tally field may hold one
// (PostgreSQL's text cannot), and metadata is kept verbatim for systems that may not either.
func refuseNULs(rep strictjson.Report) error {
	if len(rep.NULs) > 0 {
		return tally.Errorf(tally.EINVALID, "the string at %q contains an escaped NUL character (\\u0000)", rep.NULs[0])
	}
	return nil
}

// syntaxError describes where a body stops being JSON.
func syntaxError(body []byte) string {
	var v any
	err := json.Unmarshal(body, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	if err != nil {
		return err.Error()
	}
	return "unexpected content"
}

// depth is the deepest nesting of objects and arrays in a JSON text (in any text: it counts the brackets
// outside strings), checked before the text is parsed so that parsing recurses no deeper.
func depth(b []byte) int {
	d, max, inString := 0, 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			d++
			if d > max {
				max = d
			}
		case c == '}' || c == ']':
			d--
		}
	}
	return max
}

// decodeInto decodes a checked body into v: a body that is JSON but has values of the wrong type is
// invalid (422), not malformed. Unknown fields are ignored: Genesys bodies carry more than Tally reads.
func decodeInto(body []byte, v any) error {
	return decode(body, v, false)
}

// decodeStrict is decodeInto for bodies written for Tally alone, where an unknown field is a mistake
// worth refusing: a misspelt balance_version would otherwise silently turn off the version check.
func decodeStrict(body []byte, v any) error {
	return decode(body, v, true)
}

func decode(body []byte, v any, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if field == "" {
				return tally.Errorf(tally.EINVALID, "the body must be a JSON object")
			}
			return tally.Errorf(tally.EINVALID, "field %q must be a %s, not %s", field, te.Type.String(), te.Value)
		}
		if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return tally.Errorf(tally.EINVALID, "unknown field %s", field)
		}
		return tally.Errorf(tally.EINVALID, "the body does not fit the expected shape: %v", err)
	}
	return nil
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	writeRaw(w, status, append(body, '\n'))
}

// writeRaw answers with a JSON body already encoded.
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body)
}
