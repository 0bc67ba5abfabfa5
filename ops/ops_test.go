package ops_test

import (
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-ledger/tally/metrics"
)

// inCI reports whether a missing tool must fail the test rather than skip it.
func inCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if inCI() {
			t.Fatal("promtool is not installed (Debian package prometheus); scripts/test installs it")
		}
		t.Skip("promtool is not installed (apt-get install prometheus)")
	}
	return p
}

func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{
		{"check", "rules", "prometheus/alerts.yml"},
		{"test", "rules", "prometheus/alerts_test.yml"},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// exported lists the names of every metric the server registers, histogram series included.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	v := reflect.ValueOf(m).Elem()
	for i := 0; i < v.NumField(); i++ {
		if !v.Type().Field(i).IsExported() {
			continue
		}
		c, ok := v.Field(i).Interface().(prometheus.Collector)
		if !ok || v.Field(i).Type() == reflect.TypeOf(m.Registry) {
			continue
		}
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if sub := fqName.FindStringSubmatch(d.String()); sub != nil {
				names[sub[1]] = true
			}
		}
	}
	// Gauges read at scrape time are registered by their owners; gather them too.
	m.WatchSpool(func() (int64, time.Time) { return 0, time.Time{} })
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		names[f.GetName()] = true
	}
	if len(names) == 0 {
		t.Fatal("found no metrics in metrics.New()")
	}
	return names
}

// referenced returns the tally_* metric names used in text, without histogram suffixes.
func referenced(text string) []string {
	re := regexp.MustCompile(`\btally_[a-z_]+`)
	seen := map[string]bool{}
	for _, n := range re.FindAllString(text, -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(n, suffix) && !strings.HasSuffix(n, "_total"+suffix) {
				n = strings.TrimSuffix(n, suffix)
			}
		}
		seen[n] = true
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// TestMetricNamesExist fails when an alert or a dashboard panel names a metric the server does not
// export (a rename would otherwise silence the alert).
func TestMetricNamesExist(t *testing.T) {
	have := exported(t)
	for _, file := range []string{"prometheus/alerts.yml", "grafana/tally-dashboard.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		names := referenced(string(b))
		if len(names) == 0 {
			t.Fatalf("%s names no tally_ metric", file)
		}
		for _, n := range names {
			if !have[n] {
				t.Errorf("%s uses %s, which the server does not export", file, n)
			}
		}
	}
}

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/tally-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	if d.UID == "" || len(d.Panels) == 0 {
		t.Fatal("dashboard has no uid or no panels")
	}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if strings.Count(q.Expr, "(") != strings.Count(q.Expr, ")") {
				t.Errorf("panel %q: unbalanced query %s", p.Title, q.Expr)
			}
		}
	}
}

// buildStatic builds the binary as the Dockerfile does (no cgo) and checks it needs no dynamic loader,
// so that it runs on the empty base image.
func buildStatic(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tally")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "../cmd/tally")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary needs a dynamic loader: it would not run on the scratch image")
		}
	}
	return bin
}

// flagsOf lists the flags a subcommand accepts, from its -h output.
func flagsOf(t *testing.T, bin, sub string) map[string]bool {
	t.Helper()
	out, _ := exec.Command(bin, sub, "-h").CombinedOutput()
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) == 0 {
		t.Fatalf("tally %s -h listed no flags:\n%s", sub, out)
	}
	return flags
}

// TestDeployFiles checks that the systemd unit and the Dockerfile start the binary with commands and
// flags it has.
func TestDeployFiles(t *testing.T) {
	bin := buildStatic(t)
	unit, err := os.ReadFile("systemd/tally.service")
	if err != nil {
		t.Fatal(err)
	}
	docker, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(docker), "CGO_ENABLED=0") || !regexp.MustCompile(`(?m)^USER [1-9]`).Match(docker) {
		t.Error("Dockerfile must build without cgo and run as a non-root USER")
	}
	if !regexp.MustCompile(`(?m)^User=tally$`).Match(unit) {
		t.Error("the systemd unit must run as the tally user")
	}
	var lines []string
	for _, m := range regexp.MustCompile(`(?m)^Exec\w+=/usr/local/bin/tally (.*)$`).FindAllStringSubmatch(string(unit), -1) {
		lines = append(lines, m[1])
	}
	if m := regexp.MustCompile(`(?m)^CMD \[(.*)\]$`).FindSubmatch(docker); m != nil {
		lines = append(lines, strings.NewReplacer(`"`, "", ",", "").Replace(string(m[1])))
	}
	if len(lines) < 3 {
		t.Fatalf("found %d tally command lines in the unit and the Dockerfile, want 3", len(lines))
	}
	for _, line := range lines {
		words := strings.Fields(line)
		flags := flagsOf(t, bin, words[0])
		for _, w := range words[1:] {
			if !strings.HasPrefix(w, "-") {
				continue
			}
			name := strings.SplitN(strings.TrimLeft(w, "-"), "=", 2)[0]
			if !flags[name] {
				t.Errorf("%q: tally %s has no flag -%s", line, words[0], name)
			}
		}
	}
}
