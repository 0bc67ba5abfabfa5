package sim

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"3", 3 * time.Second},
		{"-1", 0},
		{"soon", 0},
		{time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	// An HTTP date in the future is the time until then.
	if got := parseRetryAfter(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)); got <= 58*time.Minute || got > time.Hour {
		t.Errorf("an HTTP date an hour ahead gives %v", got)
	}
}

// TestSendChunked: a Data Action's body may arrive chunked, and the emulator sends it so when asked.
func TestSendChunked(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, fmt.Sprintf("%v %d %s", r.TransferEncoding, r.ContentLength, b))
	}))
	defer srv.Close()
	c := &client{base: srv.URL, http: srv.Client(), stats: newStats()}
	for _, chunked := range []bool{false, true} {
		c.send(context.Background(), request{endpoint: "x", method: "POST", path: "/", body: []byte(`{"a":1}`), timeout: 10 * time.Second, chunked: chunked})
	}
	if want := []string{`[] 7 {"a":1}`, `[chunked] -1 {"a":1}`}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the server saw %q, want %q", got, want)
	}
}
