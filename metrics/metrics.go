// Package metrics holds Tally's Prometheus collectors, registered on a registry of its own so that tests
// and replicas in one process do not share counters.
package metrics

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tally-ledger/tally"
)

// Metrics are the collectors the service updates.
type Metrics struct {
	Registry *prometheus.Registry

	Requests           *prometheus.CounterVec   // route, status
	RequestDuration    *prometheus.HistogramVec // route, status
	LedgerOps          *prometheus.CounterVec   // kind, outcome, replayed
	Replays            *prometheus.CounterVec   // kind
	Shed               prometheus.Counter
	CircuitState       prometheus.Gauge
	CircuitTransitions *prometheus.CounterVec // from, to
	StaleAnswers       prometheus.Counter
	ReplicaReads       *prometheus.CounterVec // source: replica, primary (the replica lagged or failed)
	BatchSize          prometheus.Histogram
	FulfillmentEvents  *prometheus.CounterVec // event: attempt, delivered, failed, dead, refunded
	SpoolAppends       *prometheus.CounterVec // result: ok, full, error
	SpoolReplayed      *prometheus.CounterVec // outcome: applied, replayed, refused
	WebhookEvents      *prometheus.CounterVec // event: attempt, delivered, failed, dead, skipped

	spoolWatched atomic.Bool
}

// New registers every collector, plus the Go runtime's and the process's, on a new registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_http_requests_total", Help: "HTTP requests by route and status.",
		}, []string{"route", "status"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tally_http_request_duration_seconds", Help: "HTTP request latency by route and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "status"}),
		LedgerOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_ledger_operations_total",
			Help: "Ledger writes by kind, outcome (ok or an error code) and replayed (true for a retry answered from its remembered outcome, refusals included).",
		}, []string{"kind", "outcome", "replayed"}),
		Replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_idempotent_replays_total", Help: "Writes answered from a remembered outcome instead of being applied again.",
		}, []string{"kind"}),
		Shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_shed_requests_total", Help: "Requests refused with 429 by admission control.",
		}),
		CircuitState: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tally_circuit_state", Help: "State of the store circuit breaker: 0 closed, 1 half-open, 2 open.",
		}),
		CircuitTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_circuit_transitions_total", Help: "Circuit breaker state transitions.",
		}, []string{"from", "to"}),
		StaleAnswers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_stale_answers_total", Help: "Balance lookups answered from the cache of last-known balances.",
		}),
		ReplicaReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_read_replica_lookups_total",
			Help: "Balance lookups with --read-db, by source: replica, or primary (the replica lagged beyond the staleness allowed, or failed).",
		}, []string{"source"}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tally_ledger_batch_size", Help: "Writes committed per database transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		FulfillmentEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_fulfillment_events_total",
			Help: "Fulfillment deliveries by event: attempt (a delivery tried), delivered, failed (to be retried), dead (out of attempts), refunded (a dead letter refunded).",
		}, []string{"event"}),
		SpoolAppends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_spool_appends_total",
			Help: "Accruals written to the spool while the store was unavailable, by result: ok, full (answered 503), error (answered 503).",
		}, []string{"result"}),
		SpoolReplayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_spool_replayed_total",
			Help: "Spooled accruals replayed into the ledger, by outcome: applied, replayed (the outcome already existed), refused (dropped: the ledger refused it for good).",
		}, []string{"outcome"}),
		WebhookEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_webhook_events_total",
			Help: "Event deliveries to webhook subscriptions: attempt, delivered, failed (to be retried), dead (out of attempts), skipped (filtered out or inactive).",
		}, []string{"event"}),
	}
	m.Registry.MustRegister(m.WebhookEvents)
	m.Registry.MustRegister(m.Requests, m.RequestDuration, m.LedgerOps, m.Replays, m.Shed, m.CircuitState,
		m.CircuitTransitions, m.StaleAnswers, m.BatchSize, m.FulfillmentEvents, m.SpoolAppends, m.SpoolReplayed,
		m.ReplicaReads, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// WatchSpool registers tally_spool_depth and tally_spool_oldest_age_seconds, read from stats at each
// scrape; stats must be cheap (a cached value, not a round trip). Only the first call registers them.
func (m *Metrics) WatchSpool(stats func() (depth int64, oldest time.Time)) {
	if !m.spoolWatched.CompareAndSwap(false, true) {
		return
	}
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tally_spool_depth", Help: "Accruals in the spool, not yet replayed into the ledger.",
		}, func() float64 {
			d, _ := stats()
			return float64(d)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tally_spool_oldest_age_seconds", Help: "Age of the oldest accrual in the spool; 0 when it is empty.",
		}, func() float64 {
			d, oldest := stats()
			if d == 0 || oldest.IsZero() {
				return 0
			}
			return time.Since(oldest).Seconds()
		}),
	)
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// ObserveWrite counts one ledger write; it fits ledger.Options.Observe. A replay gets replayed="true", so
// that the series with replayed="false" and outcome="ok" count writes actually applied.
func (m *Metrics) ObserveWrite(kind tally.Kind, code tally.Code, replayed bool) {
	outcome := string(code)
	if outcome == "" {
		outcome = "ok"
	}
	m.LedgerOps.WithLabelValues(string(kind), outcome, strconv.FormatBool(replayed)).Inc()
	if replayed {
		m.Replays.WithLabelValues(string(kind)).Inc()
	}
}
