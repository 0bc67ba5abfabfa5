package genesysmirror

import (
	"testing"
	"time"
)

// A Retry-After is read within 0 and an hour: a huge one cannot overflow into a negative wait or park
// the mirror for years, and an unreadable one waits a second.
func TestRetryAfterBounded(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"0", 0},
		{"3", 3 * time.Second},
		{"3600", time.Hour},
		{"9300000000", time.Hour},
		{"99999999999", time.Hour},
		{"99999999999999999999", time.Second}, // not a number Go can hold: unreadable
		{"-5", time.Second},
		{"soon", time.Second},
		{"Mon, 01 Jan 2001 00:00:00 GMT", 0},
	} {
		if got := retryAfter(tc.header); got != tc.want {
			t.Errorf("Retry-After %q: %v, want %v", tc.header, got, tc.want)
		}
	}
}
