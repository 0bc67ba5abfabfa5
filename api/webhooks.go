package api

import (
	"net/http"
	"strconv"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/webhooks"
)

// subscriptionBody is the body of POST /v1/admin/webhooks.
type subscriptionBody struct {
	URL          string   `json:"url"`
	EventTypes   []string `json:"event_types"`
	Filter       string   `json:"filter"`
	ExpiringDays int      `json:"expiring_days"`
}

// withSecret is a subscription as answered when its secret is shown: at creation and rotation.
type withSecret struct {
	tally.WebhookSubscription
	Secret string `json:"secret"`
}

func (s *Server) webhooksOn(w http.ResponseWriter, r *http.Request) bool {
	if s.Webhooks == nil {
		writeError(w, r, tally.Errorf(tally.EUNAVAILABLE, "webhook subscriptions are not configured on this server"))
		return false
	}
	return true
}

func (s *Server) handleCreateWebhook(w http.ResponseWriter, r *http.Request) {
	if !s.webhooksOn(w, r) {
		return
	}
	body, err := readJSON(w, r, s.opts.BodyLimit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var req subscriptionBody
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, r, err)
		return
	}
	sub, secret, err := s.Webhooks.Create(r.Context(), tally.WebhookSubscription{URL: req.URL, EventTypes: req.EventTypes,
		Filter: req.Filter, ExpiringDays: req.ExpiringDays})
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/admin/webhooks/"+sub.ID)
	writeJSON(w, http.StatusCreated, withSecret{sub, secret})
}

func (s *Server) handleListWebhooks(w http.ResponseWriter, r *http.Request) {
	if !s.webhooksOn(w, r) {
		return
	}
	subs, err := s.Webhooks.Store.Subscriptions(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": subs})
}

func (s *Server) handleGetWebhook(w http.ResponseWriter, r *http.Request) {
	if !s.webhooksOn(w, r) {
		return
	}
	sub, err := s.Webhooks.Store.Subscription(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sub)
}

func (s *Server) handlePatchWebhook(w http.ResponseWriter, r *http.Request) {
	if !s.webhooksOn(w, r) {
		return
	}
	body, err := readJSON(w, r, s.opts.BodyLimit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var p webhooks.Patch
	if err := decodeStrict(body, &p); err != nil {
		writeError(w, r, err)
		return
	}
	sub, err := s.Webhooks.Update(r.Context(), r.PathValue("id"), p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sub)
}

func (s *Server) handleDeleteWebhook(w http.ResponseWriter, r *http.Request) {
	if !s.webhooksOn(w, r) {
		return
	}
	if err := s.Webhooks.Store.DeleteSubscription(r.Context(), r.PathValue("id")); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleRotateWebhookSecret(w http.ResponseWriter, r *http.Request) {
	if !s.webhooksOn(w, r) {
		return
	}
	sub, secret, err := s.Webhooks.RotateSecret(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, withSecret{sub, secret})
}

// handleWebhookDeliveries lists a subscription's deliveries, newest first (?status=dead for the dead
// letters, ?limit= up to 500).
func (s *Server) handleWebhookDeliveries(w http.ResponseWriter, r *http.Request) {
	if !s.webhooksOn(w, r) {
		return
	}
	id := r.PathValue("id")
	if _, err := s.Webhooks.Store.Subscription(r.Context(), id); err != nil {
		writeError(w, r, err)
		return
	}
	status := r.URL.Query().Get("status")
	switch status {
	case "", tally.DeliveryPending, tally.DeliveryDelivered, tally.DeliverySkipped, tally.DeliveryDead:
	default:
		writeError(w, r, tally.Errorf(tally.EINVALID, "unknown delivery status %q", status))
		return
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			writeError(w, r, tally.Errorf(tally.EINVALID, "limit must be from 1 to 500"))
			return
		}
		limit = n
	}
	ds, err := s.Webhooks.Store.Deliveries(r.Context(), id, status, limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": ds})
}
