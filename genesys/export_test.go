package genesys

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// goldenConfig is the configuration of the golden files.
var goldenConfig = Config{BaseURL: "https://ledger.example.com", Region: "mypurecloud.ie"}

// mustExport exports c or fails the test.
func mustExport(t *testing.T, c Config) map[string][]byte {
	t.Helper()
	files, err := Export(c)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		if _, dup := out[f.Path]; dup {
			t.Fatalf("%s is generated twice", f.Path)
		}
		out[f.Path] = f.Data
	}
	return out
}

func TestGolden(t *testing.T) {
	dir := filepath.Join("testdata", "golden")
	files := mustExport(t, goldenConfig)
	if *update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		var list []File
		for p, b := range files {
			list = append(list, File{p, b})
		}
		if err := Write(dir, list); err != nil {
			t.Fatal(err)
		}
	}
	for p, b := range files {
		want, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			t.Errorf("%s: no golden file (run go test ./genesys -update): %v", p, err)
			continue
		}
		if !bytes.Equal(b, want) {
			t.Errorf("%s differs from its golden file (run go test ./genesys -update and review the diff)", p)
		}
	}
	// A golden file nothing generates any more is stale.
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if _, ok := files[filepath.ToSlash(rel)]; !ok {
			t.Errorf("golden file %s is no longer generated", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestExportIsDeterministic(t *testing.T) {
	a, b := mustExport(t, goldenConfig), mustExport(t, goldenConfig)
	for p := range a {
		if !bytes.Equal(a[p], b[p]) {
			t.Errorf("%s differs between two exports", p)
		}
	}
}

func TestExportUsesTheConfig(t *testing.T) {
	files := mustExport(t, Config{BaseURL: "https://loyalty.example.org/tally/", Region: "usw2.pure.cloud", MediaType: "CHAT", Queue: "VIP_Loyalty"})
	for _, want := range []struct{ file, text string }{
		{"data-actions/ledger/balance-lookup.json", `"https://loyalty.example.org/tally/v1/ledger/balance/lookup"`},
		{CustomAuthFile, `"https://loyalty.example.org/tally/oauth/token"`},
		{TriggerFile, `"value": "CHAT"`},
		{flowFile(Config{Flow: DefaultFlow}), "name: VIP_Loyalty"},
		{SnippetFile, "https://apps.usw2.pure.cloud/genesys-bootstrap/genesys.min.js"},
		{SnippetFile, "environment: 'prod-usw2'"},
		{SnippetFile, "https://loyalty.example.org/tally/widget/v2.1.0/bundle.min.js"},
		{InstallFile, "https://api.usw2.pure.cloud/api/v2/processAutomation/triggers"},
	} {
		if !strings.Contains(string(files[want.file]), want.text) {
			t.Errorf("%s does not contain %q", want.file, want.text)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		c       Config
		wantErr string // "" for valid
	}{
		{"https", Config{BaseURL: "https://ledger.example.com"}, ""},
		{"loopback http", Config{BaseURL: "http://127.0.0.1:8080"}, ""},
		{"localhost http", Config{BaseURL: "http://localhost:8080"}, ""},
		{"ipv6 loopback http", Config{BaseURL: "http://[::1]:8080"}, ""},
		{"every region", Config{BaseURL: "https://l.example.com", Region: "use2.us-gov-pure.cloud"}, ""},
		{"missing", Config{}, "base URL is required"},
		{"plain http", Config{BaseURL: "http://ledger.example.com"}, "must use https"},
		{"private address http", Config{BaseURL: "http://10.0.0.1"}, "must use https"},
		{"no scheme", Config{BaseURL: "ledger.example.com"}, "not an absolute"},
		{"ftp", Config{BaseURL: "ftp://ledger.example.com"}, "not an absolute"},
		{"credentials", Config{BaseURL: "https://u:p@ledger.example.com"}, "credentials"},
		{"query", Config{BaseURL: "https://ledger.example.com/?a=b"}, "query"},
		{"velocity", Config{BaseURL: "https://ledger.example.com/${input.x}"}, "templates would interpret"},
		{"quote", Config{BaseURL: `https://ledger.example.com/"x`}, "templates would interpret"},
		{"unknown region", Config{BaseURL: "https://l.example.com", Region: "example.com"}, "unknown region"},
		{"api host as region", Config{BaseURL: "https://l.example.com", Region: "api.mypurecloud.com"}, "unknown region"},
		{"unknown media", Config{BaseURL: "https://l.example.com", MediaType: "message"}, "unknown media type"},
		{"queue with a quote", Config{BaseURL: "https://l.example.com", Queue: `Q"`}, "queue name"},
		{"same integrations", Config{BaseURL: "https://l.example.com", Integration: "X", AdminIntegration: "X"}, "different names"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, err := Export(tc.c)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Export: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Export error = %v, want one containing %q", err, tc.wantErr)
			case tc.wantErr != "" && files != nil:
				t.Fatal("a failed export returned files")
			}
		})
	}
}
