package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeDemoCommands runs the shell commands of README.md's `serve --demo` section, as written,
// against a running `serve --demo`, the way a new user pastes them into a second terminal: from a
// directory holding the database and the repository's testdata.
func TestReadmeDemoCommands(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"sh", "curl", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the README's commands need %s: %v", tool, err)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	script := readmeSection(t, string(readme), "## What `serve --demo` gives you")

	dir := t.TempDir()
	testdata, err := filepath.Abs("../../testdata")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(testdata, filepath.Join(dir, "testdata")); err != nil {
		t.Fatal(err)
	}
	startServe(t, "--db", "sqlite:"+filepath.Join(dir, "tally.db"), "--demo")

	cmd := exec.Command("sh", "-e", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CLIENT_ID=", "CLIENT_SECRET=", "TALLY_URL=", "TOKEN=", "SESSION=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's commands failed: %v\n%s\n%s", err, script, out)
	}
	// The lookup, the guide event (first delivery), the customer.end body (first delivery), the same event
	// in an EventBridge envelope (a redelivery), the history.
	// Then the redemption of the guide's reward from the portal.
	want := regexp.MustCompile(`(?s)"balance":3000,.*"event_id":"8b0f7a52-[^"]*".*HTTP 201.*"event_id":"customer.end/[^"]*".*HTTP 201.*HTTP 200.*"idempotency_key":"demo-seed".*"receipt_id":"rcp_[0-9a-f]+".*"reward_id":"RWD-8842".*HTTP 201`)
	if !want.Match(out) {
		t.Fatalf("the README's commands printed:\n%s", out)
	}
}

// readmeSection returns the ```sh blocks of one section of the README, joined.
func readmeSection(t *testing.T, readme, heading string) string {
	t.Helper()
	start := strings.Index(readme, heading+"\n")
	if start < 0 {
		t.Fatalf("README.md has no section %q", heading)
	}
	section := readme[start+len(heading):]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	var script strings.Builder
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1) {
		script.WriteString(m[1])
	}
	if script.Len() == 0 {
		t.Fatalf("README.md's section %q has no sh blocks", heading)
	}
	return script.String()
}
