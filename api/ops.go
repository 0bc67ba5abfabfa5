package api

import (
	"context"
	"net/http"
	"time"

	"github.com/tally-ledger/tally"
)

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(s.Issuer.JWKS())
}

// handleHealth says the process is alive; it touches nothing else.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReady says whether this replica can serve: the store answers and its schema is current.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		writeError(w, r, tally.Unavailable(err, "the store"))
		return
	}
	ok, err := s.Store.MigrationsCurrent(ctx)
	if err != nil {
		writeError(w, r, tally.Unavailable(err, "the store"))
		return
	}
	if !ok {
		writeError(w, r, tally.Errorf(tally.EUNAVAILABLE, "database migrations are pending"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
