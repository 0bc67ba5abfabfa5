package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Op performs one operation: worker is the goroutine's number, seq the operation's number in the run
// (unique within it). It returns a label for what happened (an HTTP status, an error code) and whether
// that counts as a success.
type Op func(ctx context.Context, worker, seq int) (label string, ok bool)

// Result is what one timed run measured.
type Result struct {
	Elapsed  time.Duration
	OK       int            // successful operations
	Outcomes map[string]int // every operation, by label
	Latency  Latencies      // of the successful operations
}

// Rate is successful operations per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// Failed counts the operations that did not succeed.
func (r Result) Failed() int {
	n := 0
	for _, c := range r.Outcomes {
		n += c
	}
	return n - r.OK
}

// counts collects the outcomes of one goroutine, so that goroutines never contend while measuring.
type counts struct {
	ok       int
	outcomes map[string]int
	samples  []time.Duration
}

func (t *counts) add(label string, ok bool, took time.Duration) {
	if t.outcomes == nil {
		t.outcomes = map[string]int{}
	}
	t.outcomes[label]++
	if ok {
		t.ok++
		t.samples = append(t.samples, took)
	}
}

func merge(elapsed time.Duration, parts []*counts) Result {
	r := Result{Elapsed: elapsed, Outcomes: map[string]int{}}
	var samples []time.Duration
	for _, p := range parts {
		r.OK += p.ok
		for l, n := range p.outcomes {
			r.Outcomes[l] += n
		}
		samples = append(samples, p.samples...)
	}
	r.Latency = NewLatencies(samples)
	return r
}

// Closed runs op back to back on workers goroutines until d has passed, or count operations have
// started when count > 0, or ctx ends. Each goroutine starts its next operation when the last one
// answers, so the offered load follows the service's speed.
func Closed(ctx context.Context, workers int, d time.Duration, count int, op Op) Result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var next atomic.Int64
	parts := make([]*counts, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		parts[w] = &counts{}
		wg.Add(1)
		go func(t *counts) {
			defer wg.Done()
			for ctx.Err() == nil {
				seq := int(next.Add(1) - 1)
				if count > 0 && seq >= count {
					return
				}
				t0 := time.Now()
				label, ok := op(ctx, w, seq)
				if ctx.Err() != nil && !ok {
					return // cut short by the end of the run: not a failure of the service
				}
				t.add(label, ok, time.Since(t0))
			}
		}(parts[w])
	}
	wg.Wait()
	return merge(time.Since(start), parts)
}

// Open starts op at a fixed rate for d (or until ctx ends), whatever the latency of the answers, and
// measures each operation from the moment it was due: a server that stalls shows as latency, not as a
// lower offered rate (no coordinated omission). Operations still running at the end are waited for.
func Open(ctx context.Context, rate float64, d time.Duration, op Op) Result {
	interval := time.Duration(float64(time.Second) / rate)
	total := int(d / interval)
	var mu sync.Mutex
	all := &counts{}
	var wg sync.WaitGroup
	start := time.Now()
	for seq := 0; seq < total && ctx.Err() == nil; seq++ {
		due := start.Add(time.Duration(seq) * interval)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The operation is not tied to ctx's end of the run: every request started is answered.
			label, ok := op(context.WithoutCancel(ctx), 0, seq)
			took := time.Since(due)
			mu.Lock()
			all.add(label, ok, took)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return merge(time.Since(start), []*counts{all})
}
