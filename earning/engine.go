package earning

import (
	"bytes"
	"context"
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

type ledgerAward = ledger.Award

// SeedActor is the actor of the rule versions seeded from the programme file.
const SeedActor = "programme-file"

// DefaultRefresh is how long an Engine uses the rules it read before it reads them again: an edit made
// through another replica earns on this one within that time.
const DefaultRefresh = 5 * time.Second

// Engine applies the earning rules kept in the database (versioned; seeded from the programme file)
// with the programme's tiers. It is the ledger's Earner: awards are computed inside the ledger's locked
// decision step, where cap usage and the customer's tier are read.
type Engine struct {
	store     tally.ProgrammeStore // nil: the programme's own rules, as version 1, are the rules
	programme *Programme
	clock     func() time.Time
	// Refresh is how long rules read from the store are used before they are read again.
	Refresh time.Duration

	mu     sync.Mutex
	rules  []*Rule
	loaded time.Time
}

var _ ledger.Earner = (*Engine)(nil)

// NewEngine returns an engine over store's rules and p's tiers. clock may be nil (time.Now).
func NewEngine(store tally.ProgrammeStore, p *Programme, clock func() time.Time) *Engine {
	if clock == nil {
		clock = time.Now
	}
	e := &Engine{store: store, programme: p, clock: clock, Refresh: DefaultRefresh}
	if store == nil {
		e.rules = p.Rules
	}
	return e
}

// Programme returns the programme whose tiers the engine applies.
func (e *Engine) Programme() *Programme { return e.programme }

// Seed stores each rule of the programme file that the database lacks, as its first version, and a new
// version of each whose newest version was itself seeded from the file and differs from it now. A rule
// edited through the admin API since is left alone: the database is then its source of truth. Seeding
// is safe to run from several replicas at once.
func (e *Engine) Seed(ctx context.Context) ([]tally.RuleVersion, error) {
	if e.store == nil {
		return nil, nil
	}
	stored, err := e.store.EarningRules(ctx)
	if err != nil {
		return nil, err
	}
	newest := map[string]tally.RuleVersion{}
	for _, v := range stored {
		newest[v.Name] = v
	}
	var added []tally.RuleVersion
	for _, r := range e.programme.Rules {
		def := r.Definition()
		var expected int64
		if v, ok := newest[r.Name]; ok {
			if v.Actor != SeedActor || v.Active && sameJSON(v.Definition, def) {
				continue
			}
			expected = v.Version
		}
		v, err := e.store.AddRuleVersion(ctx, tally.RuleVersion{Name: r.Name, Active: true, Definition: def, Actor: SeedActor,
			CreatedAt: e.clock()}, &expected)
		if tally.ErrorCode(err) == tally.ECONFLICT {
			continue // another replica seeded it meanwhile
		}
		if err != nil {
			return added, err
		}
		added = append(added, v)
	}
	return added, e.Reload(ctx)
}

func sameJSON(a, b []byte) bool {
	var x, y bytes.Buffer
	if json.Compact(&x, a) != nil || json.Compact(&y, b) != nil {
		return false
	}
	return bytes.Equal(x.Bytes(), y.Bytes())
}

// Reload reads the current rule versions from the store.
func (e *Engine) Reload(ctx context.Context) error {
	if e.store == nil {
		return nil
	}
	vs, err := e.store.EarningRules(ctx)
	if err != nil {
		return err
	}
	var rules []*Rule
	for _, v := range vs {
		r, err := compileStored(v)
		if err != nil {
			continue // stored definitions were compiled before they were stored; a bad one earns nothing
		}
		rules = append(rules, r)
	}
	e.mu.Lock()
	e.rules, e.loaded = rules, e.clock()
	e.mu.Unlock()
	return nil
}

func compileStored(v tally.RuleVersion) (*Rule, error) {
	var def RuleDef
	if err := json.Unmarshal(v.Definition, &def); err != nil {
		return nil, err
	}
	return CompileRule(v.Name, v.Version, v.Active, def)
}

// current returns the rules, read again when they are older than Refresh.
func (e *Engine) current(ctx context.Context) ([]*Rule, error) {
	e.mu.Lock()
	rules, stale := e.rules, e.store != nil && (e.loaded.IsZero() || e.clock().Sub(e.loaded) >= e.Refresh || e.clock().Before(e.loaded))
	e.mu.Unlock()
	if !stale {
		return rules, nil
	}
	if err := e.Reload(ctx); err != nil {
		if rules != nil {
			// The last rules read, while the store cannot be read; tried again after Refresh, so that an
			// outage does not cost every event a failing read.
			e.mu.Lock()
			e.loaded = e.clock()
			e.mu.Unlock()
			return rules, nil
		}
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rules, nil
}

// snapshot returns the rules last read, without reading.
func (e *Engine) snapshot() []*Rule {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rules
}

// Earns reports whether some active rule, open now, matches the event: only such events need a
// customer and an accrual (whose amount the ledger then decides).
func (e *Engine) Earns(ctx context.Context, fields map[string]any) (bool, error) {
	return e.EarnsAt(ctx, fields, time.Time{})
}

// EarnsAt is Earns for an event that arrived at at (zero: now), such as one kept in the spool through
// an outage: a campaign open when it arrived still counts.
func (e *Engine) EarnsAt(ctx context.Context, fields map[string]any, at time.Time) (bool, error) {
	rules, err := e.current(ctx)
	if err != nil {
		return false, err
	}
	if now := e.clock(); at.IsZero() || at.After(now) {
		at = now
	}
	for _, r := range rules {
		if r.Matches(fields, at) {
			return true, nil
		}
	}
	return false, nil
}

// usageSince is the earliest cap period holding at.
func usageSince(at time.Time) time.Time {
	w, m := PeriodStart(PeriodWeek, at), PeriodStart(PeriodMonth, at)
	if w.Before(m) {
		return w
	}
	return m
}

// BeginEarning implements ledger.Earner: it reads the cap usage of the accounts, under their locks, for
// the cap periods holding at since and later.
func (e *Engine) BeginEarning(ctx context.Context, tx tally.WriteTx, accounts []string, since time.Time) (ledger.EarningRun, error) {
	run := &earningRun{rules: e.snapshot(), mult: e.programme.multipliers(), used: map[UsageKey]int64{}, added: map[UsageKey]int64{}}
	capped := false
	for _, r := range run.rules {
		capped = capped || r.Def.Caps != nil
	}
	if capped {
		usage, err := tx.RuleUsage(ctx, accounts, usageSince(since))
		if err != nil {
			return nil, err
		}
		for _, u := range usage {
			run.used[UsageKey{u.AccountID, u.Rule, u.Period, u.Start}] = u.Points
		}
	}
	return run, nil
}

// earningRun is one batch attempt's earning.
type earningRun struct {
	rules []*Rule
	mult  map[string]int64
	used  map[UsageKey]int64 // stored before the batch
	added map[UsageKey]int64 // granted by the batch
}

func (r *earningRun) Award(account, tier string, fields map[string]any, at time.Time) ledger.Award {
	ev := evaluate(r.rules, r.mult, account, tier, fields, at, func(k UsageKey) int64 { return r.used[k] + r.added[k] })
	a := ev.award()
	a.At = at
	days := 0
	for _, l := range a.Lines {
		for _, rule := range r.rules {
			if rule.Name == l.Rule && rule.Def.PendingDays > days {
				days = rule.Def.PendingDays
			}
		}
	}
	if days > 0 {
		until := at.AddDate(0, 0, days)
		a.PendingUntil = &until
	}
	return a
}

func (r *earningRun) Grant(account string, a ledger.Award) {
	for _, l := range a.Lines {
		for _, rule := range r.rules {
			if rule.Name != l.Rule || rule.Def.Caps == nil {
				continue
			}
			c := rule.Def.Caps
			for _, pc := range []struct {
				period string
				cap    int64
			}{{PeriodDay, c.Day}, {PeriodWeek, c.Week}, {PeriodMonth, c.Month}} {
				if pc.cap > 0 {
					r.added[UsageKey{account, l.Rule, pc.period, PeriodStart(pc.period, a.At)}] += l.Points
				}
			}
		}
	}
}

func (r *earningRun) Write(ctx context.Context, tx tally.WriteTx) error {
	if len(r.added) == 0 {
		return nil
	}
	usage := make([]tally.RuleUsage, 0, len(r.added))
	for k, n := range r.added {
		usage = append(usage, tally.RuleUsage{AccountID: k.Account, Rule: k.Rule, Period: k.Period, Start: k.Start, Points: n})
	}
	sort.Slice(usage, func(i, j int) bool {
		a, b := usage[i], usage[j]
		if a.AccountID != b.AccountID {
			return a.AccountID < b.AccountID
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		if a.Period != b.Period {
			return a.Period < b.Period
		}
		return a.Start.Before(b.Start)
	})
	return tx.AddRuleUsage(ctx, usage)
}

// TestResult is what an event would earn a customer now, and why; nothing is written.
type TestResult struct {
	Tier  string    `json:"tier"`
	At    time.Time `json:"at"`
	Earns bool      `json:"earns"`
	Evaluation
}

// Test evaluates an event for a customer (a customer hash; "" for a customer who never earned) as the
// ledger would now, reading the customer's tier and cap usage without locking or writing anything.
func (e *Engine) Test(ctx context.Context, account string, fields map[string]any) (TestResult, error) {
	rules, err := e.current(ctx)
	if err != nil {
		return TestResult{}, err
	}
	now := tally.LedgerTime(e.clock())
	res := TestResult{Tier: e.programme.BaseTier(), At: now}
	used := map[UsageKey]int64{}
	if account != "" && e.store != nil {
		t, err := e.store.CustomerTier(ctx, account)
		switch {
		case err == nil:
			res.Tier = t.Tier
		case tally.ErrorCode(err) != tally.ENOTFOUND:
			return TestResult{}, err
		}
		usage, err := e.store.RuleUsageOf(ctx, account, usageSince(now))
		if err != nil {
			return TestResult{}, err
		}
		for _, u := range usage {
			used[UsageKey{u.AccountID, u.Rule, u.Period, u.Start}] = u.Points
		}
	}
	res.Evaluation = evaluate(rules, e.programme.multipliers(), account, res.Tier, fields, now, func(k UsageKey) int64 { return used[k] })
	if res.Lines == nil {
		res.Lines = []Line{}
	}
	res.Earns = res.Points > 0
	return res, nil
}

// Rules returns the newest version of every rule, active or not.
func (e *Engine) Rules(ctx context.Context) ([]tally.RuleVersion, error) {
	if e.store == nil {
		var out []tally.RuleVersion
		for _, r := range e.programme.Rules {
			out = append(out, tally.RuleVersion{Name: r.Name, Version: r.Version, Active: r.Active, Definition: r.Definition(), Actor: SeedActor})
		}
		return out, nil
	}
	vs, err := e.store.EarningRules(ctx)
	if vs == nil && err == nil {
		vs = []tally.RuleVersion{}
	}
	return vs, err
}

// History returns every version of a rule, oldest first. ENOTFOUND when there is none.
func (e *Engine) History(ctx context.Context, name string) ([]tally.RuleVersion, error) {
	if e.store == nil {
		return nil, tally.Errorf(tally.EUNAVAILABLE, "rules are not kept in a database")
	}
	return e.store.RuleVersions(ctx, name)
}

// Put stores a new version of a rule (the first when create). expected, when not nil, is the version the
// caller edits (ECONFLICT when another was stored since). EINVALID for a definition that does not compile.
func (e *Engine) Put(ctx context.Context, name string, def RuleDef, actor string, create bool, expected *int64) (tally.RuleVersion, error) {
	if e.store == nil {
		return tally.RuleVersion{}, tally.Errorf(tally.EUNAVAILABLE, "rules are not kept in a database")
	}
	r, err := CompileRule(name, 0, true, def)
	if err != nil {
		return tally.RuleVersion{}, tally.Errorf(tally.EINVALID, "%s", err.Error())
	}
	if create {
		zero := int64(0)
		expected = &zero
	} else if _, err := e.store.RuleVersions(ctx, name); err != nil {
		return tally.RuleVersion{}, err
	}
	v, err := e.store.AddRuleVersion(ctx, tally.RuleVersion{Name: name, Active: true, Definition: r.Definition(), Actor: actor, CreatedAt: e.clock()}, expected)
	if create && tally.ErrorCode(err) == tally.ECONFLICT {
		return tally.RuleVersion{}, tally.Errorf(tally.ECONFLICT, "rule %q exists already: PUT /v1/admin/rules/%s adds a version", name, name)
	}
	if err != nil {
		return tally.RuleVersion{}, err
	}
	return v, e.Reload(ctx)
}

// Deactivate stores a version of a rule that pays nothing (its definition kept), unless the
// rule is inactive already (ECONFLICT).
func (e *Engine) Deactivate(ctx context.Context, name, actor string) (tally.RuleVersion, error) {
	if e.store == nil {
		return tally.RuleVersion{}, tally.Errorf(tally.EUNAVAILABLE, "rules are not kept in a database")
	}
	vs, err := e.store.RuleVersions(ctx, name)
	if err != nil {
		return tally.RuleVersion{}, err
	}
	last := vs[len(vs)-1]
	if !last.Active {
		return tally.RuleVersion{}, tally.Errorf(tally.ECONFLICT, "rule %q is inactive since version %d", name, last.Version)
	}
	v, err := e.store.AddRuleVersion(ctx, tally.RuleVersion{Name: name, Active: false, Definition: last.Definition, Actor: actor, CreatedAt: e.clock()}, &last.Version)
	if err != nil {
		return tally.RuleVersion{}, err
	}
	return v, e.Reload(ctx)
}

// Tier returns the tier a customer holds: the stored one, else the base tier.
func (e *Engine) Tier(ctx context.Context, account string) (string, error) {
	if e.store == nil {
		return e.programme.BaseTier(), nil
	}
	t, err := e.store.CustomerTier(ctx, account)
	switch {
	case err == nil:
		return t.Tier, nil
	case tally.ErrorCode(err) == tally.ENOTFOUND:
		return e.programme.BaseTier(), nil
	}
	return "", err
}

// Standing is a customer's tier, the qualifying points behind it, and the tier's history.
type Standing struct {
	Tier             string             `json:"tier"`
	Since            *time.Time         `json:"since"`
	QualifyingPoints int64              `json:"qualifying_points"`
	WindowStart      time.Time          `json:"window_start"`
	QualifiesFor     string             `json:"qualifies_for"`
	NextTier         *NextTier          `json:"next_tier"`
	History          []tally.TierChange `json:"history"`
}

// NextTier is the tier above a customer's, and the qualifying points it still needs.
type NextTier struct {
	Name         string `json:"name"`
	PointsNeeded int64  `json:"points_needed"`
}

// Standing reads a customer's tier standing now.
func (e *Engine) Standing(ctx context.Context, account string) (Standing, error) {
	if e.store == nil {
		return Standing{}, tally.Errorf(tally.EUNAVAILABLE, "tiers are not kept in a database")
	}
	now := tally.LedgerTime(e.clock())
	p := e.programme
	st := Standing{Tier: p.BaseTier(), WindowStart: p.QualifyingSince(now), History: []tally.TierChange{}}
	t, err := e.store.CustomerTier(ctx, account)
	switch {
	case err == nil:
		st.Tier, st.Since = t.Tier, &t.Since
	case tally.ErrorCode(err) != tally.ENOTFOUND:
		return Standing{}, err
	}
	if st.QualifyingPoints, err = e.store.QualifyingPoints(ctx, account, st.WindowStart, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		return Standing{}, err
	}
	st.QualifiesFor = p.TierFor(st.QualifyingPoints)
	have, _ := p.Rank(st.Tier)
	if have+1 < len(p.Tiers) {
		next := p.Tiers[have+1]
		st.NextTier = &NextTier{Name: next.Name, PointsNeeded: max(next.MinPoints-st.QualifyingPoints, 0)}
	}
	h, err := e.store.TierChanges(ctx, account)
	if err != nil {
		return Standing{}, err
	}
	if h != nil {
		st.History = h
	}
	return st, nil
}
