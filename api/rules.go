package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/earning"
)

// ruleView is how a rule version is shown: its definition as an object beside its name and version.
type ruleView struct {
	Name       string          `json:"name"`
	Version    int64           `json:"version"`
	Active     bool            `json:"active"`
	Definition json.RawMessage `json:"definition"`
	Actor      string          `json:"actor"`
	CreatedAt  time.Time       `json:"created_at"`
}

func ruleViewOf(v tally.RuleVersion) ruleView {
	return ruleView{Name: v.Name, Version: v.Version, Active: v.Active, Definition: v.Definition, Actor: v.Actor, CreatedAt: v.CreatedAt}
}

// ruleBody is a rule as POST and PUT take it: the definition, the name (POST), and for PUT optionally
// the version being edited, so that two admins editing at once do not overwrite each other unseen.
type ruleBody struct {
	Name            string `json:"name"`
	ExpectedVersion *int64 `json:"expected_version"`
	earning.RuleDef
}

func actorOf(r *http.Request) string { return "client:" + principal(r).ClientID }

// testPath refuses the methods of /v1/admin/rules/{name} on /v1/admin/rules/test, which only POST takes
// ("test" is no rule's name: earning.CompileRule refuses it).
func testPath(w http.ResponseWriter, r *http.Request) bool {
	if r.PathValue("name") != earning.ReservedRuleName {
		return false
	}
	w.Header().Set("Allow", http.MethodPost)
	writeError(w, r, tally.Errorf(codeMethod, "%s takes POST, not %s", r.URL.Path, r.Method))
	return true
}

// handleRules lists the newest version of every rule.
func (s *Server) handleRules(w http.ResponseWriter, r *http.Request) {
	vs, err := s.Earning.Rules(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := struct {
		Rules []ruleView `json:"rules"`
	}{Rules: make([]ruleView, 0, len(vs))}
	for _, v := range vs {
		out.Rules = append(out.Rules, ruleViewOf(v))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleRule shows every version of one rule, oldest first.
func (s *Server) handleRule(w http.ResponseWriter, r *http.Request) {
	if testPath(w, r) {
		return
	}
	vs, err := s.Earning.History(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := struct {
		Name     string     `json:"name"`
		Versions []ruleView `json:"versions"`
	}{Name: r.PathValue("name")}
	for _, v := range vs {
		out.Versions = append(out.Versions, ruleViewOf(v))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleCreateRule stores a new rule as its version 1.
func (s *Server) handleCreateRule(w http.ResponseWriter, r *http.Request) {
	var b ruleBody
	if !s.readRule(w, r, &b) {
		return
	}
	if b.ExpectedVersion != nil {
		writeError(w, r, tally.Errorf(tally.EINVALID, "expected_version is for PUT"))
		return
	}
	v, err := s.Earning.Put(r.Context(), b.Name, b.RuleDef, actorOf(r), true, nil)
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.log.Info("earning rule created", "rule", v.Name, "version", v.Version, "actor", v.Actor)
	writeJSON(w, http.StatusCreated, ruleViewOf(v))
}

// handlePutRule stores a new version of a rule; earlier versions are kept.
func (s *Server) handlePutRule(w http.ResponseWriter, r *http.Request) {
	if testPath(w, r) {
		return
	}
	var b ruleBody
	if !s.readRule(w, r, &b) {
		return
	}
	name := r.PathValue("name")
	if b.Name != "" && b.Name != name {
		writeError(w, r, tally.Errorf(tally.EINVALID, "the body names rule %q, the path %q", b.Name, name))
		return
	}
	v, err := s.Earning.Put(r.Context(), name, b.RuleDef, actorOf(r), false, b.ExpectedVersion)
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.log.Info("earning rule changed", "rule", v.Name, "version", v.Version, "actor", v.Actor)
	writeJSON(w, http.StatusOK, ruleViewOf(v))
}

// handleDeleteRule deactivates a rule: a new version that pays nothing.
func (s *Server) handleDeleteRule(w http.ResponseWriter, r *http.Request) {
	if testPath(w, r) {
		return
	}
	v, err := s.Earning.Deactivate(r.Context(), r.PathValue("name"), actorOf(r))
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.log.Info("earning rule deactivated", "rule", v.Name, "version", v.Version, "actor", v.Actor)
	writeJSON(w, http.StatusOK, ruleViewOf(v))
}

func (s *Server) readRule(w http.ResponseWriter, r *http.Request, b *ruleBody) bool {
	body, err := readJSON(w, r, s.opts.BodyLimit)
	if err == nil {
		err = decodeStrict(body, b)
	}
	if err != nil {
		writeError(w, r, err)
		return false
	}
	return true
}

// handleTestRules shows what an event (a body transaction/process would take) would earn its customer
// now, rule by rule, without writing anything.
func (s *Server) handleTestRules(w http.ResponseWriter, r *http.Request) {
	body, err := readJSON(w, r, s.opts.BodyLimit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	ev, err := earning.ParseEvent(body)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var hash string
	if ev.Customer != "" {
		if hash, err = s.customerHash(ev.Customer); err != nil {
			writeError(w, r, err)
			return
		}
	}
	res, err := s.Earning.Test(r.Context(), hash, ev.Fields)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		CustomerHash string `json:"customer_hash,omitempty"`
		EventID      string `json:"event_id"`
		earning.TestResult
	}{publicHash(hash), ev.ID, res})
}

// handleCustomerTier shows a customer's stored tier, qualifying points and tier history.
func (s *Server) handleCustomerTier(w http.ResponseWriter, r *http.Request) {
	hash, err := s.customerHash(r.PathValue("customer"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	st, err := s.Earning.Standing(r.Context(), hash)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		CustomerHash string `json:"customer_hash"`
		earning.Standing
	}{publicHash(hash), st})
}

// handleTierReview runs the end-of-period tier review (for the newest ended period unless the body
// names one with period_end). Running it again, or on several replicas at once, changes nothing more.
func (s *Server) handleTierReview(w http.ResponseWriter, r *http.Request) {
	var b struct {
		PeriodEnd *time.Time `json:"period_end"`
	}
	if r.ContentLength != 0 {
		body, err := readJSON(w, r, s.opts.BodyLimit)
		if err == nil {
			err = decodeStrict(body, &b)
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
	}
	end := s.Earning.Programme().PeriodEnd(time.Now())
	if b.PeriodEnd != nil {
		end = *b.PeriodEnd
	}
	rep, err := s.Ledger.ReviewTiers(r.Context(), end)
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.log.Info("tier review", "period_end", rep.PeriodEnd, "reviewed", rep.Reviewed, "downgraded", rep.Downgraded, "actor", actorOf(r))
	writeJSON(w, http.StatusOK, rep)
}
