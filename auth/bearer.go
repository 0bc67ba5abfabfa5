package auth

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/tally-ledger/tally"
)

// ErrNoToken is returned by BearerToken when a request carries no bearer token. Challenge answers it
// without an error code, as RFC 6750 §3.1 asks of requests that lack authentication.
var ErrNoToken = tally.Errorf(tally.EUNAUTHORIZED, "missing bearer token")

// errMalformedAuthorization is an Authorization header that names the Bearer scheme but is not one
// (RFC 6750 §3.1 invalid_request).
var errMalformedAuthorization = tally.Errorf(tally.EINVALID, "malformed Authorization header")

// BearerToken returns the token of the request's "Authorization: Bearer" header (RFC 6750 §2.1; tokens in
// the query or the form are not accepted). ErrNoToken when there is none; an EINVALID error when the
// header is malformed or repeated.
func BearerToken(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return "", ErrNoToken
	}
	if len(values) > 1 {
		return "", errMalformedAuthorization
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", ErrNoToken // another scheme: no bearer token
	}
	token = strings.TrimLeft(token, " ")
	if !isB64Token(token) {
		return "", errMalformedAuthorization
	}
	return token, nil
}

// isB64Token reports whether s is a b64token of RFC 6750 §2.1.
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/':
		default:
			return false
		}
	}
	return true
}

// Challenge answers a request that BearerToken, Verifier.Verify or a scope check refused, with the
// WWW-Authenticate header of RFC 6750 §3 and an RFC 9457 problem body:
//
//   - err nil or EFORBIDDEN: 403, error="insufficient_scope" naming scope (the scope the route needs);
//   - ErrNoToken: 401 with no error code;
//   - EINVALID (a malformed header): 400, error="invalid_request";
//   - EUNAVAILABLE: 503 with Retry-After and no challenge: the token may be fine, keys could not be read;
//   - any other: 401, error="invalid_token" with the reason in error_description.
//
// scope may be empty for a route that needs no particular scope.
func Challenge(w http.ResponseWriter, err error, scope string) {
	status := SetChallenge(w.Header(), err, scope)
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}{"about:blank", http.StatusText(status), status, ChallengeDetail(err, scope)})
}

// SetChallenge sets the headers of Challenge's answer to err (WWW-Authenticate, or Retry-After) and
// returns its status, for a caller that writes a problem body of its own.
func SetChallenge(h http.Header, err error, scope string) int {
	status, params := http.StatusUnauthorized, []string{`realm="tally"`}
	switch code := tally.ErrorCode(err); {
	case err == nil || code == tally.EFORBIDDEN:
		status = http.StatusForbidden
		params = append(params, `error="insufficient_scope"`,
			`error_description="`+quotable("the token lacks scope "+scope)+`"`)
	case errors.Is(err, ErrNoToken):
	case code == tally.EINVALID:
		status = http.StatusBadRequest
		params = append(params, `error="invalid_request"`,
			`error_description="`+quotable(tally.ErrorMessage(err))+`"`)
	case code == tally.EUNAVAILABLE:
		status, params = http.StatusServiceUnavailable, nil
		h.Set("Retry-After", "1")
	default:
		params = append(params, `error="invalid_token"`,
			`error_description="`+quotable(tally.ErrorMessage(err))+`"`)
	}
	if params != nil {
		if scope != "" {
			params = append(params, `scope="`+quotable(scope)+`"`)
		}
		h.Set("WWW-Authenticate", "Bearer "+strings.Join(params, ", "))
	}
	return status
}

// ChallengeDetail is the human-readable reason of Challenge's answer to err.
func ChallengeDetail(err error, scope string) string {
	if err == nil {
		return "the token lacks scope " + scope
	}
	return tally.ErrorMessage(err)
}

// quotable keeps the characters RFC 6750 §3 allows in error_description and scope (%x20-21 / %x23-5B /
// %x5D-7E), turning double quotes into single ones and anything else into a space, so that no value can
// break out of its quotes.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r < 0x20 || r > 0x7e || r == '\\':
			return ' '
		}
		return r
	}, s)
}
