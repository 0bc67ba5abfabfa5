package genesysmirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Client calls the Genesys Cloud API (https://api.<domain>) with the tokens of Tokens.
type Client struct {
	API    string // base URL, e.g. https://api.mypurecloud.com
	Tokens *Tokens
	HTTP   *http.Client
}

// RetryAfterError is a 429 (or 503) answer: the caller should try again after Wait.
type RetryAfterError struct {
	Status int
	Wait   time.Duration
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("genesys: status %d, retry after %s", e.Status, e.Wait)
}

// StatusError is any other non-2xx answer.
type StatusError struct {
	Op     string
	Status int
}

func (e *StatusError) Error() string { return fmt.Sprintf("genesys: %s: status %d", e.Op, e.Status) }

// maxContact bounds the external contact read back (Genesys contacts are a few KiB).
const maxContact = 1 << 20

// SetCustomFields sets fields among the custom fields of an external contact. The PUT of an external
// contact replaces it, so the contact is read first and written back whole, only its customFields
// changed: names, phone numbers and the schema reference the custom fields depend on are kept.
func (c *Client) SetCustomFields(ctx context.Context, contactID string, fields map[string]any) error {
	path := "/api/v2/externalcontacts/contacts/" + url.PathEscape(contactID)
	body, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	var contact map[string]any
	if err := json.Unmarshal(body, &contact); err != nil || contact == nil {
		return errors.New("genesys: the external contact is not a JSON object")
	}
	custom, _ := contact["customFields"].(map[string]any)
	if custom == nil {
		custom = map[string]any{}
	}
	for k, v := range fields {
		custom[k] = v
	}
	contact["customFields"] = custom
	out, err := json.Marshal(contact)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodPut, path, out)
	return err
}

// do sends one request with a token; when the API answers 401 the token is dropped and the request
// sent once more with a new one.
func (c *Client) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	for try := 0; ; try++ {
		tok, err := c.Tokens.Token(ctx)
		if err != nil {
			return nil, err
		}
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, c.API+path, rd)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.http().Do(req)
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxContact))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusUnauthorized && try == 0:
			c.Tokens.Invalidate(ctx, tok)
			continue
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
			return nil, &RetryAfterError{Status: resp.StatusCode, Wait: retryAfter(resp.Header.Get("Retry-After"))}
		case resp.StatusCode/100 != 2:
			return nil, &StatusError{Op: method + " external contact", Status: resp.StatusCode}
		}
		return data, err
	}
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// maxRetryAfter bounds the wait a Retry-After can ask for: a value past it (or one that would overflow)
// is read as this long, so that a mistaken header cannot park the mirror for years.
const maxRetryAfter = time.Hour

// retryAfter reads a Retry-After header (seconds, or an HTTP date), within 0 and maxRetryAfter; a
// missing or unreadable one waits a second. The worker never waits less than its own backoff.
func retryAfter(v string) time.Duration {
	if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
		if s >= int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), maxRetryAfter)
	}
	return time.Second
}
