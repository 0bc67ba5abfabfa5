package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCLIGenesysExport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kit")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"genesys", "export", "--base-url", "https://ledger.example.com", "--out", dir, "--region", "mypurecloud.de"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("export: %v (%s)", err, stderr.String())
	}
	for _, f := range []string{"INSTALL.md", "data-actions/ledger/balance-lookup.json", "flows/Loyalty_Economy_Validation.yaml", "terraform/main.tf"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	snippet, _ := os.ReadFile(filepath.Join(dir, "web/loyalty-snippet.html"))
	if !strings.Contains(string(snippet), "apps.mypurecloud.de") {
		t.Error("the snippet does not use the region")
	}
}

func TestCLIGenesysExportRefuses(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--base-url", "http://ledger.example.com"}, "must use https"},
		{[]string{"--base-url", "https://ledger.example.com", "--region", "example.com"}, "unknown region"},
		{[]string{"--base-url", "https://ledger.example.com", "--media-type", "FAX"}, "unknown media type"},
		{[]string{}, "--base-url is required"},
		{[]string{"--base-url", "https://ledger.example.com", "--out", ""}, "--out is required"},
	} {
		dir := filepath.Join(t.TempDir(), "kit")
		args := append([]string{"genesys", "export", "--out", dir}, tc.args...)
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %v, want one line containing %q", tc.args, err, tc.want)
		}
		if _, statErr := os.Stat(dir); statErr == nil {
			t.Errorf("%v: a refused export wrote %s", tc.args, dir)
		}
	}
}
