package earning

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/filter"
)

// RuleDef is an earning rule as the programme file and the admin API write it (without its name, which
// names it apart). It is stored verbatim as a rule version's definition.
type RuleDef struct {
	// Filter selects the events the rule pays for (package filter's language).
	Filter string `json:"filter"`
	// Points is a whole number of points, or a points expression over the event's fields (a string:
	// see expr.go).
	Points json.RawMessage `json:"points"`
	// TierMultipliers scale the rule's points by the customer's tier, in percent (150 = x1.5), rounded
	// down; they replace the programme's multiplier of that tier for this rule.
	TierMultipliers map[string]int64 `json:"tier_multipliers,omitempty"`
	// Start and End bound a campaign: the rule pays for events decided in [Start, End).
	Start *time.Time `json:"start,omitempty"`
	End   *time.Time `json:"end,omitempty"`
	// Caps bound what the rule pays one customer per calendar day, ISO week and month (UTC).
	Caps *Caps `json:"caps,omitempty"`
	// Priority orders rules: of the non-stackable rules that match, only the highest pays.
	Priority int64 `json:"priority"`
	// Stackable rules pay whenever they match, beside each other and the non-stackable winner.
	Stackable bool `json:"stackable"`
	// PendingDays holds the points this rule pays pending for that many days after the event (a return
	// window): they count in the balance but cannot be spent until then, and a clawback cancels them.
	// When several paying rules hold, the accrual is pending for the longest.
	PendingDays int `json:"pending_days,omitempty"`
}

// maxPendingDays bounds a rule's return window (ten years).
const maxPendingDays = 3650

// Caps are per-customer limits of one rule, in points; 0 is no limit.
type Caps struct {
	Day   int64 `json:"day,omitempty"`
	Week  int64 `json:"week,omitempty"`
	Month int64 `json:"month,omitempty"`
}

// Cap periods.
const (
	PeriodDay   = "day"
	PeriodWeek  = "week"
	PeriodMonth = "month"
)

// maxMultiplier bounds a tier multiplier (percent): at most x100.
const maxMultiplier = 10000

// Rule is a compiled version of an earning rule.
type Rule struct {
	Name    string
	Version int64
	Active  bool
	Def     RuleDef
	Filter  *filter.Expr
	Fixed   int64 // when Expr is nil
	Expr    *Expr
}

// ReservedRuleName is no rule's name: /v1/admin/rules/test is the route that tests events.
const ReservedRuleName = "test"

// CompileRule checks a rule's definition and compiles it.
func CompileRule(name string, version int64, active bool, def RuleDef) (*Rule, error) {
	if name == ReservedRuleName {
		return nil, fmt.Errorf("%q is reserved: name the rule otherwise", name)
	}
	if name == "" || len(name) > tally.MaxRuleNameLen || strings.TrimSpace(name) != name || tally.CheckText("name", name) != nil {
		return nil, fmt.Errorf("a rule's name must be 1 to %d bytes of text without surrounding spaces", tally.MaxRuleNameLen)
	}
	r := &Rule{Name: name, Version: version, Active: active, Def: def}
	f, err := filter.Compile(def.Filter)
	if err != nil {
		return nil, fmt.Errorf("rule %q: filter: %w", name, err)
	}
	r.Filter = f
	pts := bytes.TrimSpace(def.Points)
	switch {
	case len(pts) == 0 || string(pts) == "null":
		return nil, fmt.Errorf("rule %q: points are required (a whole number, or an expression in a string)", name)
	case pts[0] == '"':
		var src string
		if err := json.Unmarshal(pts, &src); err != nil {
			return nil, fmt.Errorf("rule %q: points: %w", name, err)
		}
		if r.Expr, err = CompileExpr(src); err != nil {
			return nil, fmt.Errorf("rule %q: %w", name, err)
		}
	default:
		if err := json.Unmarshal(pts, &r.Fixed); err != nil || r.Fixed <= 0 || r.Fixed > tally.MaxAmount {
			return nil, fmt.Errorf("rule %q: points must be a whole number between 1 and %d, or an expression in a string", name, tally.MaxAmount)
		}
	}
	for tier, m := range def.TierMultipliers {
		if m < 0 || m > maxMultiplier {
			return nil, fmt.Errorf("rule %q: the multiplier of tier %q must be between 0 and %d percent", name, tier, maxMultiplier)
		}
	}
	if def.Start != nil && def.End != nil && !def.End.After(*def.Start) {
		return nil, fmt.Errorf("rule %q: the campaign ends before it starts", name)
	}
	if c := def.Caps; c != nil && (c.Day < 0 || c.Week < 0 || c.Month < 0) {
		return nil, fmt.Errorf("rule %q: caps must not be negative", name)
	}
	if def.PendingDays < 0 || def.PendingDays > maxPendingDays {
		return nil, fmt.Errorf("rule %q: pending_days must be between 0 and %d", name, maxPendingDays)
	}
	return r, nil
}

// Definition returns the rule's definition as stored.
func (r *Rule) Definition() json.RawMessage {
	b, err := json.Marshal(r.Def)
	if err != nil {
		panic(err) // a RuleDef always marshals
	}
	return b
}

// open reports whether the rule's campaign window holds at.
func (r *Rule) open(at time.Time) bool {
	if r.Def.Start != nil && at.Before(*r.Def.Start) {
		return false
	}
	return r.Def.End == nil || at.Before(*r.Def.End)
}

// Matches reports whether the rule is active, open at at, and its filter matches the fields.
func (r *Rule) Matches(fields map[string]any, at time.Time) bool {
	return r.Active && r.open(at) && r.Filter.Match(fields)
}

// base is the rule's points for an event before the tier multiplier and caps.
func (r *Rule) base(fields map[string]any) (int64, bool) {
	if r.Expr == nil {
		return r.Fixed, true
	}
	n, ok := r.Expr.Eval(fields)
	if !ok {
		return 0, false
	}
	return max(n, 0), true
}

// PeriodStart returns the start of the cap period holding at (UTC): the day, the ISO week (Monday), or
// the month.
func PeriodStart(period string, at time.Time) time.Time {
	at = at.UTC()
	day := time.Date(at.Year(), at.Month(), at.Day(), 0, 0, 0, 0, time.UTC)
	switch period {
	case PeriodWeek:
		return day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
	case PeriodMonth:
		return time.Date(at.Year(), at.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return day
}

// UsageKey names a usage counter.
type UsageKey struct {
	Account, Rule, Period string
	Start                 time.Time
}

// Line explains one rule's part in an event's award.
type Line struct {
	Rule      string `json:"rule"`
	Version   int64  `json:"version"`
	Stackable bool   `json:"stackable"`
	Priority  int64  `json:"priority"`
	// Outcome: "paid", "capped" (paid less, or nothing, for a cap), "outranked" (a higher-priority
	// non-stackable rule matched), "undefined" (the expression had no value for this event), "zero".
	Outcome    string `json:"outcome"`
	Base       int64  `json:"base"`
	Multiplier int64  `json:"multiplier_percent"`
	Multiplied int64  `json:"multiplied"`
	Points     int64  `json:"points"`
}

// Evaluation is what an event earns and why.
type Evaluation struct {
	Points int64  `json:"points"`
	Lines  []Line `json:"rules"`
}

// multiply applies a percentage, rounding down, without overflow.
func multiply(points, percent int64) int64 {
	if percent == 100 {
		return points
	}
	p := new(big.Int).Mul(big.NewInt(points), big.NewInt(percent))
	p.Quo(p, big.NewInt(100))
	if !p.IsInt64() || p.Int64() > tally.MaxAmount {
		return tally.MaxAmount
	}
	return p.Int64()
}

// evaluate decides what an event earns from rules (the current versions), for a customer of tier, with
// used telling what each rule already paid the customer in each cap period. Every matching stackable
// rule pays, and so does the highest-priority matching non-stackable rule (ties: the name first in
// byte order); each pays its points (fixed or computed) times the tier multiplier (percent, rounded
// down), then reduced to what its caps leave.
func evaluate(rules []*Rule, multipliers map[string]int64, account, tier string, fields map[string]any, at time.Time,
	used func(UsageKey) int64) Evaluation {
	var matched []*Rule
	for _, r := range rules {
		if r.Matches(fields, at) {
			matched = append(matched, r)
		}
	}
	sort.SliceStable(matched, func(i, j int) bool {
		if matched[i].Def.Priority != matched[j].Def.Priority {
			return matched[i].Def.Priority > matched[j].Def.Priority
		}
		return matched[i].Name < matched[j].Name
	})
	var ev Evaluation
	winner := false
	for _, r := range matched {
		l := Line{Rule: r.Name, Version: r.Version, Stackable: r.Def.Stackable, Priority: r.Def.Priority}
		if !r.Def.Stackable {
			if winner {
				l.Outcome = "outranked"
				ev.Lines = append(ev.Lines, l)
				continue
			}
			winner = true
		}
		base, ok := r.base(fields)
		if !ok {
			l.Outcome = "undefined"
			ev.Lines = append(ev.Lines, l)
			continue
		}
		pct, ok := r.Def.TierMultipliers[tier]
		if !ok {
			if pct, ok = multipliers[tier]; !ok {
				pct = 100
			}
		}
		l.Base, l.Multiplier = base, pct
		l.Multiplied = multiply(base, pct)
		l.Points, l.Outcome = l.Multiplied, "paid"
		if c := r.Def.Caps; c != nil {
			for _, pc := range []struct {
				period string
				cap    int64
			}{{PeriodDay, c.Day}, {PeriodWeek, c.Week}, {PeriodMonth, c.Month}} {
				if pc.cap <= 0 {
					continue
				}
				left := max(pc.cap-used(UsageKey{account, r.Name, pc.period, PeriodStart(pc.period, at)}), 0)
				if l.Points > left {
					l.Points, l.Outcome = left, "capped"
				}
			}
		}
		if l.Points == 0 && l.Outcome == "paid" {
			l.Outcome = "zero"
		}
		if ev.Points+l.Points > tally.MaxAmount {
			l.Points, l.Outcome = tally.MaxAmount-ev.Points, "capped"
		}
		ev.Points += l.Points
		ev.Lines = append(ev.Lines, l)
	}
	return ev
}

// award turns an evaluation into the ledger's award.
func (ev Evaluation) award() (a ledgerAward) {
	var names []string
	for _, l := range ev.Lines {
		if l.Points > 0 {
			a.Lines = append(a.Lines, tally.AccrualRule{Rule: l.Rule, Version: l.Version, Points: l.Points})
			names = append(names, l.Rule)
		}
	}
	a.Points = ev.Points
	switch len(names) {
	case 0:
	case 1:
		a.Reason = "earning rule " + names[0]
	default:
		a.Reason = "earning rules " + strings.Join(names, ", ")
	}
	return a
}
