package sim

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a run did and found.
type Report struct {
	Target      string   `json:"target"`
	Run         string   `json:"run"` // the run's id, in its customer and reward ids
	Customers   int      `json:"customers"`
	Concurrency int      `json:"concurrency"`
	Channels    []string `json:"channels"`
	Duplicates  float64  `json:"duplicates"`

	ElapsedSeconds float64 `json:"elapsed_seconds"`
	Requests       int64   `json:"requests"` // sent during the run (not the checks)
	Throughput     float64 `json:"requests_per_second"`
	EventsPerSec   float64 `json:"events_per_second"` // event deliveries per second

	Events     EventCounts      `json:"events"`
	Lookups    LookupCounts     `json:"lookups"`
	Redeem     RedemptionCounts `json:"redemptions"`
	Tokens     TokenCounts      `json:"tokens"`
	RetryAfter int64            `json:"retry_after_waits"` // waits for a 429's or 503's Retry-After
	Fallbacks  int64            `json:"fallbacks"`         // flows (lookups and Workflows) that ran out of retries

	Outcomes   map[string]int64 `json:"outcomes"` // every request's status (or timeout), all endpoints
	Endpoints  []EndpointReport `json:"endpoints"`
	Invariants []Invariant      `json:"invariants"`
	OK         bool             `json:"ok"` // every invariant that ran passed
}

// EventCounts are the conversation-end events.
type EventCounts struct {
	Conversations int64 `json:"conversations"` // unique events
	Deliveries    int64 `json:"deliveries"`    // duplicates and retries included
	Duplicates    int64 `json:"duplicate_deliveries"`
	Simultaneous  int64 `json:"simultaneous"` // events delivered twice at once
	Late          int64 `json:"late"`         // duplicates delivered later
	FlowRetries   int64 `json:"flow_retries"`
	Applied       int64 `json:"applied"` // events that earned points
	Ignored       int64 `json:"ignored"` // events no earning rule matched
	Points        int64 `json:"points_earned"`
}

// LookupCounts are the Architect balance lookups.
type LookupCounts struct {
	Flows     int64 `json:"flows"`
	Retries   int64 `json:"retries"`
	Fallbacks int64 `json:"fallbacks"`
	Stale     int64 `json:"stale"`
}

// RedemptionCounts are the "two devices" redemptions.
type RedemptionCounts struct {
	Pairs    int64            `json:"pairs"`
	Sent     int64            `json:"requests"`
	Receipts int64            `json:"receipts"` // distinct redemptions acknowledged
	Points   int64            `json:"points_redeemed"`
	Replays  int64            `json:"replays"` // the same key sent again
	Refused  map[string]int64 `json:"refused"` // by status and problem code
}

// TokenCounts are the custom auth action's runs.
type TokenCounts struct {
	Fetches        int64 `json:"fetches"`
	Reauths        int64 `json:"reauths_after_401"`
	ExpiryRenewals int64 `json:"renewals_at_expires_in"`
	HonourExpiry   bool  `json:"honour_expires_in"`
}

// EndpointReport is one endpoint's latencies (milliseconds) and outcomes.
type EndpointReport struct {
	Endpoint string           `json:"endpoint"`
	Requests int64            `json:"requests"`
	P50      float64          `json:"p50_ms"`
	P95      float64          `json:"p95_ms"`
	P99      float64          `json:"p99_ms"`
	Max      float64          `json:"max_ms"`
	Outcomes map[string]int64 `json:"outcomes"`
}

// Failed names the invariants that failed.
func (r *Report) Failed() []string {
	var names []string
	for _, inv := range r.Invariants {
		if inv.Status == Fail {
			names = append(names, inv.Name)
		}
	}
	return names
}

// report counts what the run did, before the checks add requests of their own.
func (r *runner) report(elapsed time.Duration) *Report {
	rep := &Report{
		Target: r.c.base, Run: r.id, Customers: r.cfg.Customers, Concurrency: r.cfg.Concurrency, Channels: r.cfg.Channels,
		Duplicates: r.cfg.Duplicates, ElapsedSeconds: elapsed.Seconds(), Requests: r.c.stats.requests(),
		Lookups:   LookupCounts{Flows: r.lookups.Load(), Retries: r.lookupRetries.Load(), Stale: r.stale.Load()},
		Fallbacks: r.fallbacks.Load(), RetryAfter: r.c.waits.Load(),
	}
	b := r.book
	b.mu.Lock()
	defer b.mu.Unlock()
	rep.Events = EventCounts{Conversations: int64(len(b.events)), Deliveries: b.deliveries, Duplicates: b.duplicates,
		Simultaneous: r.simultaneous.Load(), Late: r.lateSent.Load(), FlowRetries: r.flowRetries.Load()}
	for _, e := range b.events {
		if e.applied {
			rep.Events.Applied++
			rep.Events.Points += e.amount
		} else if e.known {
			rep.Events.Ignored++
		}
	}
	rep.Redeem = RedemptionCounts{Pairs: r.pairs.Load(), Sent: int64(len(b.redemptions)) + r.replays.Load(), Replays: r.replays.Load(),
		Receipts: int64(len(b.receipts)), Refused: copyCounts(b.refused)}
	for _, rc := range b.receipts {
		rep.Redeem.Points += rc.points
	}
	if s := elapsed.Seconds(); s > 0 {
		rep.Throughput = float64(rep.Requests) / s
		rep.EventsPerSec = float64(b.deliveries) / s
	}
	return rep
}

// finish adds what the whole run, checks included, counted, and whether it passed.
func (rep *Report) finish(s *stats, ts *tokenSource, reauths int64) {
	rep.Outcomes = s.totals()
	// The outcomes a reader looks for are always there, if only as 0.
	for _, k := range []string{"200", "201", "409", "429", "503", outTimeout} {
		rep.Outcomes[k] += 0
	}
	rep.Endpoints = s.summary()
	rep.Tokens = TokenCounts{Fetches: ts.fetches.Load(), Reauths: reauths, ExpiryRenewals: ts.expiryRenewal.Load(), HonourExpiry: ts.honourExpiry}
	rep.OK = len(rep.Failed()) == 0
}

// Print writes the report for a person.
func (rep *Report) Print(w io.Writer) error {
	fmt.Fprintf(w, "tally sim: run %s against %s, %d customers, %d concurrent, channels %s, duplicates %.0f%%\n",
		rep.Run, rep.Target, rep.Customers, rep.Concurrency, strings.Join(rep.Channels, ","), rep.Duplicates*100)
	fmt.Fprintf(w, "%.1fs: %d requests (%.0f/s), %d event deliveries (%.0f/s)\n", rep.ElapsedSeconds, rep.Requests, rep.Throughput,
		rep.Events.Deliveries, rep.EventsPerSec)
	e := rep.Events
	fmt.Fprintf(w, "events: %d conversations ended, %d deliveries (%d duplicates: %d simultaneous pairs, %d late; %d flow retries); %d earned %d points, %d earned nothing\n",
		e.Conversations, e.Deliveries, e.Duplicates, e.Simultaneous, e.Late, e.FlowRetries, e.Applied, e.Points, e.Ignored)
	l := rep.Lookups
	fmt.Fprintf(w, "lookups: %d flows, %d retries, %d fallbacks, %d stale answers\n", l.Flows, l.Retries, l.Fallbacks, l.Stale)
	rd := rep.Redeem
	fmt.Fprintf(w, "redemptions: %d two-device pairs, %d requests (%d replays), %d receipts for %d points; refused: %s\n",
		rd.Pairs, rd.Sent, rd.Replays, rd.Receipts, rd.Points, counts(rd.Refused))
	t := rep.Tokens
	fmt.Fprintf(w, "tokens: %d fetched, %d renewed after a 401, %d renewed at expires_in (honoured: %t); %d Retry-After waits; %d fallbacks in all\n",
		t.Fetches, t.Reauths, t.ExpiryRenewals, t.HonourExpiry, rep.RetryAfter, rep.Fallbacks)
	fmt.Fprintf(w, "outcomes: %s\n\n", counts(rep.Outcomes))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "endpoint\trequests\tp50 ms\tp95 ms\tp99 ms\tmax ms\toutcomes")
	for _, ep := range rep.Endpoints {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%s\n", ep.Endpoint, ep.Requests, ep.P50, ep.P95, ep.P99, ep.Max, counts(ep.Outcomes))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\ninvariants:")
	for _, inv := range rep.Invariants {
		mark := map[string]string{Pass: "ok  ", Fail: "FAIL", Skipped: "skip"}[inv.Status]
		line := fmt.Sprintf("  %s %s", mark, inv.Name)
		if inv.Detail != "" {
			line += ": " + inv.Detail
		}
		fmt.Fprintln(w, line)
		for _, f := range inv.Failures {
			fmt.Fprintf(w, "         %s\n", f)
		}
	}
	if rep.OK {
		_, err := fmt.Fprintln(w, "all invariants hold")
		return err
	}
	_, err := fmt.Fprintf(w, "FAILED: %s\n", strings.Join(rep.Failed(), "; "))
	return err
}

// counts shows outcome counts in a stable order: statuses first, then the rest.
func counts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
