package api

import (
	"context"
	"sync"
	"time"
)

// maxSessions bounds the session tokens kept for reuse.
const maxSessions = 50_000

// sessions keeps the portal session token last issued to each customer, so that the lookups of one
// conversation (a flow may look a customer up several times) reuse it instead of signing a new one each
// time: signing is the largest single cost of a lookup.
type sessions struct {
	mu     sync.Mutex
	tokens map[string]sessionToken
}

type sessionToken struct {
	token   string
	expires time.Time
}

// session returns a session token for the customer with at least half its lifetime left.
func (s *Server) session(ctx context.Context, customerHash string) (string, time.Time, error) {
	now := time.Now()
	s.sessions.mu.Lock()
	t, ok := s.sessions.tokens[customerHash]
	s.sessions.mu.Unlock()
	if ok && t.expires.Sub(now) > s.opts.SessionTTL/2 {
		return t.token, t.expires, nil
	}
	token, exp, err := s.Issuer.IssueSession(ctx, customerHash, s.opts.SessionTTL)
	if err != nil {
		return "", time.Time{}, err
	}
	s.sessions.mu.Lock()
	if s.sessions.tokens == nil || len(s.sessions.tokens) >= maxSessions {
		s.sessions.tokens = make(map[string]sessionToken)
	}
	s.sessions.tokens[customerHash] = sessionToken{token, exp}
	s.sessions.mu.Unlock()
	return token, exp, nil
}
