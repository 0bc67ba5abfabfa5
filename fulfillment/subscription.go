package fulfillment

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"time"
)

// SubscriptionSecret returns the signing secret of a webhook subscription (package webhooks): derived,
// like a reward receiver's, from the master key, here with the subscription's id and secret version, so
// that nothing secret is stored and bumping the version rotates it. 64 hex digits, used as text.
func (s *Signer) SubscriptionSecret(id string, version int) string {
	m := hmac.New(sha256.New, s.master)
	m.Write([]byte("tally webhook subscription secret v1\n" + id + "\n" + strconv.Itoa(version)))
	return hex.EncodeToString(m.Sum(nil))
}

// Backoff is the delay before the attempt after attempt (1 for the first): drawn uniformly from
// [0, min(max, base·2^(attempt-1))] ("full jitter"), the fulfillment workers' schedule.
func Backoff(base, max time.Duration, attempt int) time.Duration {
	ceiling := max
	if attempt >= 1 && attempt < 40 {
		ceiling = min(ceiling, base<<(attempt-1))
	}
	if ceiling <= 0 {
		ceiling = max
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}
