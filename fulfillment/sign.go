package fulfillment

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The headers of a delivery.
const (
	HeaderDelivery  = "Tally-Delivery"  // the delivery id: the receipt id, the same on every retry
	HeaderTimestamp = "Tally-Timestamp" // Unix seconds when this attempt was signed
	HeaderSignature = "Tally-Signature" // "v1=" + hex(HMAC-SHA-256(secret, timestamp + "." + body))
)

// DefaultTolerance is how old a signed timestamp Verify accepts, against replays of a captured delivery.
const DefaultTolerance = 5 * time.Minute

// Signer signs deliveries. Each receiver gets a secret of its own, derived from one master key and the
// origin of its URL (scheme, host and port), so that a partner who verifies one reward's deliveries
// cannot forge another partner's, and no secret needs storing: `tally webhook-secret --url URL` prints
// the one to give a receiver. The master key is the ledger key's WebhookKey, or TALLY_WEBHOOK_SECRET when
// set (changing it rotates every receiver's secret).
type Signer struct {
	master []byte
}

// NewSigner returns a signer over master, which must hold at least 16 bytes.
func NewSigner(master []byte) (*Signer, error) {
	if len(master) < 16 {
		return nil, errors.New("the webhook signing secret must be at least 16 bytes")
	}
	return &Signer{master: append([]byte(nil), master...)}, nil
}

// Secret returns the signing secret of the receiver at endpoint: 64 hex digits, used as the HMAC key as
// the text it is (its ASCII bytes), so that shell tools take it as given.
func (s *Signer) Secret(endpoint string) (string, error) {
	origin, err := Origin(endpoint)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, s.master)
	m.Write([]byte("tally webhook secret v1\n" + origin))
	return hex.EncodeToString(m.Sum(nil)), nil
}

// Origin is the part of a webhook URL that its secret is bound to: lower-case scheme and host, and the
// port unless it is the scheme's default. A receiver keeps its secret when only the path changes.
func Origin(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return "", fmt.Errorf("webhook URL %q is not an absolute http(s) URL", endpoint)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("webhook URL %q is not an absolute http(s) URL", endpoint)
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port == "" || scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		return scheme + "://" + host, nil
	}
	return scheme + "://" + host + ":" + port, nil
}

// Sign returns the Tally-Signature value of body signed at timestamp (Unix seconds) with secret.
func Sign(secret string, timestamp int64, body []byte) string {
	return "v1=" + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret string, timestamp int64, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a delivery as a receiver should: the signature over the timestamp and the exact body
// bytes, in constant time, and a timestamp within tolerance of now. A Tally-Signature header may carry
// several comma-separated signatures (a receiver mid-rotation); one valid "v1=" is enough.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		return errors.New("missing or malformed " + HeaderTimestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%s is %s away from now", HeaderTimestamp, d.Round(time.Second))
	}
	want := mac(secret, ts, body)
	for _, sig := range strings.Split(h.Get(HeaderSignature), ",") {
		v, ok := strings.CutPrefix(strings.TrimSpace(sig), "v1=")
		if !ok {
			continue
		}
		if got, err := hex.DecodeString(v); err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no valid " + HeaderSignature)
}
