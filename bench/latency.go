package bench

import (
	"math"
	"slices"
	"time"
)

// Latencies summarises a set of request latencies.
type Latencies struct {
	sorted []time.Duration
}

// NewLatencies takes ownership of samples and sorts them.
func NewLatencies(samples []time.Duration) Latencies {
	slices.Sort(samples)
	return Latencies{sorted: samples}
}

// Count is the number of samples.
func (l Latencies) Count() int { return len(l.sorted) }

// Percentile returns the nearest-rank percentile p (0 < p <= 100): the smallest sample that at least
// p percent of the samples do not exceed. It is 0 when there are no samples.
func (l Latencies) Percentile(p float64) time.Duration {
	n := len(l.sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	return l.sorted[min(max(rank, 1), n)-1]
}

// Max is the largest sample, 0 when there are none.
func (l Latencies) Max() time.Duration {
	if len(l.sorted) == 0 {
		return 0
	}
	return l.sorted[len(l.sorted)-1]
}
