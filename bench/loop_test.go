package bench

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestClosedCount(t *testing.T) {
	var mu sync.Mutex
	seen := map[int]bool{}
	res := Closed(context.Background(), 8, time.Minute, 1000, func(_ context.Context, _, seq int) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		if seen[seq] {
			t.Errorf("seq %d given twice", seq)
		}
		seen[seq] = true
		if seq%10 == 0 {
			return "E" + strconv.Itoa(seq%20), false
		}
		return "ok", true
	})
	if len(seen) != 1000 || res.OK != 900 || res.Failed() != 100 || res.Latency.Count() != 900 {
		t.Errorf("seen %d, ok %d, failed %d, latencies %d", len(seen), res.OK, res.Failed(), res.Latency.Count())
	}
	if res.Outcomes["E0"] != 50 || res.Outcomes["E10"] != 50 {
		t.Errorf("outcomes %v", res.Outcomes)
	}
}

func TestOpenRate(t *testing.T) {
	res := Open(context.Background(), 1000, 100*time.Millisecond, func(context.Context, int, int) (string, bool) {
		return "200", true
	})
	if res.OK != 100 {
		t.Errorf("%d operations at 1000/s for 100ms, want 100", res.OK)
	}
}

func TestCheckLoopback(t *testing.T) {
	for u, ok := range map[string]bool{
		"http://127.0.0.1:8080":  true,
		"http://localhost:8080/": true,
		"http://[::1]:8080":      true,
		"http://10.0.0.5:8080":   false,
		"http://example.com":     false,
		"127.0.0.1:8080":         false,
	} {
		if err := checkLoopback(u); (err == nil) != ok {
			t.Errorf("checkLoopback(%q) = %v", u, err)
		}
	}
}
