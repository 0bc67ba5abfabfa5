// Package browsertest drives headless Chromium for end-to-end tests of the pages Tally serves (the
// LoyaltyWidget): a browser per test, a tab per subtest, and helpers that fail the test with a
// screenshot and the page's text. Screenshots go to t.ArtifactDir(): kept under -outputdir when go test
// runs with -artifacts (scripts/test does), else removed with the test.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// browserPath finds Chromium. In CI a missing browser fails the test (scripts/test installs it); on a
// developer's machine it skips with a message.
func path(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("TALLY_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if ci := os.Getenv("CI"); ci != "" && ci != "false" {
		t.Fatal("Chromium is not installed, and CI runs the browser tests: apt-get install -y chromium (scripts/test does)")
	}
	t.Skip("Chromium is not installed: skipping the browser tests (apt-get install -y chromium, or set TALLY_CHROMIUM)")
	return ""
}

// Browser is a headless Chromium.
type Browser struct{ ctx context.Context }

// New starts headless Chromium with a fresh profile and no background networking (the machine, like CI,
// may have no internet; without these flags Chromium's own connections are refused many at a time). It
// stops when the test ends. Without Chromium the test fails in CI and skips elsewhere.
func New(t *testing.T) *Browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(900, 900),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	if err := chromedp.Do(browser); err != nil { // start it now, so a broken install fails here
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	return &Browser{ctx: browser}
}

// Tab opens a tab that closes when the test ends; the page's console and uncaught exceptions are then
// logged.
func (b *Browser) Tab(t *testing.T) context.Context {
	t.Helper()
	tab, cancelTab := chromedp.NewContext(b.ctx)
	tab, cancelTimeout := context.WithTimeout(tab, 90*time.Second)
	console := chromedp.Events(tab, runtime.ConsoleAPICalled)
	exceptions := chromedp.Events(tab, runtime.ExceptionThrown)
	var mu sync.Mutex
	var logged []string
	var wg sync.WaitGroup
	wg.Go(func() {
		for ev, err := range console {
			if err != nil {
				return
			}
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			mu.Lock()
			logged = append(logged, "console."+string(ev.Type)+": "+strings.Join(args, " "))
			mu.Unlock()
		}
	})
	wg.Go(func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			text := ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				text += " " + ev.ExceptionDetails.Exception.Description
			}
			mu.Lock()
			logged = append(logged, "exception: "+text)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		wg.Wait()
		for _, l := range logged {
			t.Logf("browser %s", l)
		}
	})
	return tab
}

// Do runs browser actions and fails the test, with a screenshot, on the first error.
func Do(t *testing.T, tab context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(tab, actions...); err != nil {
		Screenshot(t, tab, "failed")
		t.Fatalf("%s: %v\npage text: %s", what, err, Text(tab))
	}
}

// WaitFor waits until the JavaScript expression is truthy.
func WaitFor(t *testing.T, tab context.Context, what, expr string) {
	t.Helper()
	Do(t, tab, "wait for "+what, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
}

// Eval evaluates a JavaScript expression in the page.
func Eval[T any](t *testing.T, tab context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(tab, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// Text is the visible text of the page.
func Text(tab context.Context) string {
	s, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return s
}

// Screenshot saves the page as TEST-NAME.png in the test's artifact directory and logs the path.
func Screenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	buf, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	// The file is named after the test too: go test puts artifact directories at random names.
	test := strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r == '\'' || r == '"' {
			return '_'
		}
		return r
	}, t.Name())
	path := filepath.Join(t.ArtifactDir(), test+"-"+name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
