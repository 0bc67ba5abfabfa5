package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// tokenSource is the custom auth action of a User Defined (OAuth) credential: a client-credentials token,
// cached until a call is refused with 401 (how long Genesys caches it is not documented; REFERENCE.md
// assumes exactly this), or, with honourExpiry, also until the expires_in the server gave has passed.
type tokenSource struct {
	c             *client
	id, secret    string
	honourExpiry  bool
	mu            sync.Mutex
	token         string
	expires       time.Time // zero: no expires_in, or not honoured
	fetches       atomic.Int64
	expiryRenewal atomic.Int64 // renewals because expires_in passed
}

// get returns the cached token, fetching one when there is none or, when honoured, it has expired.
func (ts *tokenSource) get(ctx context.Context) (string, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.token != "" && (ts.expires.IsZero() || time.Now().Before(ts.expires)) {
		return ts.token, nil
	}
	if ts.token != "" {
		ts.expiryRenewal.Add(1)
	}
	return ts.fetchLocked(ctx)
}

// renew is called after a 401 answered a call made with rejected: the auth action runs once more, unless
// another call already replaced that token, whose replacement is then used.
func (ts *tokenSource) renew(ctx context.Context, rejected string) (string, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.token != "" && ts.token != rejected {
		return ts.token, nil
	}
	return ts.fetchLocked(ctx)
}

// fetchLocked runs the auth action: POST /oauth/token with Basic client authentication and a form body
// grant_type=client_credentials, as the exported custom auth action does.
func (ts *tokenSource) fetchLocked(ctx context.Context) (string, error) {
	ts.token, ts.expires = "", time.Time{}
	form := url.Values{"grant_type": {"client_credentials"}}.Encode()
	header := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	req := request{endpoint: epToken, method: "POST", path: "/oauth/token", body: []byte(form), header: header, timeout: ts.c.actionTimeout}
	req.basic = [2]string{ts.id, ts.secret}
	ans := ts.c.patient(ctx, req)
	ts.fetches.Add(1)
	if ans.err != nil {
		return "", fmt.Errorf("token: %w", ans.err)
	}
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if ans.status != http.StatusOK || json.Unmarshal(ans.body, &body) != nil || body.AccessToken == "" {
		return "", fmt.Errorf("token: %d from %s/oauth/token: %s", ans.status, ts.c.base, strings.TrimSpace(string(ans.body)))
	}
	ts.token = body.AccessToken
	if ts.honourExpiry && body.ExpiresIn > 0 {
		ts.expires = time.Now().Add(time.Duration(body.ExpiresIn) * time.Second)
	}
	return ts.token, nil
}
