package earning

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/filter"
)

// GuideFilter is the integration guide's earning filter: a closed web chat earns.
const GuideFilter = "$.type = 'WebChat' AND $.state = 'closed'"

// DefaultPoints is what the default rule earns.
const DefaultPoints = 10

// Rule earns Points for an event that its Filter matches.
type Rule struct {
	Name   string
	Filter *filter.Expr
	Points int64
}

// Tier is a level of the programme reached at MinPoints.
type Tier struct {
	Name      string `json:"name"`
	MinPoints int64  `json:"min_points"`
}

// Programme is the loyalty programme's configuration: its earning rules, tried in order (the first that
// matches earns), and its tiers.
type Programme struct {
	Rules []Rule
	Tiers []Tier // ascending by MinPoints; the first is the base tier, at 0
	// Lots is the points lifecycle: the "expiry", "return_policy" and "overdraft_limit" settings.
	Lots tally.LotPolicy
}

// DefaultProgramme is the programme Tally runs with no programme file: the guide's rule earning
// DefaultPoints, and three tiers.
func DefaultProgramme() *Programme {
	f, err := filter.Compile(GuideFilter)
	if err != nil {
		panic(err) // the guide's filter is a constant: a failure here is a bug in package filter
	}
	return &Programme{
		Rules: []Rule{{Name: "webchat-closed", Filter: f, Points: DefaultPoints}},
		Tiers: []Tier{{"base", 0}, {"silver", 5000}, {"gold", 20000}},
	}
}

// Match returns the first rule that matches the event.
func (p *Programme) Match(ev Event) (Rule, bool) {
	for _, r := range p.Rules {
		if r.Filter.Match(ev.Fields) {
			return r, true
		}
	}
	return Rule{}, false
}

// TierFor returns the tier a balance of points reaches. Until tiers over a rolling window arrive, a
// tier follows the current balance.
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
func (p *Programme) TierOf(balance int64) string { return p.TierFor(balance) }

// Rank orders the tiers as the programme lists them, the base tier first.
func (p *Programme) Rank(tier string) (int, bool) {
	for i, t := range p.Tiers {
		if t.Name == tier {
			return i, true
		}
	}
	return 0, false
}

var _ tally.TierPolicy = (*Programme)(nil)

// programmeFile is the JSON form of a programme.
type programmeFile struct {
	EarningRules []struct {
		Name   string `json:"name"`
		Filter string `json:"filter"`
		Points int64  `json:"points"`
	} `json:"earning_rules"`
	Tiers []Tier `json:"tiers"`
}

// LoadProgramme reads a programme file (JSON: {"earning_rules":[{"name","filter","points"}],
// "tiers":[{"name","min_points"}]}). Omitted tiers keep the defaults.
func LoadProgramme(path string) (*Programme, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("programme: %w", err)
	}
	return ParseProgramme(b)
}

// ParseProgramme reads a programme from its JSON form.
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
	for i, r := range f.EarningRules {
		if r.Name == "" {
			return nil, fmt.Errorf("programme: earning rule %d has no name", i+1)
		}
		if r.Points <= 0 || r.Points > tally.MaxAmount {
			return nil, fmt.Errorf("programme: earning rule %q: points must be between 1 and %d", r.Name, tally.MaxAmount)
		}
		expr, err := filter.Compile(r.Filter)
		if err != nil {
			return nil, fmt.Errorf("programme: earning rule %q: %w", r.Name, err)
		}
		p.Rules = append(p.Rules, Rule{Name: r.Name, Filter: expr, Points: r.Points})
	}
	if len(f.Tiers) > 0 {
		sort.Slice(f.Tiers, func(i, j int) bool { return f.Tiers[i].MinPoints < f.Tiers[j].MinPoints })
		if f.Tiers[0].MinPoints != 0 {
			return nil, fmt.Errorf("programme: the lowest tier must start at 0 points")
		}
		for _, t := range f.Tiers {
			if t.Name == "" {
				return nil, fmt.Errorf("programme: a tier has no name")
			}
		}
		p.Tiers = f.Tiers
	}
	return p, nil
}
