package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/breaker"
	"github.com/tally-ledger/tally/earning"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/spool"
	"github.com/tally-ledger/tally/strictjson"
)

// The accrual spool. While the store is unavailable (the circuit is open, the store answers EUNAVAILABLE,
// or a write outlives its deadline) an accrual is kept in Deps.Spool and answered 202 "queued" once the
// spool has it durably; RunSpool replays it when the store is back, through the same request-building
// code as a live request, so that the ledger's idempotency decides whether it was applied already.
// Redemptions, adjustments and reversals need the balance now and are never spooled. While the spool
// holds anything, new accruals join it rather than overtake the spooled ones of their customer.

// spoolRetryAfter is the Retry-After of a 503 for a spool that is full or cannot be written.
const spoolRetryAfter = 30

// spoolState is what the request path knows of the spool without asking it: whether it may hold
// entries (backlog, one atomic load on the healthy path) and the last depth seen (for the metrics).
type spoolState struct {
	backlog atomic.Bool
	depth   atomic.Int64
	oldest  atomic.Int64 // unix nanoseconds; 0 when unknown or empty

	mu       sync.Mutex // guards gen and inflight, so the replayer never clears backlog under an Append
	gen      int64      // Appends begun
	inflight int64      // Appends not yet returned

	keys spoolKeys // the keys of the entries appended and not yet replayed (spool_keys.go)
}

// begin notes an Append about to start; end(its gen, whether backlog was set before, its error) when it
// returned.
func (st *spoolState) begin() (gen int64, hadBacklog bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.gen++
	st.inflight++
	hadBacklog = st.backlog.Load()
	st.backlog.Store(true) // before the Append: a request racing it must not overtake the entry
	return st.gen, hadBacklog
}

// end undoes begin's backlog for an Append that kept nothing, when no other Append began meanwhile, so
// that a spool that refused one entry does not also keep later accruals off a healthy store.
func (st *spoolState) end(gen int64, hadBacklog bool, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.inflight--
	if err != nil && !hadBacklog && st.gen == gen && st.inflight == 0 {
		st.backlog.Store(false)
	}
}

// snapshot is the last depth and oldest time seen, for the metrics.
func (st *spoolState) snapshot() (int64, time.Time) {
	d, o := st.depth.Load(), st.oldest.Load()
	if d == 0 || o == 0 {
		return d, time.Time{}
	}
	return d, time.Unix(0, o)
}

// startSpool reads the spool's state once, so that a server started over a spool left with entries
// spools new accruals behind them from its first request, and exposes the spool's metrics.
func (s *Server) startSpool() {
	if s.Spool == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.refreshSpool(ctx); err != nil {
		s.log.Warn("spool: reading its state", "err", err)
		s.spooled.backlog.Store(true) // unknown: keep order until the replayer knows better
	}
	if s.metrics != nil {
		s.metrics.WatchSpool(s.spooled.snapshot)
	}
}

// refreshSpool reads the spool's depth, sets backlog when it holds entries (those of other replicas, for
// a shared spool, included) and clears it when it is empty and no Append is under way or began since.
func (s *Server) refreshSpool(ctx context.Context) (spool.Stats, error) {
	st := &s.spooled
	st.mu.Lock()
	gen, busy := st.gen, st.inflight > 0
	st.mu.Unlock()
	stats, err := s.Spool.Stats(ctx)
	if err != nil {
		return stats, err
	}
	st.depth.Store(stats.Depth)
	if stats.Oldest.IsZero() {
		st.oldest.Store(0)
	} else {
		st.oldest.Store(stats.Oldest.UnixNano())
	}
	if stats.Depth > 0 {
		st.backlog.Store(true)
		return stats, nil
	}
	st.mu.Lock()
	if !busy && st.gen == gen && st.inflight == 0 {
		st.backlog.Store(false)
	}
	st.mu.Unlock()
	return stats, nil
}

// spoolFirst reports whether req must go to the spool without trying the store: an accrual while the
// spool holds entries, which it must not overtake.
func (s *Server) spoolFirst(req ledger.Request) bool {
	return s.Spool != nil && req.Kind == tally.KindAccrual && req.ExpectedVersion == nil && s.spooled.backlog.Load()
}

// spoolable reports whether a write that failed with err may be spooled: an accrual, refused because the
// store is unavailable, for a caller that is still there. An accrual conditional on a balance_version
// is not: only the store can check it, and a 202 would acknowledge what the replay may refuse.
func (s *Server) spoolable(r *http.Request, req ledger.Request, err error) bool {
	return s.Spool != nil && req.Kind == tally.KindAccrual && req.ExpectedVersion == nil && r.Context().Err() == nil && breaker.IsTransient(err)
}

// spoolWrite keeps an accrual in the spool and answers 202 once it is durable; a spool that is full or
// cannot be written answers 503 with Retry-After: nothing is acknowledged that is not durable.
func (s *Server) spoolWrite(w http.ResponseWriter, r *http.Request, body []byte, req ledger.Request, cause error) {
	// Bad input, and a key taken by another request, are refused now, not kept to be refused at replay.
	key, hash, err := req.Fingerprint()
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.spooled.keys.admit(key, hash); err != nil {
		writeError(w, r, err)
		return
	}
	if cause == nil && s.answerRemembered(w, r, req) {
		s.spooled.keys.forget(key, hash)
		return
	}
	e := spool.Entry{Body: body, Customer: req.Account, Client: principal(r).ClientID, Received: s.Clock().UTC()}
	gen, had := s.spooled.begin()
	err = s.Spool.Append(r.Context(), e)
	s.spooled.end(gen, had, err)
	if err != nil {
		s.spooled.keys.forget(key, hash)
		result := "error"
		if errors.Is(err, spool.ErrFull) {
			result = "full"
		}
		s.countAppend(result)
		s.log.Error("spool: an accrual could not be kept", "result", result, "err", err, "store_err", cause)
		refused := tally.Unavailable(spoolRefusal{err}, "the ledger")
		if result == "full" {
			refused.Message = "the ledger is unavailable and its spool is full"
		}
		writeError(w, r, refused)
		return
	}
	s.countAppend("ok")
	resp := writeResponse{Status: "queued", Channel: req.Channel}
	if req.Event {
		resp.EventID = req.Key
	} else {
		resp.IdempotencyKey = req.Key
		if resp.Channel == "" {
			resp.Channel = ledger.DefaultChannel
		}
	}
	writeJSON(w, http.StatusAccepted, resp)
}

// spoolRefusal carries the Retry-After of a spool that could not keep an entry.
type spoolRefusal struct{ err error }

func (e spoolRefusal) Error() string          { return e.err.Error() }
func (e spoolRefusal) Unwrap() error          { return e.err }
func (e spoolRefusal) RetryAfterSeconds() int { return spoolRetryAfter }

func (s *Server) countAppend(result string) {
	if s.metrics != nil {
		s.metrics.SpoolAppends.WithLabelValues(result).Inc()
	}
}

func (s *Server) countReplayed(outcome string) {
	if s.metrics != nil {
		s.metrics.SpoolReplayed.WithLabelValues(outcome).Inc()
	}
}

// RunSpool drains the spool into the ledger until ctx ends: at once, then every interval. A round that
// finds the circuit open, or stops on an unavailable store, leaves the rest for the next.
func (s *Server) RunSpool(ctx context.Context, interval time.Duration) {
	if s.Spool == nil {
		return
	}
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.DrainSpool(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// DrainSpool replays what the spool holds, if the store seems available, and reports the depth left.
func (s *Server) DrainSpool(ctx context.Context) int64 {
	stats, err := s.refreshSpool(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("spool: reading its state", "err", err)
		}
		return -1
	}
	if stats.Depth == 0 {
		return 0
	}
	if b, ok := s.Store.(interface{ State() string }); ok && b.State() == breaker.StateOpen {
		return stats.Depth
	}
	err = s.Spool.Replay(ctx, func(e spool.Entry) error { return s.applySpooled(ctx, e) })
	if err != nil && ctx.Err() == nil {
		s.log.Info("spool: replay paused, the rest waits for the next round", "err", err)
	}
	stats, err = s.refreshSpool(ctx)
	if err != nil {
		return -1
	}
	return stats.Depth
}

// applySpooled writes one spooled entry. It returns an error only for a fault that may pass (the store
// unavailable, the server stopping): the entry then stays in the spool. An entry the ledger refuses for
// good is counted, logged and dropped, never retried forever.
func (s *Server) applySpooled(ctx context.Context, e spool.Entry) error {
	req, ev, err := s.spooledRequest(ctx, e)
	if err == nil {
		var rc ledger.Receipt
		rc, err = s.write(ctx, req)
		if err == nil {
			s.forgetSpooled(req)
			if ev != nil {
				s.wantMirror(ctx, *ev, rc)
			}
			if rc.Replayed {
				s.countReplayed("replayed")
			} else {
				s.countReplayed("applied")
			}
			return nil
		}
		if ctx.Err() != nil || breaker.IsTransient(err) {
			return err
		}
	}
	s.forgetSpooled(req)
	s.countReplayed("refused")
	s.log.Error("spool: dropped an accrual the ledger refused", "code", tally.ErrorCode(err), "err", tally.ErrorMessage(err),
		"customer_hash", publicHash(e.Customer), "client", e.Client, "received", e.Received)
	return nil
}

// spooledRequest rebuilds the ledger request of a spooled body exactly as handleProcess builds a live
// one (the same checks, the same builders), for the client that sent it, to be decided as of its
// arrival (ledger.Request.EarnAt): a campaign that closed during the outage still pays for it, and its
// caps count it in the period it arrived in.
func (s *Server) spooledRequest(ctx context.Context, e spool.Entry) (ledger.Request, *earning.Event, error) {
	rep, err := strictjson.Scan(e.Body)
	if err != nil {
		return ledger.Request{}, nil, tally.Errorf(tally.EINVALID, "the spooled body is not valid JSON")
	}
	var probe struct {
		Key json.RawMessage `json:"idempotency_key"`
	}
	if err := json.Unmarshal(e.Body, &probe); err != nil {
		return ledger.Request{}, nil, tally.Errorf(tally.EINVALID, "the body must be a JSON object")
	}
	if probe.Key == nil {
		ev, req, err := s.eventRequest(ctx, e.Body, rep, e.Received)
		return req, &ev, err
	}
	if err := checkTallyBody(rep); err != nil {
		return ledger.Request{}, nil, err
	}
	if isRedeemBody(e.Body) {
		return ledger.Request{}, nil, tally.Errorf(tally.EINVALID, "a redemption is never spooled")
	}
	tr, err := decodeTransaction(e.Body)
	if err != nil {
		return ledger.Request{}, nil, err
	}
	if tr.Kind != tally.KindAccrual {
		return ledger.Request{}, nil, tally.Errorf(tally.EINVALID, "only accruals are spooled, not %s", tr.Kind)
	}
	req, err := s.transactionRequest(tr, e.Client)
	req.EarnAt = e.Received // its lot ages from its arrival
	return req, nil, err
}
