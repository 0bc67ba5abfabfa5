package sim

import (
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/tally-ledger/tally/bench"
)

// Endpoint names, as the report shows them.
const (
	epToken         = "token"
	epProcess       = "transaction/process"
	epLookup        = "balance/lookup"
	epPortalCatalog = "portal/catalog"
	epPortalRedeem  = "portal/redeem"
	epHistory       = "accounts/history"
	epCatalog       = "catalog/rewards"
)

// Outcome labels beside HTTP status codes.
const (
	outTimeout   = "timeout"
	outTransport = "transport error"
)

// stats counts every outcome of every request, per endpoint, with its latency.
type stats struct {
	mu        sync.Mutex
	endpoints map[string]*endpointStats
}

type endpointStats struct {
	latencies []time.Duration
	outcomes  map[string]int64
}

func newStats() *stats { return &stats{endpoints: map[string]*endpointStats{}} }

// record counts one request's outcome: its status code, or a timeout or transport error.
func (s *stats) record(endpoint string, status int, timedOut bool, d time.Duration) {
	label := outTransport
	switch {
	case timedOut:
		label = outTimeout
	case status != 0:
		label = strconv.Itoa(status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.endpoints[endpoint]
	if e == nil {
		e = &endpointStats{outcomes: map[string]int64{}}
		s.endpoints[endpoint] = e
	}
	e.latencies = append(e.latencies, d)
	e.outcomes[label]++
}

// requests is how many requests were sent in all.
func (s *stats) requests() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, e := range s.endpoints {
		n += int64(len(e.latencies))
	}
	return n
}

// summary turns the counts into the report's rows, sorted by endpoint.
func (s *stats) summary() []EndpointReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]EndpointReport, 0, len(s.endpoints))
	for name, e := range s.endpoints {
		l := bench.NewLatencies(append([]time.Duration(nil), e.latencies...))
		out = append(out, EndpointReport{
			Endpoint: name, Requests: int64(l.Count()),
			P50: ms(l.Percentile(50)), P95: ms(l.Percentile(95)), P99: ms(l.Percentile(99)), Max: ms(l.Max()),
			Outcomes: copyCounts(e.outcomes),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Endpoint < out[j].Endpoint })
	return out
}

// totals adds the outcomes of every endpoint.
func (s *stats) totals() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := map[string]int64{}
	for _, e := range s.endpoints {
		for k, v := range e.outcomes {
			t[k] += v
		}
	}
	return t
}

func copyCounts(m map[string]int64) map[string]int64 {
	c := make(map[string]int64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// ms is a duration in milliseconds, to a microsecond.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
