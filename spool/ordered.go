package spool

import (
	"errors"
	"hash/fnv"
	"sync"
)

// ErrNotAttempted marks, in ApplyOrdered's results, an entry that was not handed to apply because an
// earlier entry of its worker failed.
var ErrNotAttempted = errors.New("spool: not attempted after an earlier failure")

// ApplyOrdered applies a batch of entries (in arrival order) with up to workers goroutines, keeping the
// order of each customer's entries: every entry of a customer goes to the same worker, which applies its
// entries one after another in arrival order. A worker stops at its first failure, so that no later entry
// of that customer overtakes the failed one; its remaining entries come back as ErrNotAttempted.
// The result holds, for each entry, apply's error or nil.
func ApplyOrdered(entries []Entry, workers int, apply func(Entry) error) []error {
	results := make([]error, len(entries))
	if workers < 1 {
		workers = 1
	}
	queues := make([][]int, workers)
	for i, e := range entries {
		w := 0
		if workers > 1 {
			h := fnv.New32a()
			h.Write([]byte(e.Customer))
			w = int(h.Sum32() % uint32(workers))
		}
		queues[w] = append(queues[w], i)
	}
	var wg sync.WaitGroup
	for _, q := range queues {
		if len(q) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var failed bool
			for _, i := range q {
				if failed {
					results[i] = ErrNotAttempted
					continue
				}
				if err := apply(entries[i]); err != nil {
					results[i], failed = err, true
				}
			}
		}()
	}
	wg.Wait()
	return results
}

// firstError is the error of the earliest entry that failed (not counting those not attempted), or nil.
func firstError(results []error) error {
	for _, err := range results {
		if err != nil && !errors.Is(err, ErrNotAttempted) {
			return err
		}
	}
	return nil
}
