package bench

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var samples []time.Duration
	for i := 100; i >= 1; i-- { // out of order on purpose
		samples = append(samples, time.Duration(i)*time.Millisecond)
	}
	l := NewLatencies(samples)
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{
		{50, 50 * time.Millisecond},
		{99, 99 * time.Millisecond},
		{99.9, 100 * time.Millisecond},
		{100, 100 * time.Millisecond},
		{0.1, 1 * time.Millisecond},
	} {
		if got := l.Percentile(c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if l.Max() != 100*time.Millisecond || l.Count() != 100 {
		t.Errorf("max %v count %d", l.Max(), l.Count())
	}
}

func TestPercentileSmallAndEmpty(t *testing.T) {
	if got := NewLatencies(nil).Percentile(99); got != 0 {
		t.Errorf("empty p99 = %v", got)
	}
	l := NewLatencies([]time.Duration{3, 1, 2})
	if l.Percentile(50) != 2 || l.Percentile(99) != 3 || l.Percentile(1) != 1 {
		t.Errorf("p1/p50/p99 of {1,2,3} = %v/%v/%v", l.Percentile(1), l.Percentile(50), l.Percentile(99))
	}
}
