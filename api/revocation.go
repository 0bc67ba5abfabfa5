package api

import (
	"context"
	"sync"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/auth"
)

// RevocationTTL is how long a client's revocation status is trusted before it is read again: a revoked
// client's tokens stop working within this time, not at their expiry.
const RevocationTTL = 10 * time.Second

// revocations remembers, per client, whether it is revoked, read from the credential store at most once
// per RevocationTTL.
type revocations struct {
	mu      sync.Mutex
	clients map[string]revocationEntry
}

type revocationEntry struct {
	revoked bool
	checked time.Time
}

// revoked reports whether the client of a token Tally issued has been revoked. Tokens of an external
// issuer are that issuer's to revoke. When the store cannot answer, the last known status stands (a
// client never seen is let through: its token's signature was valid, and refusing every caller while the
// database is down would also refuse the stale lookups that keep flows running).
func (s *Server) revoked(ctx context.Context, p auth.Principal) bool {
	if s.Clients == nil || s.Issuer == nil || p.Issuer != s.Issuer.IssuerURL() {
		return false
	}
	now := time.Now()
	s.revoke.mu.Lock()
	e, ok := s.revoke.clients[p.ClientID]
	s.revoke.mu.Unlock()
	if ok && now.Sub(e.checked) < RevocationTTL {
		return e.revoked
	}
	c, err := s.Clients.Client(ctx, p.ClientID)
	switch {
	case err == nil:
		e = revocationEntry{revoked: c.RevokedAt != nil, checked: now}
	case tally.ErrorCode(err) == tally.ENOTFOUND:
		e = revocationEntry{revoked: true, checked: now}
	default:
		logger(ctx).Warn("cannot read the client's revocation status", "client_id", p.ClientID, "err", err)
		return ok && e.revoked
	}
	s.revoke.mu.Lock()
	if s.revoke.clients == nil || len(s.revoke.clients) > 10000 {
		s.revoke.clients = map[string]revocationEntry{}
	}
	s.revoke.clients[p.ClientID] = e
	s.revoke.mu.Unlock()
	return e.revoked
}
