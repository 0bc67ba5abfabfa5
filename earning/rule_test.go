package earning

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestExpr(t *testing.T) {
	fields := map[string]any{
		"handle_time_seconds": json.Number("1260"),
		"fraction":            json.Number("90.9"),
		"negative":            -7.5,
		"text":                "12",
		"big":                 json.Number("9007199254740993"),
		"nested":              map[string]any{"minutes": 4.0},
	}
	cases := []struct {
		src  string
		want int64
		ok   bool
	}{
		{"10 + handle_time_seconds / 60", 31, true},
		{"10 + $.handle_time_seconds / 60", 31, true},
		{"(10 + handle_time_seconds) / 60", 21, true},
		{"7 / 2", 3, true},
		{"-7 / 2", -3, true},
		{"7 % 4", 3, true},
		{"2 * 3 + 4 * 5 - 6", 20, true},
		{"--5", 5, true},
		{"fraction", 90, true},
		{"negative", -7, true},
		{"nested.minutes * 10", 40, true},
		{"min(100, handle_time_seconds)", 100, true},
		{"MAX(1, 2, 3)", 3, true},
		{"missing + 1", 0, false},
		{"text", 0, false},
		{"big", 0, false},
		{"1 / 0", 0, false},
		{"1 % 0", 0, false},
		{"9007199254740992 * 2", 0, false},
		{"min(missing, 1)", 0, false},
	}
	for _, tc := range cases {
		e, err := CompileExpr(tc.src)
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		got, ok := e.Eval(fields)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q = %d, %v; want %d, %v", tc.src, got, ok, tc.want, tc.ok)
		}
	}
	for _, bad := range []string{"", "1 +", "1.5", "(1", "1)", "avg(1)", "$", "a..b", "a.", "'x'", "1 ** 2", "min()",
		string(make([]byte, maxExprLen+1))} {
		if _, err := CompileExpr(bad); err == nil {
			t.Errorf("%q compiled", bad)
		}
	}
	deep := ""
	for range maxExprDepth + 2 {
		deep += "("
	}
	if _, err := CompileExpr(deep + "1"); err == nil {
		t.Error("an expression nested too deep compiled")
	}
}

func TestEvaluate(t *testing.T) {
	at := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	start, end := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	rule := func(name, filter, points string, mod func(*RuleDef)) *Rule {
		def := RuleDef{Filter: filter, Points: json.RawMessage(points)}
		if mod != nil {
			mod(&def)
		}
		r, err := CompileRule(name, 1, true, def)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	rules := []*Rule{
		rule("low", "$.type = 'chat'", "5", func(d *RuleDef) { d.Priority = 1 }),
		rule("high", "$.type = 'chat' and $.vip = true", "8", func(d *RuleDef) { d.Priority = 9 }),
		rule("tie-b", "$.type = 'mail'", "4", nil),
		rule("tie-a", "$.type = 'mail'", "6", nil),
		rule("bonus", "$.type = 'chat'", "2", func(d *RuleDef) { d.Stackable = true; d.TierMultipliers = map[string]int64{"gold": 250} }),
		rule("spring", "$.type = 'chat'", "3", func(d *RuleDef) { d.Stackable = true; d.Start, d.End = &start, &end }),
		rule("later", "$.type = 'chat'", "100", func(d *RuleDef) { d.Stackable = true; d.Start = &end }),
		rule("capped", "$.type = 'survey'", `"score * 10"`, func(d *RuleDef) { d.Stackable = true; d.Caps = &Caps{Day: 25, Month: 40} }),
	}
	off := rule("off", "$.type = 'chat'", "50", func(d *RuleDef) { d.Stackable = true })
	off.Active = false
	rules = append(rules, off)
	mult := map[string]int64{"gold": 150, "silver": 133}
	used := map[UsageKey]int64{
		{"c", "capped", PeriodMonth, PeriodStart(PeriodMonth, at)}: 30,
	}
	cases := []struct {
		name   string
		tier   string
		fields map[string]any
		want   int64
		paid   string
	}{
		{"highest non-stackable plus stackables", "base", map[string]any{"type": "chat", "vip": true}, 13, "high=8 bonus=2 spring=3"},
		{"outranked rule pays nothing", "base", map[string]any{"type": "chat"}, 10, "low=5 bonus=2 spring=3"},
		{"equal priority: first name wins", "base", map[string]any{"type": "mail"}, 6, "tie-a=6"},
		{"programme multiplier rounds down", "silver", map[string]any{"type": "chat"}, 11, "low=6 bonus=2 spring=3"},
		{"rule multiplier replaces the programme's", "gold", map[string]any{"type": "chat"}, 16, "low=7 bonus=5 spring=4"},
		{"month cap leaves 10", "base", map[string]any{"type": "survey", "score": 2}, 10, "capped=10"},
		{"undefined expression", "base", map[string]any{"type": "survey"}, 0, ""},
		{"nothing matches", "base", map[string]any{"type": "call"}, 0, ""},
	}
	for _, tc := range cases {
		ev := evaluate(rules, mult, "c", tc.tier, tc.fields, at, func(k UsageKey) int64 { return used[k] })
		paid := ""
		for _, l := range ev.Lines {
			if l.Points > 0 {
				if paid != "" {
					paid += " "
				}
				paid += fmt.Sprintf("%s=%d", l.Rule, l.Points)
			}
		}
		if ev.Points != tc.want || paid != tc.paid {
			t.Errorf("%s: %d (%s), want %d (%s); lines %+v", tc.name, ev.Points, paid, tc.want, tc.paid, ev.Lines)
		}
	}
}

func TestPeriodStart(t *testing.T) {
	sunday := time.Date(2026, 3, 15, 23, 59, 0, 0, time.UTC)
	if got := PeriodStart(PeriodWeek, sunday); !got.Equal(time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("week of a Sunday starts %v", got)
	}
	if got := PeriodStart(PeriodDay, sunday); !got.Equal(time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("day %v", got)
	}
	if got := PeriodStart(PeriodMonth, sunday); !got.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("month %v", got)
	}
	p := DefaultProgramme()
	if got := p.PeriodEnd(sunday); !got.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("monthly review period end %v", got)
	}
	p.Qualification.Review = "quarter"
	if got := p.PeriodEnd(sunday); !got.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("quarterly review period end %v", got)
	}
}

// TestLegacyProgramme checks that a programme file written when the first matching rule earned its fixed
// points still earns the same.
func TestLegacyProgramme(t *testing.T) {
	p, err := ParseProgramme([]byte(`{"earning_rules": [
		{"name": "first", "filter": "$.type = 'WebChat'", "points": 5},
		{"name": "second", "filter": "$.type = 'WebChat' or $.type = 'Voice'", "points": 50}
	]}`))
	if err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[string]int64{"WebChat": 5, "Voice": 50, "Email": 0} {
		ev := evaluate(p.Rules, nil, "", "base", map[string]any{"type": typ}, time.Now(), func(UsageKey) int64 { return 0 })
		if ev.Points != want {
			t.Errorf("%s earned %d, want %d", typ, ev.Points, want)
		}
	}
}

// TestProgrammeReference checks that the documented example programme loads.
func TestProgrammeReference(t *testing.T) {
	p, err := LoadProgramme(filepath.Join("..", "testdata", "programme.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rules) < 3 || len(p.Tiers) != 3 || p.Qualification.WindowMonths != 12 {
		t.Fatalf("%+v", p)
	}
	if _, err := os.Stat(filepath.Join("..", "testdata", "programme-event.json")); err != nil {
		t.Fatal(err)
	}
}
