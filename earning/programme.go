package earning

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/tally-ledger/tally"
)

// GuideFilter is the integration guide's earning filter: a closed web chat earns.
const GuideFilter = "$.type = 'WebChat' AND $.state = 'closed'"

// DefaultPoints is what the default rule earns.
const DefaultPoints = 10

// Tier is a level of the programme, held from MinPoints qualifying points.
type Tier struct {
	Name      string `json:"name"`
	MinPoints int64  `json:"min_points"`
	// MultiplierPercent scales what every rule pays a customer of this tier (150 = x1.5, rounded down);
	// 0 or absent is 100. A rule's own tier_multipliers take precedence.
	MultiplierPercent int64 `json:"multiplier_percent,omitempty"`
}

// Qualification says how tiers are earned and kept.
type Qualification struct {
	// WindowMonths is the rolling window of qualifying points (default 12).
	WindowMonths int `json:"window_months"`
	// Review is the period at whose end downgrades are decided: "month" (default), "quarter" or "year".
	Review string `json:"review"`
}

// Programme is the loyalty programme's configuration: the earning rules it seeds (see Engine), its tiers
// and how they are qualified for.
type Programme struct {
	Rules         []*Rule
	Tiers         []Tier // ascending by MinPoints; the first is the base tier, at 0
	Qualification Qualification
	// Lots is the points lifecycle: the "expiry", "return_policy" and "overdraft_limit" settings.
	Lots tally.LotPolicy
}

// DefaultProgramme is the programme Tally runs with no programme file: the guide's rule earning
// DefaultPoints, and three tiers over 12 months, reviewed monthly.
func DefaultProgramme() *Programme {
	r, err := CompileRule("webchat-closed", 1, true, RuleDef{Filter: GuideFilter, Points: json.RawMessage(strconv.Itoa(DefaultPoints))})
	if err != nil {
		panic(err) // the guide's rule is a constant: a failure here is a bug
	}
	return &Programme{
		Rules:         []*Rule{r},
		Tiers:         []Tier{{Name: "base"}, {Name: "silver", MinPoints: 5000}, {Name: "gold", MinPoints: 20000}},
		Qualification: Qualification{WindowMonths: 12, Review: "month"},
	}
}

// Match returns the rule that would pay an event first, in the programme's own rules, ignoring caps and
// tiers: the highest-priority matching rule.
func (p *Programme) Match(ev Event) (*Rule, bool) {
	e := evaluate(p.Rules, nil, "", "", ev.Fields, time.Now(), func(UsageKey) int64 { return 0 })
	for _, l := range e.Lines {
		if l.Points > 0 {
			for _, r := range p.Rules {
				if r.Name == l.Rule {
					return r, true
				}
			}
		}
	}
	return nil, false
}

// TierFor returns the tier that this many qualifying points reach.
func (p *Programme) TierFor(points int64) string {
	tier := p.Tiers[0].Name
	for _, t := range p.Tiers {
		if points >= t.MinPoints {
			tier = t.Name
		}
	}
	return tier
}

// TierOf is TierFor: the programme is the ledger's tally.TierPolicy.
func (p *Programme) TierOf(points int64) string { return p.TierFor(points) }

// BaseTier is the tier of a customer with no stored tier.
func (p *Programme) BaseTier() string { return p.Tiers[0].Name }

// Rank orders the tiers as the programme lists them, the base tier first.
func (p *Programme) Rank(tier string) (int, bool) {
	for i, t := range p.Tiers {
		if t.Name == tier {
			return i, true
		}
	}
	return 0, false
}

// QualifyingSince is where the rolling window of qualifying points ending at now begins.
func (p *Programme) QualifyingSince(now time.Time) time.Time {
	return now.UTC().AddDate(0, -p.Qualification.WindowMonths, 0)
}

// PeriodEnd returns the end of the newest review period that has ended by now (the start of the
// current one), UTC.
func (p *Programme) PeriodEnd(now time.Time) time.Time {
	now = now.UTC()
	month := now.Month()
	switch p.Qualification.Review {
	case "quarter":
		month = (month-1)/3*3 + 1
	case "year":
		month = 1
	}
	return time.Date(now.Year(), month, 1, 0, 0, 0, 0, time.UTC)
}

// multipliers maps tiers to their programme-wide multipliers.
func (p *Programme) multipliers() map[string]int64 {
	m := make(map[string]int64, len(p.Tiers))
	for _, t := range p.Tiers {
		if t.MultiplierPercent > 0 {
			m[t.Name] = t.MultiplierPercent
		}
	}
	return m
}

var _ tally.TierPolicy = (*Programme)(nil)

// FileRule is an earning rule in the programme file: its name and its definition.
type FileRule struct {
	Name string `json:"name"`
	RuleDef
	// priority is whether the file gave a priority (rules without one keep the file's order).
	priority bool
}

// UnmarshalJSON reads a rule and notes whether it sets its priority.
func (f *FileRule) UnmarshalJSON(b []byte) error {
	type plain FileRule
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	var probe map[string]json.RawMessage
	_ = json.Unmarshal(b, &probe)
	_, p.priority = probe["priority"]
	*f = FileRule(p)
	return nil
}

// programmeFile is the JSON form of a programme.
type programmeFile struct {
	EarningRules  []FileRule     `json:"earning_rules"`
	Tiers         []Tier         `json:"tiers"`
	Qualification *Qualification `json:"tier_qualification"`
}

// LoadProgramme reads a programme file (see README: "The programme file").
func LoadProgramme(path string) (*Programme, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("programme: %w", err)
	}
	return ParseProgramme(b)
}

// ParseProgramme reads a programme from its JSON form. Rules that set no priority get one from their
// place in the file, the first highest, below every explicit priority of 1 or more, so that a file
// written when the first matching rule earned still earns the same. Omitted tiers keep the defaults.
func ParseProgramme(b []byte) (*Programme, error) {
	var f programmeFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("programme: %w", err)
	}
	p := DefaultProgramme()
	lots, err := tally.ParseLotPolicy(b)
	if err != nil {
		return nil, err
	}
	p.Lots = lots
	if len(f.EarningRules) == 0 {
		return nil, fmt.Errorf("programme: earning_rules is empty")
	}
	p.Rules = nil
	seen := map[string]bool{}
	for i, r := range f.EarningRules {
		if r.Name == "" {
			return nil, fmt.Errorf("programme: earning rule %d has no name", i+1)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("programme: earning rule %q is defined twice", r.Name)
		}
		seen[r.Name] = true
		if !r.priority {
			// Implicit priorities are 0 and below, in file order: -0, -1, -2...
			r.Priority = -int64(i)
		}
		rule, err := CompileRule(r.Name, 1, true, r.RuleDef)
		if err != nil {
			return nil, fmt.Errorf("programme: earning rule %q: %w", r.Name, err)
		}
		p.Rules = append(p.Rules, rule)
	}
	if len(f.Tiers) > 0 {
		sort.SliceStable(f.Tiers, func(i, j int) bool { return f.Tiers[i].MinPoints < f.Tiers[j].MinPoints })
		if f.Tiers[0].MinPoints != 0 {
			return nil, fmt.Errorf("programme: the lowest tier must start at 0 points")
		}
		names := map[string]bool{}
		for i, t := range f.Tiers {
			if t.Name == "" {
				return nil, fmt.Errorf("programme: a tier has no name")
			}
			if names[t.Name] || i > 0 && t.MinPoints == f.Tiers[i-1].MinPoints {
				return nil, fmt.Errorf("programme: tier %q repeats a name or a threshold", t.Name)
			}
			if t.MultiplierPercent < 0 || t.MultiplierPercent > maxMultiplier {
				return nil, fmt.Errorf("programme: tier %q: multiplier_percent must be between 0 and %d", t.Name, maxMultiplier)
			}
			names[t.Name] = true
		}
		p.Tiers = f.Tiers
	}
	if q := f.Qualification; q != nil {
		if q.WindowMonths == 0 {
			q.WindowMonths = 12
		}
		if q.Review == "" {
			q.Review = "month"
		}
		if q.WindowMonths < 1 || q.WindowMonths > 120 {
			return nil, fmt.Errorf("programme: tier_qualification.window_months must be between 1 and 120")
		}
		if q.Review != "month" && q.Review != "quarter" && q.Review != "year" {
			return nil, fmt.Errorf("programme: tier_qualification.review must be month, quarter or year")
		}
		p.Qualification = *q
	}
	return p, nil
}
