package genesys

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSnippetRuns runs the snippet's inline script in Node with a stand-in page (document, and a
// LoyaltyWidget that records its options) and checks what it asks of Messenger and of the widget.
func TestSnippetRuns(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the snippet's script is not run")
	}
	c := Config{BaseURL: "https://ledger.example.com", Region: "mypurecloud.de"}
	html := string(mustExport(t, c)[SnippetFile])
	if !strings.Contains(html, `<script src="https://ledger.example.com/widget/v2.1.0/bundle.min.js"></script>`) {
		t.Error("the snippet does not load the widget bundle from Tally")
	}
	scripts := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllStringSubmatch(html, -1)
	if len(scripts) != 1 {
		t.Fatalf("%d inline scripts, want 1", len(scripts))
	}
	page := `
const loaded = [];
globalThis.window = globalThis;
globalThis.document = {
  createElement: () => ({}),
  head: { appendChild: (el) => loaded.push(el.src) },
};
let widget = null;
globalThis.LoyaltyWidget = { init: (opts) => { widget = opts; } };
` + scripts[0][1] + `
console.log(JSON.stringify({ loaded, queue: window.Genesys.q.map((args) => Array.from(args)), config: window.Genesys.c, widget }));
`
	file := filepath.Join(t.TempDir(), "page.js")
	if err := os.WriteFile(file, []byte(page), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, file).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var got struct {
		Loaded []string
		Queue  [][]any
		Config map[string]string
		Widget map[string]any
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(got.Loaded) != 1 || got.Loaded[0] != "https://apps.mypurecloud.de/genesys-bootstrap/genesys.min.js" {
		t.Errorf("loaded %v", got.Loaded)
	}
	if got.Config["environment"] != "prod-euc1" || got.Config["deploymentId"] == "" {
		t.Errorf("Messenger config %v", got.Config)
	}
	if len(got.Queue) != 1 || got.Queue[0][0] != "command" || got.Queue[0][1] != "Database.set" {
		t.Fatalf("Messenger commands %v, want one Database.set", got.Queue)
	}
	attrs, _ := got.Queue[0][2].(map[string]any)["messaging"].(map[string]any)["customAttributes"].(map[string]any)
	if attrs[AttrCustomerID] != "CUSTOMER_ID" {
		t.Errorf("Database.set custom attributes %v, want %s", attrs, AttrCustomerID)
	}
	want := map[string]any{"container": "loyalty-portal", "apiUrl": "https://ledger.example.com/v1/portal",
		"oauthToken": "SESSION_TOKEN", "customerId": "CUSTOMER_ID", "theme": "light", "refreshInterval": float64(30000)}
	for k, v := range want {
		if got.Widget[k] != v {
			t.Errorf("LoyaltyWidget.init %s = %v, want %v", k, got.Widget[k], v)
		}
	}
	if len(got.Widget) != len(want) {
		t.Errorf("LoyaltyWidget.init options %v", got.Widget)
	}
}
