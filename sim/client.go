package sim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// client sends the emulator's requests and counts every outcome.
type client struct {
	base          string
	http          *http.Client
	stats         *stats
	tokens        *tokenSource
	actionTimeout time.Duration // a Data Action's timeout, for everything but lookups
	maxWait       time.Duration // the longest Retry-After honoured
	maxAttempts   int           // attempts of one request through 429s and 503s
	reauths       atomic.Int64  // 401s answered by renewing the token
	waits         atomic.Int64  // Retry-After waits
}

// request is one HTTP request.
type request struct {
	endpoint, method, path string
	body                   []byte
	header                 http.Header
	bearer                 string
	basic                  [2]string
	timeout                time.Duration
	chunked                bool // send the body with Transfer-Encoding: chunked, as Genesys Data Actions may
}

// answer is what a request got: a status and body, or an error (timedOut when its timeout passed).
type answer struct {
	status     int
	body       []byte
	retryAfter time.Duration // 0 when absent
	err        error
	timedOut   bool
}

// known reports whether the server answered (whatever it answered).
func (a answer) known() bool { return a.err == nil }

func newHTTPClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
	}}
}

// send makes one attempt, bounded by the request's timeout, and records its outcome.
func (c *client) send(ctx context.Context, r request) answer {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var body io.Reader = bytes.NewReader(r.body)
	if r.chunked {
		body = io.NopCloser(body) // a body of unknown length goes chunked
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.base+r.path, body)
	if err != nil {
		return answer{err: err}
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if r.body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if r.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+r.bearer)
	}
	if r.basic[0] != "" {
		req.SetBasicAuth(r.basic[0], r.basic[1])
	}
	start := time.Now()
	res, err := c.http.Do(req)
	var a answer
	if err == nil {
		a.status = res.StatusCode
		a.retryAfter = parseRetryAfter(res.Header.Get("Retry-After"))
		a.body, err = io.ReadAll(res.Body)
		res.Body.Close()
	}
	if err != nil {
		// An answer cut short is an unknown outcome, like no answer at all.
		a = answer{err: err, timedOut: errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil}
	}
	c.stats.record(r.endpoint, a.status, a.timedOut, time.Since(start))
	return a
}

// patient sends r, and sends it again after each 429 or 503 once the Retry-After it carried has passed
// (up to maxAttempts attempts, each wait at most maxWait): what a well-behaved caller does.
func (c *client) patient(ctx context.Context, r request) answer {
	for attempt := 1; ; attempt++ {
		a := c.send(ctx, r)
		if a.status != http.StatusTooManyRequests && a.status != http.StatusServiceUnavailable || attempt >= c.maxAttempts {
			return a
		}
		if !c.wait(ctx, a.retryAfter) {
			return a
		}
	}
}

// wait sleeps for a Retry-After (a second when the server gave none), capped at maxWait; false when ctx
// ended first.
func (c *client) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		d = time.Second
	}
	d = min(d, c.maxWait)
	c.waits.Add(1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// api sends r with the cached client-credentials token. A 401 renews the token once and retries the
// request once, as Genesys does with a custom auth action.
func (c *client) api(ctx context.Context, r request, retryAfter bool) answer {
	do := c.send
	if retryAfter {
		do = c.patient
	}
	tok, err := c.tokens.get(ctx)
	if err != nil {
		return answer{err: err}
	}
	r.bearer = tok
	a := do(ctx, r)
	if a.status != http.StatusUnauthorized {
		return a
	}
	c.reauths.Add(1)
	if r.bearer, err = c.tokens.renew(ctx, tok); err != nil {
		return answer{err: err}
	}
	return do(ctx, r)
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or unreadable.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
