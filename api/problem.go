package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/tally-ledger/tally"
)

// statusOf is the one table that maps the error vocabulary to HTTP statuses.
var statusOf = map[tally.Code]int{
	tally.EINVALID:      http.StatusUnprocessableEntity,
	tally.ENOTFOUND:     http.StatusNotFound,
	tally.ECONFLICT:     http.StatusConflict,
	tally.EVERSION:      http.StatusConflict,
	tally.EIDEMPOTENCY:  http.StatusConflict,
	tally.EINSUFFICIENT: http.StatusUnprocessableEntity,
	tally.EFROZEN:       http.StatusForbidden,
	tally.ECLOSED:       http.StatusForbidden,
	tally.EALREADY:      http.StatusConflict,
	tally.EOUTOFSTOCK:   http.StatusConflict,
	tally.ECOSTCHANGED:  http.StatusConflict,
	tally.ETIER:         http.StatusForbidden,
	tally.EUNAUTHORIZED: http.StatusUnauthorized,
	tally.EFORBIDDEN:    http.StatusForbidden,
	tally.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	tally.EOVERLOADED:   http.StatusTooManyRequests,
	tally.EUNAVAILABLE:  http.StatusServiceUnavailable,
	tally.EINTERNAL:     http.StatusInternalServerError,
	codeMalformed:       http.StatusBadRequest,
	codeMethod:          http.StatusMethodNotAllowed,
	codeMediaType:       http.StatusUnsupportedMediaType,
}

// Codes of the HTTP layer's own, beside the domain's.
const (
	codeMalformed tally.Code = "malformed_request"
	codeMethod    tally.Code = "method_not_allowed"
	codeMediaType tally.Code = "unsupported_media_type"
)

// titles are the short human summaries of each code, as RFC 9457 "title".
var titles = map[tally.Code]string{
	tally.EINVALID:      "Invalid request",
	tally.ENOTFOUND:     "Not found",
	tally.ECONFLICT:     "Conflict",
	tally.EVERSION:      "Balance version conflict",
	tally.EIDEMPOTENCY:  "Idempotency key reused",
	tally.EINSUFFICIENT: "Insufficient points",
	tally.EFROZEN:       "Account frozen",
	tally.ECLOSED:       "Account closed",
	tally.EALREADY:      "Already reversed",
	tally.EOUTOFSTOCK:   "Out of stock",
	tally.ECOSTCHANGED:  "Cost changed",
	tally.ETIER:         "Tier too low",
	tally.EUNAUTHORIZED: "Unauthorized",
	tally.EFORBIDDEN:    "Forbidden",
	tally.ETOOLARGE:     "Request body too large",
	tally.EOVERLOADED:   "Too many requests",
	tally.EUNAVAILABLE:  "Service unavailable",
	tally.EINTERNAL:     "Internal error",
	codeMalformed:       "Malformed request",
	codeMethod:          "Method not allowed",
	codeMediaType:       "Unsupported media type",
}

// Problem is an RFC 9457 problem details body, with Tally's stable code.
type Problem struct {
	Type      string     `json:"type"`
	Title     string     `json:"title"`
	Status    int        `json:"status"`
	Detail    string     `json:"detail,omitempty"`
	Instance  string     `json:"instance,omitempty"`
	Code      tally.Code `json:"code"`
	RequestID string     `json:"request_id,omitempty"`
	// Balance and PointCost are the current figures a refusal was decided on (insufficient points, a
	// changed cost), so that a client can show them without another request.
	Balance   *int64 `json:"balance,omitempty"`
	PointCost *int64 `json:"point_cost,omitempty"`
}

// problemFor builds the problem for err. Internal errors keep their cause out of the body.
func problemFor(err error) Problem {
	code := tally.ErrorCode(err)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		code = tally.EUNAVAILABLE
		err = tally.Errorf(code, "the request timed out and a write may or may not have been applied; retrying with the same idempotency key is safe and returns the outcome")
	}
	status, ok := statusOf[code]
	if !ok {
		code, status = tally.EINTERNAL, http.StatusInternalServerError
	}
	p := Problem{Type: "https://tally.dev/problems/" + string(code), Title: titles[code], Status: status, Code: code}
	if code != tally.EINTERNAL {
		p.Detail = tally.ErrorMessage(err)
		var e *tally.Error
		if errors.As(err, &e) {
			if v, ok := e.Details["balance"]; ok {
				p.Balance = &v
			}
			if v, ok := e.Details["point_cost"]; ok {
				p.PointCost = &v
			}
		}
	}
	return p
}

// retryAfter is how many seconds a 429 or 503 tells the caller to wait; an error may carry its own.
func retryAfter(err error) int {
	var r interface{ RetryAfterSeconds() int }
	if errors.As(err, &r) {
		if s := r.RetryAfterSeconds(); s > 0 {
			return s
		}
	}
	return 1
}

// writeError answers with the problem for err and logs what the caller does not see.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := problemFor(err)
	p.Instance = r.URL.Path
	p.RequestID = requestID(r.Context())
	if p.Status >= 500 || p.Status == http.StatusTooManyRequests {
		if p.Status == http.StatusServiceUnavailable || p.Status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfter(err)))
		}
		level := slog.LevelWarn
		switch p.Status {
		case http.StatusInternalServerError:
			level = slog.LevelError
		case http.StatusTooManyRequests:
			// Shedding is counted by tally_shed_requests_total; a line per shed request would add work
			// exactly when the server has none to spare.
			level = slog.LevelDebug
		}
		logger(r.Context()).Log(r.Context(), level, "request failed", "status", p.Status, "code", p.Code, "err", err)
	}
	writeProblem(w, p)
}

func writeProblem(w http.ResponseWriter, p Problem) {
	body, _ := json.Marshal(p)
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	w.Write(append(body, '\n'))
}
