package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api"
	"github.com/tally-ledger/tally/api/apitest"
	"github.com/tally-ledger/tally/api/apitest/browsertest"
	"github.com/tally-ledger/tally/ledger"
)

// The browser tests load the LoyaltyWidget in headless Chromium from a host page on another origin than
// the API, as a customer's site embeds it beside the Genesys Messenger, with the integration guide's init
// call, against a real server on a real store. Screenshots go to t.ArtifactDir() (see browsertest).

// hostSite is a customer's web site on its own origin: pages that embed the widget and the Messenger,
// and a back end that mints a portal session for its logged-in customer (what onSessionExpired calls).
type hostSite struct {
	*httptest.Server
	mu    sync.Mutex
	pages map[string]string
	fresh func(customer string) string // a new session token for the customer
}

func newHostSite(t *testing.T) *hostSite {
	t.Helper()
	h := &hostSite{pages: map[string]string{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/genesys-bootstrap/genesys.min.js": // the Messenger's loader, stubbed: no internet here
			w.Header().Set("Content-Type", "text/javascript")
			fmt.Fprint(w, `window.Genesys.loaded = true;`)
			return
		case "/img/gift.svg":
			w.Header().Set("Content-Type", "image/svg+xml")
			fmt.Fprint(w, `<svg xmlns="http://www.w3.org/2000/svg" width="48" height="48"><rect width="48" height="48" fill="#c33"/></svg>`)
			return
		case "/loyalty-session":
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprint(w, h.fresh(r.URL.Query().Get("customer")))
			return
		}
		h.mu.Lock()
		page, ok := h.pages[r.URL.Path]
		h.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	}))
	t.Cleanup(h.Close)
	return h
}

// widgetPage is a host page with the Genesys Messenger snippet and the widget, initialised exactly as
// the integration guide writes it; extra is more init options (JS source), e.g. onSessionExpired.
type widgetPage struct {
	api, token, customerID, theme, extra string
	refreshMS                            int // refreshInterval; the guide's 30000 when 0
}

func (p widgetPage) html() string {
	if p.refreshMS == 0 {
		p.refreshMS = 30000
	}
	q := func(s string) string { b, _ := json.Marshal(s); return strings.ReplaceAll(string(b), `"`, `'`) }
	return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme support</title>
<script type="text/javascript" charset="utf-8">
  (function (g, e, n, es, ys) {
    g['_genesysJs'] = e;
    g[e] = g[e] || function () { (g[e].q = g[e].q || []).push(arguments) };
    g[e].t = 1 * new Date();
    g[e].c = es;
    ys = document.createElement('script'); ys.async = 1; ys.src = n; ys.charset = 'utf-8'; document.head.appendChild(ys);
  })(window, 'Genesys', '/genesys-bootstrap/genesys.min.js', {
    environment: 'prod-euw2',
    deploymentId: '5f7c7a57-3d4b-4b1a-9a55-1a2b3c4d5e6f'
  });
</script>
</head><body>
<h1>Acme support</h1>
<div id="loyalty-portal"></div>
<script src="` + p.api + `/widget/v2.1.0/bundle.min.js"></script>
<script>
  LoyaltyWidget.init({
    container: 'loyalty-portal',
    apiUrl: ` + q(p.api+"/v1/portal") + `,
    oauthToken: ` + q(p.token) + `,
    customerId: ` + q(p.customerID) + `,
    theme: ` + q(p.theme) + `,
    refreshInterval: ` + fmt.Sprint(p.refreshMS) + p.extra + `
  });
</script>
</body></html>`
}

// serve publishes the page at path and returns its URL.
func (h *hostSite) serve(path string, p widgetPage) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pages[path] = p.html()
	return h.URL + path
}

// widgetRewards is the catalog of the browser tests, for a customer with 3000 points (base tier).
func widgetRewards() []tally.Reward {
	n := func(v int64) *int64 { return &v }
	return []tally.Reward{
		{ID: "RWD-1001", Name: "Free coffee", Description: "Any size, any shop", PointCost: 500, Inventory: n(0), FulfillmentMethod: tally.MethodEmail, Active: true},
		{ID: "RWD-2002", Name: "Priority support", Description: "For a month", PointCost: 1500, MinTier: "silver", FulfillmentMethod: tally.MethodManual, Active: true},
		{ID: "RWD-3003", Name: "Cinema ticket", PointCost: 1200, Inventory: n(50), FulfillmentMethod: tally.MethodEmail, Active: true},
		{ID: "RWD-4004", Name: "Museum pass", PointCost: 600, Inventory: n(10), FulfillmentMethod: tally.MethodEmail, Active: true},
		{ID: "RWD-8842", Name: "£25 gift card", Description: "Sent by email", PointCost: 2500, FulfillmentMethod: tally.MethodEmail, Active: true},
		{ID: "RWD-9000", Name: "Weekend away", PointCost: 9000, FulfillmentMethod: tally.MethodEmail, Active: true},
	}
}

// widgetFixture is a server with the catalog, a host site on another origin allowed by --cors-origins,
// and a browser.
type widgetFixture struct {
	srv     *apitest.Server
	host    *hostSite
	browser *browsertest.Browser
}

func newWidgetFixture(t *testing.T) *widgetFixture {
	t.Helper()
	browser := browsertest.New(t)
	host := newHostSite(t)
	srv := apitest.Start(t, apitest.SQLite, apitest.Config{Options: api.Options{CORSOrigins: []string{host.URL}}})
	for _, r := range widgetRewards() {
		switch r.ID { // images from the host site: one that loads, one that does not
		case "RWD-8842":
			r.ImageURL = host.URL + "/img/gift.svg"
		case "RWD-9000":
			r.ImageURL = host.URL + "/img/missing.png"
		}
		if err := srv.Store.PutReward(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	host.fresh = func(customer string) string { return widgetSession(t, srv, customer, time.Hour) }
	return &widgetFixture{srv: srv, host: host, browser: browser}
}

// customer gives a new customer 3000 points and returns their raw id.
func (f *widgetFixture) customer(t *testing.T, id string) string {
	t.Helper()
	_, err := f.srv.Ledger.Accrue(context.Background(), ledger.Request{Channel: "test", Key: "welcome-" + id, Account: f.srv.Hasher.Hash(id), Amount: 3000, Reason: "welcome"})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// widgetSession issues a portal session token for a raw customer id (a negative ttl: an expired one).
func widgetSession(t testing.TB, srv *apitest.Server, customer string, ttl time.Duration) string {
	t.Helper()
	tok, _, err := srv.Issuer.IssueSession(context.Background(), srv.Hasher.Hash(customer), ttl)
	if err != nil {
		t.Error(err)
	}
	return tok
}

// balance is the customer's balance as the ledger has it.
func (f *widgetFixture) balance(t *testing.T, customer string) int64 {
	t.Helper()
	acct, err := f.srv.Ledger.Balance(context.Background(), f.srv.Hasher.Hash(customer))
	if err != nil {
		t.Fatal(err)
	}
	return acct.Balance
}

// The selectors of the widget the tests read.
const (
	wBalance = `document.querySelector('[data-lw=balance]').textContent`
	wMessage = `document.querySelector('[data-lw=message]').textContent`
	wDialog  = `document.querySelector('[data-lw=dialog]')`
)

func wItem(id string) string { return `document.querySelector('[data-reward-id="` + id + `"]')` }

func TestWidgetBrowser(t *testing.T) {
	f := newWidgetFixture(t)

	t.Run("redeem through the modal", func(t *testing.T) {
		cust := f.customer(t, "c-redeem-7d1e3f0")
		tab := f.browser.Tab(t)
		url := f.host.serve("/redeem", widgetPage{api: f.srv.URL, token: widgetSession(t, f.srv, cust, time.Hour), customerID: cust, theme: "light"})
		browsertest.Do(t, tab, "open the host page", chromedp.Navigate(url))
		browsertest.WaitFor(t, tab, "the catalog", wItem("RWD-8842"))
		if got := browsertest.Eval[string](t, tab, wBalance); got != "3,000 pts" {
			t.Errorf("balance shows %q, want 3,000 pts", got)
		}
		if got := browsertest.Eval[string](t, tab, `document.querySelector('[data-lw=tier]').textContent`); !strings.Contains(got, "base") {
			t.Errorf("tier shows %q", got)
		}
		// Affordable, not eligible, out of stock and unaffordable rewards look different, and only the
		// redeemable ones can be redeemed.
		for id, want := range map[string]string{"RWD-8842": "ok", "RWD-3003": "ok", "RWD-1001": "soldout", "RWD-2002": "ineligible", "RWD-9000": "unaffordable"} {
			state := browsertest.Eval[string](t, tab, wItem(id)+`.dataset.state`)
			disabled := browsertest.Eval[bool](t, tab, wItem(id)+`.querySelector('button').disabled`)
			if state != want || disabled != (want != "ok") {
				t.Errorf("%s: state %q disabled %v, want %q", id, state, disabled, want)
			}
		}
		if browsertest.Eval[string](t, tab, `getComputedStyle(`+wItem("RWD-1001")+`).opacity`) == browsertest.Eval[string](t, tab, `getComputedStyle(`+wItem("RWD-8842")+`).opacity`) {
			t.Error("an out-of-stock reward looks like a redeemable one")
		}
		browsertest.WaitFor(t, tab, "the gift card's image", wItem("RWD-8842")+`.querySelector('img.lw-img') && `+wItem("RWD-8842")+`.querySelector('img.lw-img').complete`)
		if !browsertest.Eval[bool](t, tab, wItem("RWD-8842")+`.querySelector('img.lw-img').naturalWidth > 0`) {
			t.Error("the gift card's image did not load")
		}
		browsertest.WaitFor(t, tab, "a broken image to go", `!`+wItem("RWD-9000")+`.querySelector('img')`)
		browsertest.Screenshot(t, tab, "catalog-light")

		// By keyboard: focus the reward's button, Enter opens the dialog, focus stays in it.
		browsertest.Do(t, tab, "open the dialog by keyboard", chromedp.Focus(chromedp.CSS(`[data-reward="RWD-8842"]`)), chromedp.KeyEvent(kb.Enter))
		browsertest.WaitFor(t, tab, "the dialog", wDialog)
		for attr, want := range map[string]string{"role": "dialog", "aria-modal": "true"} {
			if got := browsertest.Eval[string](t, tab, wDialog+`.getAttribute('`+attr+`')`); got != want {
				t.Errorf("dialog %s=%q, want %q", attr, got, want)
			}
		}
		if !browsertest.Eval[bool](t, tab, `!!document.getElementById(`+wDialog+`.getAttribute('aria-labelledby'))`) {
			t.Error("the dialog's aria-labelledby names no element")
		}
		for i := range 5 {
			browsertest.Do(t, tab, "tab", chromedp.KeyEvent(kb.Tab))
			if !browsertest.Eval[bool](t, tab, wDialog+`.contains(document.activeElement)`) {
				t.Fatalf("after %d Tab presses focus left the dialog for %s", i+1, browsertest.Eval[string](t, tab, `document.activeElement.outerHTML`))
			}
		}
		browsertest.Do(t, tab, "shift-tab", chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)))
		if !browsertest.Eval[bool](t, tab, wDialog+`.contains(document.activeElement)`) {
			t.Fatal("after Shift+Tab focus left the dialog")
		}
		// Escape closes it and gives the focus back to the reward's button; nothing is redeemed.
		browsertest.Do(t, tab, "escape", chromedp.KeyEvent(kb.Escape))
		browsertest.WaitFor(t, tab, "the dialog to close", `!`+wDialog)
		if got := browsertest.Eval[string](t, tab, `document.activeElement.dataset.reward || ""`); got != "RWD-8842" {
			t.Errorf("after Escape focus is on %q, want the reward's button", got)
		}

		browsertest.Do(t, tab, "open the dialog", chromedp.Click(chromedp.CSS(`[data-reward="RWD-8842"]`)))
		browsertest.WaitFor(t, tab, "the dialog", wDialog)
		browsertest.Screenshot(t, tab, "confirm")
		browsertest.Do(t, tab, "confirm", chromedp.Click(chromedp.CSS(`[data-lw=confirm]`)))
		browsertest.WaitFor(t, tab, "the receipt", `document.querySelector('[data-lw=receipt-id]')`)
		receipt := browsertest.Eval[string](t, tab, `document.querySelector('[data-lw=receipt-id]').textContent`)
		if !strings.HasPrefix(receipt, "rcp_") {
			t.Errorf("receipt id %q", receipt)
		}
		if got := browsertest.Eval[string](t, tab, `document.querySelector('[data-lw=balance-after]').textContent`); got != "500 pts" {
			t.Errorf("the receipt's new balance is %q, want 500 pts", got)
		}
		browsertest.WaitFor(t, tab, "the lower balance", wBalance+` === "500 pts"`)
		browsertest.Screenshot(t, tab, "receipt")
		if got := f.balance(t, cust); got != 500 {
			t.Errorf("the ledger has %d points, want 500", got)
		}
		browsertest.Do(t, tab, "close the receipt", chromedp.KeyEvent(kb.Enter))
		browsertest.WaitFor(t, tab, "the dialog to close", `!`+wDialog)
		// The catalog now says the gift card is out of reach.
		browsertest.WaitFor(t, tab, "the catalog to follow the balance", wItem("RWD-8842")+`.dataset.state === "unaffordable"`)
		// The raw customer id is nowhere the widget could leave it.
		kept := browsertest.Eval[string](t, tab, `document.getElementById('loyalty-portal').outerHTML + JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie`)
		if strings.Contains(kept, cust) {
			t.Error("the raw customer id is in the widget's DOM or the page's storage")
		}
	})

	t.Run("dark theme", func(t *testing.T) {
		cust := f.customer(t, "c-dark-22aa4b6e")
		tab := f.browser.Tab(t)
		url := f.host.serve("/dark", widgetPage{api: f.srv.URL, token: widgetSession(t, f.srv, cust, time.Hour), customerID: cust, theme: "dark"})
		browsertest.Do(t, tab, "open the host page", chromedp.Navigate(url))
		browsertest.WaitFor(t, tab, "the catalog", wItem("RWD-8842"))
		bg := browsertest.Eval[string](t, tab, `getComputedStyle(document.querySelector('.lw-root')).backgroundColor`)
		if bg != "rgb(22, 26, 34)" {
			t.Errorf("dark theme background %q", bg)
		}
		browsertest.Do(t, tab, "open the dialog", chromedp.Click(chromedp.CSS(`[data-reward="RWD-3003"]`)))
		browsertest.WaitFor(t, tab, "the dialog", wDialog)
		if got := browsertest.Eval[string](t, tab, `getComputedStyle(`+wDialog+`).backgroundColor`); got != bg {
			t.Errorf("dark dialog background %q, want %q", got, bg)
		}
		browsertest.Screenshot(t, tab, "dark")
	})

	t.Run("expired session", func(t *testing.T) {
		cust := f.customer(t, "c-expired-9c105e8f")
		expired := widgetSession(t, f.srv, cust, -time.Hour)
		tab := f.browser.Tab(t)
		url := f.host.serve("/expired", widgetPage{api: f.srv.URL, token: expired, customerID: cust, theme: "light"})
		browsertest.Do(t, tab, "open the host page", chromedp.Navigate(url))
		browsertest.WaitFor(t, tab, "the expiry message", wMessage+`.includes("Your session has expired")`)
		if got := browsertest.Eval[string](t, tab, wBalance); got != "–" {
			t.Errorf("an expired session shows a balance: %q", got)
		}
		browsertest.Screenshot(t, tab, "expired")

		// With onSessionExpired the widget asks the host page for a new token and carries on.
		tab = f.browser.Tab(t)
		url = f.host.serve("/renewed", widgetPage{api: f.srv.URL, token: expired, customerID: cust, theme: "light",
			extra: ",\n    onSessionExpired: () => fetch('/loyalty-session?customer=' + encodeURIComponent(" + fmt.Sprintf("%q", cust) + ")).then(r => r.text())"})
		browsertest.Do(t, tab, "open the host page", chromedp.Navigate(url))
		browsertest.WaitFor(t, tab, "the catalog with the renewed session", wBalance+` === "3,000 pts"`)
		if got := browsertest.Eval[string](t, tab, wMessage); strings.Contains(got, "expired") {
			t.Errorf("renewed, the widget still says %q", got)
		}
		browsertest.Screenshot(t, tab, "renewed")
	})

	t.Run("the session is renewed before it expires", func(t *testing.T) {
		cust := f.customer(t, "c-renew-1d2e3f4a")
		short := widgetSession(t, f.srv, cust, 3*time.Second)
		tab := f.browser.Tab(t)
		url := f.host.serve("/renew", widgetPage{api: f.srv.URL, token: short, customerID: cust, theme: "light",
			extra: ",\n    onTokenRefreshed: (token) => { window.renewedToken = token; }"})
		browsertest.Do(t, tab, "open the host page", chromedp.Navigate(url))
		browsertest.WaitFor(t, tab, "a renewed token", `window.renewedToken`)
		renewed := browsertest.Eval[string](t, tab, `window.renewedToken`)
		if renewed == short {
			t.Fatal("the renewed token is the old one")
		}
		if res := f.srv.Do("GET", "/v1/portal/catalog", renewed, nil); res.Status != 200 {
			t.Errorf("the renewed token: %d %s", res.Status, res.Body)
		}
	})

	t.Run("refreshes every refreshInterval", func(t *testing.T) {
		cust := f.customer(t, "c-refresh-8c0f1d2e")
		tab := f.browser.Tab(t)
		url := f.host.serve("/refresh", widgetPage{api: f.srv.URL, token: widgetSession(t, f.srv, cust, time.Hour), customerID: cust, theme: "light", refreshMS: 1000})
		browsertest.Do(t, tab, "open the host page", chromedp.Navigate(url))
		browsertest.WaitFor(t, tab, "the balance", wBalance+` === "3,000 pts"`)
		// Points earned elsewhere (a conversation ends) show without a reload.
		if _, err := f.srv.Ledger.Accrue(context.Background(), ledger.Request{Channel: "test", Key: "more-" + cust, Account: f.srv.Hasher.Hash(cust), Amount: 2500, Reason: "more"}); err != nil {
			t.Fatal(err)
		}
		browsertest.WaitFor(t, tab, "the new balance", wBalance+` === "5,500 pts"`)
		browsertest.WaitFor(t, tab, "the new tier to open a reward", wItem("RWD-2002")+`.dataset.state === "ok"`)
	})

	t.Run("cost changed while confirming", func(t *testing.T) {
		cust := f.customer(t, "c-cost-6b4d21aa")
		tab := f.browser.Tab(t)
		url := f.host.serve("/cost", widgetPage{api: f.srv.URL, token: widgetSession(t, f.srv, cust, time.Hour), customerID: cust, theme: "light"})
		browsertest.Do(t, tab, "open the host page", chromedp.Navigate(url))
		browsertest.WaitFor(t, tab, "the catalog", wItem("RWD-3003"))
		browsertest.Do(t, tab, "open the dialog", chromedp.Click(chromedp.CSS(`[data-reward="RWD-3003"]`)))
		browsertest.WaitFor(t, tab, "the dialog", wDialog)
		// The programme manager raises the price while the customer reads the dialog.
		res := f.srv.Do("PUT", "/v1/catalog/rewards/RWD-3003", f.srv.Token(apitest.AllScopes...),
			[]byte(`{"name":"Cinema ticket","point_cost":1300,"inventory":50,"fulfillment_method":"email","active":true}`))
		if res.Status != 200 {
			t.Fatalf("raise the price: %d %s", res.Status, res.Body)
		}
		browsertest.Do(t, tab, "confirm", chromedp.Click(chromedp.CSS(`[data-lw=confirm]`)))
		browsertest.WaitFor(t, tab, "the cost-changed message", wMessage+`.includes("changed to 1,300 pts")`)
		browsertest.WaitFor(t, tab, "the catalog with the new cost", wItem("RWD-3003")+`.querySelector('.lw-cost').textContent === "1,300 pts"`)
		if browsertest.Eval[bool](t, tab, `!!`+wDialog) {
			t.Error("the dialog is still open after a 409")
		}
		browsertest.Screenshot(t, tab, "cost-changed")
		if got := f.balance(t, cust); got != 3000 {
			t.Errorf("a refused redemption charged: balance %d, want 3000", got)
		}
	})

	t.Run("a lost answer is retried with the same key", func(t *testing.T) {
		cust := f.customer(t, "c-lost-answer-4e6a")
		proxy := newLossyProxy(t, f.srv.URL)
		tab := f.browser.Tab(t)
		url := f.host.serve("/lossy", widgetPage{api: proxy.URL, token: widgetSession(t, f.srv, cust, time.Hour), customerID: cust, theme: "light"})
		browsertest.Do(t, tab, "open the host page", chromedp.Navigate(url))
		browsertest.WaitFor(t, tab, "the catalog", wItem("RWD-4004"))
		browsertest.Do(t, tab, "open the dialog", chromedp.Click(chromedp.CSS(`[data-reward="RWD-4004"]`)))
		browsertest.WaitFor(t, tab, "the dialog", wDialog)
		browsertest.Do(t, tab, "confirm", chromedp.Click(chromedp.CSS(`[data-lw=confirm]`)))
		browsertest.WaitFor(t, tab, "the receipt", `document.querySelector('[data-lw=receipt-id]')`)
		keys := proxy.redeemKeys()
		if len(keys) != 2 || keys[0] != keys[1] || keys[0] == "" {
			t.Fatalf("redeem requests carried the keys %q, want the same key twice (the first answer was lost)", keys)
		}
		if got := f.balance(t, cust); got != 3000-600 {
			t.Errorf("balance %d after one redemption retried, want %d", got, 3000-600)
		}
		// A second confirmation is a new redemption with a new key.
		browsertest.Do(t, tab, "close the receipt", chromedp.Click(chromedp.CSS(`[data-lw=done]`)))
		browsertest.WaitFor(t, tab, "the dialog to close", `!`+wDialog)
		// The catalog is drawn again after a redemption: a node found before then may be gone by the click,
		// so the click is made in the page, on the node there at that moment.
		browsertest.WaitFor(t, tab, "the catalog again", wItem("RWD-4004"))
		if !browsertest.Eval[bool](t, tab, `(() => { const b = document.querySelector('[data-reward="RWD-4004"]'); if (!b) return false; b.click(); return true })()`) {
			t.Fatal("open the dialog again: no button for RWD-4004")
		}
		browsertest.WaitFor(t, tab, "the dialog", wDialog)
		browsertest.Do(t, tab, "confirm", chromedp.Click(chromedp.CSS(`[data-lw=confirm]`)))
		browsertest.WaitFor(t, tab, "the second receipt", `document.querySelector('[data-lw=receipt-id]')`)
		if keys = proxy.redeemKeys(); len(keys) != 3 || keys[2] == keys[0] {
			t.Errorf("a second confirmation sent the keys %q, want a new one", keys)
		}
		if got := f.balance(t, cust); got != 3000-2*600 {
			t.Errorf("balance %d after two redemptions, want %d", got, 3000-2*600)
		}
	})

	t.Run("a customerId that is not the session's is refused", func(t *testing.T) {
		cust := f.customer(t, "c-victim-0f1d2e3f")
		attacker := f.customer(t, "c-attacker-5b6c7d8e")
		tab := f.browser.Tab(t)
		url := f.host.serve("/idor", widgetPage{api: f.srv.URL, token: widgetSession(t, f.srv, attacker, time.Hour), customerID: cust, theme: "light"})
		browsertest.Do(t, tab, "open the host page", chromedp.Navigate(url))
		// Refused at once: the session's customer is never shown under another customer's id.
		browsertest.WaitFor(t, tab, "the refusal", wMessage+`.includes("another customer")`)
		browsertest.Screenshot(t, tab, "refused")
		if got := browsertest.Text(tab); strings.Contains(got, "3,000") || strings.Contains(got, "3000") {
			t.Errorf("the widget shows the session's balance under another customer's id: %q", got)
		}
		for _, c := range []string{cust, attacker} {
			if got := f.balance(t, c); got != 3000 {
				t.Errorf("%s: balance %d after a refused redemption, want 3000", c, got)
			}
		}
	})

	t.Run("the portal page at /", func(t *testing.T) {
		tab := f.browser.Tab(t)
		browsertest.Do(t, tab, "open / without a session", chromedp.Navigate(f.srv.URL+"/"))
		browsertest.WaitFor(t, tab, "the help", `!document.getElementById('help').hidden`)
		if got := browsertest.Text(tab); !strings.Contains(got, "tally serve --demo") || strings.Contains(got, "Loading") {
			t.Errorf("without a session the page says %q", got)
		}
		browsertest.Screenshot(t, tab, "portal-no-session")
		cust := f.customer(t, "c-portal-page-5e8f")
		tab = f.browser.Tab(t)
		browsertest.Do(t, tab, "open the printed link", chromedp.Navigate(f.srv.URL+"/#session="+widgetSession(t, f.srv, cust, time.Hour)+"&customer="+cust+"&theme=dark"))
		browsertest.WaitFor(t, tab, "the balance", wBalance+` === "3,000 pts"`)
		if !browsertest.Eval[bool](t, tab, `document.getElementById('help').hidden && !!document.querySelector('.lw-dark')`) {
			t.Error("with a session the page shows its help, or not the dark theme it was asked for")
		}
		browsertest.Screenshot(t, tab, "portal")
	})

	t.Run("container as a selector or an element, sessionToken", func(t *testing.T) {
		cust := f.customer(t, "c-containers-3f4a")
		token := widgetSession(t, f.srv, cust, time.Hour)
		tab := f.browser.Tab(t)
		url := f.host.serve("/containers", widgetPage{api: f.srv.URL, token: token, customerID: cust, theme: "light"})
		browsertest.Do(t, tab, "open the host page", chromedp.Navigate(url))
		browsertest.WaitFor(t, tab, "the first widget", wItem("RWD-3003"))
		tok, _ := json.Marshal(token)
		apiURL, _ := json.Marshal(f.srv.URL + "/v1/portal")
		browsertest.Do(t, tab, "two more widgets", chromedp.Evaluate[chromedp.Void](`
			document.body.insertAdjacentHTML('beforeend', '<div class="by-selector"></div><aside></aside>');
			LoyaltyWidget.init({container: '.by-selector', apiUrl: `+string(apiURL)+`, sessionToken: `+string(tok)+`});
			LoyaltyWidget.init({container: document.querySelector('aside'), apiUrl: `+string(apiURL)+`, sessionToken: `+string(tok)+`});`))
		for _, sel := range []string{".by-selector", "aside"} {
			browsertest.WaitFor(t, tab, "the widget in "+sel, `(document.querySelector('`+sel+` [data-lw=balance]') || {}).textContent === "3,000 pts"`)
		}
		msg := browsertest.Eval[string](t, tab, `(() => { try { LoyaltyWidget.init({container: 'nowhere', apiUrl: 'x', oauthToken: 'y'}); return ''; } catch (e) { return e.message; } })()`)
		if !strings.Contains(msg, "no element for container") {
			t.Errorf("init with a missing container: %q", msg)
		}
	})

	t.Run("an origin not allowed gets nothing", func(t *testing.T) {
		cust := f.customer(t, "c-other-origin-1")
		other := newHostSite(t)
		tab := f.browser.Tab(t)
		url := other.serve("/", widgetPage{api: f.srv.URL, token: widgetSession(t, f.srv, cust, time.Hour), customerID: cust, theme: "light"})
		browsertest.Do(t, tab, "open the page", chromedp.Navigate(url))
		browsertest.WaitFor(t, tab, "the unreachable message", wMessage+`.includes("cannot be reached")`)
		if got := browsertest.Eval[string](t, tab, wBalance); got != "–" {
			t.Errorf("a page on an origin not in --cors-origins read a balance: %q", got)
		}
	})
}

// lossyProxy stands between the widget and the real server and loses the answer to the first redeem
// request: the server applies it, the browser gets a 503 with Retry-After, as when a connection drops
// after the commit. It records each redeem request's idempotency key.
type lossyProxy struct {
	*httptest.Server
	mu   sync.Mutex
	keys []string
}

func newLossyProxy(t *testing.T, target string) *lossyProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(res *http.Response) error {
		if res.Request.Method != "POST" || !strings.HasSuffix(res.Request.URL.Path, "/redeem") {
			return nil
		}
		p.mu.Lock()
		first := len(p.keys) == 1
		p.mu.Unlock()
		if !first {
			return nil
		}
		res.Body.Close()
		body := `{"type":"about:blank","title":"Service unavailable","status":503,"code":"unavailable","detail":"lost"}`
		res.StatusCode, res.Status = 503, "503 Service Unavailable"
		res.Header.Set("Retry-After", "1")
		res.Header.Set("Content-Type", "application/problem+json")
		res.Header.Del("Content-Length")
		res.ContentLength = int64(len(body))
		res.Body = io.NopCloser(strings.NewReader(body))
		return nil
	}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/redeem") {
			b, _ := io.ReadAll(r.Body)
			var body struct {
				Key string `json:"idempotency_key"`
			}
			json.Unmarshal(b, &body)
			p.mu.Lock()
			p.keys = append(p.keys, body.Key)
			p.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *lossyProxy) redeemKeys() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.keys)
}
