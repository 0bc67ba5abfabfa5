package main

import (
	"path/filepath"
	"regexp"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/tally-ledger/tally/api/apitest/browsertest"
)

// TestServeDemoBrowser follows the README's first command as a new user does: `serve --demo`, open the
// Portal URL it prints, redeem the gift card through the widget.
func TestServeDemoBrowser(t *testing.T) {
	browser := browsertest.New(t)
	s := startServe(t, "--db", "sqlite:"+filepath.Join(t.TempDir(), "tally.db"), "--demo")
	m := regexp.MustCompile(`Portal:\s+(\S+/#session=\S+)`).FindStringSubmatch(s.out.String())
	if m == nil {
		t.Fatalf("no portal URL in the demo output:\n%s", s.out.String())
	}
	tab := browser.Tab(t)
	item := `document.querySelector('[data-reward-id="RWD-8842"]')`
	browsertest.Do(t, tab, "open the printed URL", chromedp.Navigate(m[1]))
	browsertest.WaitFor(t, tab, "the demo customer's balance", `document.querySelector('[data-lw=balance]').textContent === "3,000 pts"`)
	browsertest.WaitFor(t, tab, "the gift card", item+` && `+item+`.dataset.state === "ok"`)
	browsertest.Do(t, tab, "redeem", chromedp.Click(chromedp.CSS(`[data-reward="RWD-8842"]`)))
	browsertest.WaitFor(t, tab, "the dialog", `document.querySelector('[data-lw=confirm]')`)
	browsertest.Do(t, tab, "confirm", chromedp.Click(chromedp.CSS(`[data-lw=confirm]`)))
	browsertest.WaitFor(t, tab, "the receipt", `document.querySelector('[data-lw=receipt-id]')`)
	browsertest.WaitFor(t, tab, "the new balance", `document.querySelector('[data-lw=balance]').textContent === "500 pts"`)
	browsertest.Screenshot(t, tab, "demo-receipt")
}
