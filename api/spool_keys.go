package api

import (
	"context"
	"net/http"
	"sync"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/breaker"
	"github.com/tally-ledger/tally/ledger"
)

// An accrual whose idempotency key is already taken by another request must be refused when it
// arrives, not acknowledged 202 and then refused by the replay: the caller would believe it queued.
// Two checks run before an accrual is spooled. The spool's own entries: spoolKeys remembers the key and
// request hash of every entry this replica appended and has not yet replayed. The ledger's: when the
// store answers (the spool is only being drained), the key's remembered answer is read, and a request
// the ledger holds already is answered from it as a live redelivery would be. What neither can tell
// (a key applied before an outage and reused during it; an entry appended by another replica, or
// before a restart; a redemption with the key whose write is in flight while the accrual is checked)
// is refused at the replay, counted and logged: never applied as new.

// maxSpoolKeys bounds the memory of spoolKeys (about 200 bytes a key); past it, further keys are not
// remembered and fall back to the replay's refusal.
const maxSpoolKeys = 1 << 18

// spoolKeys is the key and request hash of the entries appended and not yet replayed.
type spoolKeys struct {
	mu   sync.Mutex
	keys map[tally.OutcomeKey]spoolKey
}

type spoolKey struct {
	hash    string
	entries int // entries of this key and hash in the spool
}

// admit notes an entry about to be appended, or refuses it (EIDEMPOTENCY) when the spool holds its key
// for another request. The caller forgets it if the append fails.
func (k *spoolKeys) admit(key tally.OutcomeKey, hash string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = map[tally.OutcomeKey]spoolKey{}
	}
	e, ok := k.keys[key]
	switch {
	case ok && e.hash != hash:
		return tally.Errorf(tally.EIDEMPOTENCY, "idempotency key %q was already used with a different request", key.Key)
	case !ok && len(k.keys) >= maxSpoolKeys:
		return nil
	}
	k.keys[key] = spoolKey{hash: hash, entries: e.entries + 1}
	return nil
}

// forget notes that an entry left the spool (replayed, refused for good, or never appended).
func (k *spoolKeys) forget(key tally.OutcomeKey, hash string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.keys[key]
	if !ok || e.hash != hash {
		return
	}
	if e.entries <= 1 {
		delete(k.keys, key)
		return
	}
	e.entries--
	k.keys[key] = e
}

// conflict returns EIDEMPOTENCY when the spool holds key for a request other than hash's.
func (k *spoolKeys) conflict(key tally.OutcomeKey, hash string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.keys[key]; ok && e.hash != hash {
		return tally.Errorf(tally.EIDEMPOTENCY, "idempotency key %q was already used with a different request", key.Key)
	}
	return nil
}

func (k *spoolKeys) empty() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.keys) == 0
}

// spoolConflict refuses a write that reaches the store directly (a redemption, an adjustment, a
// conditional accrual) while a spooled accrual holds its key: taking the key would leave that accrual,
// acknowledged 202, to be refused by the replay. A replayed entry is its own request and passes.
func (s *Server) spoolConflict(req ledger.Request) error {
	if s.Spool == nil || s.spooled.keys.empty() {
		return nil
	}
	key, hash, err := req.Fingerprint()
	if err != nil {
		return nil // the ledger refuses it as it is
	}
	return s.spooled.keys.conflict(key, hash)
}

// forgetSpooled forgets the entry of a replayed request.
func (s *Server) forgetSpooled(req ledger.Request) {
	if key, hash, err := req.Fingerprint(); err == nil {
		s.spooled.keys.forget(key, hash)
	}
}

// answerRemembered answers an accrual from the ledger when the store can be read and holds an answer
// for its key: the first answer again (200) for the same request, 409 for a reused key. It reports
// whether it answered; when it did not (no answer yet, or the store cannot be read) the accrual is
// spooled.
func (s *Server) answerRemembered(w http.ResponseWriter, r *http.Request, req ledger.Request) bool {
	if b, ok := s.Store.(interface{ State() string }); ok && b.State() == breaker.StateOpen {
		return false
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.LookupDeadline)
	defer cancel()
	rc, found, err := s.Ledger.Remembered(ctx, req)
	if !found {
		return false
	}
	if err != nil {
		writeError(w, r, err)
		return true
	}
	resp := render(rc, req)
	if req.Event {
		resp.EventID, resp.IdempotencyKey = req.Key, ""
	}
	s.answerWrite(w, rc, resp)
	return true
}
