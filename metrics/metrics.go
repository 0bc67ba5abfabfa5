// Package metrics holds Tally's Prometheus collectors, registered on a registry of its own so that tests
// and replicas in one process do not share counters.
package metrics

import (
	"net/http"
	"strconv"

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
	BatchSize          prometheus.Histogram
	FulfillmentEvents  *prometheus.CounterVec // event: attempt, delivered, failed, dead, refunded
	WebhookEvents      *prometheus.CounterVec // event: attempt, delivered, failed, dead, skipped
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
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tally_ledger_batch_size", Help: "Writes committed per database transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		FulfillmentEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_fulfillment_events_total",
			Help: "Fulfillment deliveries by event: attempt (a delivery tried), delivered, failed (to be retried), dead (out of attempts), refunded (a dead letter refunded).",
		}, []string{"event"}),
		WebhookEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_webhook_events_total",
			Help: "Event deliveries to webhook subscriptions: attempt, delivered, failed (to be retried), dead (out of attempts), skipped (filtered out or inactive).",
		}, []string{"event"}),
	}
	m.Registry.MustRegister(m.WebhookEvents)
	m.Registry.MustRegister(m.Requests, m.RequestDuration, m.LedgerOps, m.Replays, m.Shed, m.CircuitState,
		m.CircuitTransitions, m.StaleAnswers, m.BatchSize, m.FulfillmentEvents,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
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
