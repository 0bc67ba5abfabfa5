package genesys

import (
	"bytes"
	"regexp"
	"slices"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// providerSchema lists, per resource type, its attributes and nested blocks, taken from the provider's
// documentation: MyPureCloud/terraform-provider-genesyscloud v1.84.1 docs/resources/integration.md,
// integration_credential.md, integration_action.md, integration_custom_auth_action.md, flow.md and
// processautomation_trigger.md. Computed-only attributes (id, file_content_hash) are left out: setting
// them is an error.
var providerSchema = map[string]map[string][]string{
	"genesyscloud_integration": {
		"":       {"integration_type", "intended_state"},
		"config": {"name", "properties", "advanced", "notes", "credentials"},
	},
	"genesyscloud_integration_credential": {"": {"name", "credential_type_name", "fields"}},
	"genesyscloud_integration_action": {
		"":                {"name", "category", "integration_id", "contract_input", "contract_output", "secure", "config_timeout_seconds"},
		"config_request":  {"request_type", "request_url_template", "request_template", "headers"},
		"config_response": {"translation_map", "translation_map_defaults", "success_template"},
		"function_config": {"file_path", "description", "handler", "runtime", "timeout_seconds", "zip_id"},
	},
	"genesyscloud_integration_custom_auth_action": {
		"":                {"integration_id", "name"},
		"config_request":  {"request_type", "request_url_template", "request_template", "headers"},
		"config_response": {"translation_map", "translation_map_defaults", "success_template"},
	},
	"genesyscloud_flow": {"": {"filepath", "substitutions", "name", "type", "force_unlock", "update_trigger_hash"}},
	"genesyscloud_processautomation_trigger": {
		"":                                {"name", "topic_name", "enabled", "match_criteria", "event_ttl_seconds", "delay_by_seconds", "description"},
		"target":                          {"type", "id"},
		"target.workflow_target_settings": {"data_format"},
	},
}

// required lists the attributes the documentation marks required.
var requiredAttrs = map[string][]string{
	"genesyscloud_integration":                    {"integration_type"},
	"genesyscloud_integration_credential":         {"credential_type_name"},
	"genesyscloud_integration_action":             {"name", "category", "integration_id", "contract_input", "contract_output"},
	"genesyscloud_integration_custom_auth_action": {"integration_id"},
	"genesyscloud_flow":                           {"filepath"},
	"genesyscloud_processautomation_trigger":      {"name", "topic_name", "enabled"},
}

// metaArguments are Terraform's own, allowed in every resource.
var metaArguments = []string{"depends_on", "count", "for_each", "provider", "lifecycle"}

func TestTerraformIsFormatted(t *testing.T) {
	src := mustExport(t, goldenConfig)[TerraformFile]
	// hclwrite.Format is the formatter terraform fmt runs.
	if got := hclwrite.Format(src); !bytes.Equal(got, src) {
		t.Errorf("terraform fmt would change %s:\n%s", TerraformFile, got)
	}
}

func TestTerraformResources(t *testing.T) {
	files := mustExport(t, goldenConfig)
	f, diags := hclsyntax.ParseConfig(files[TerraformFile], TerraformFile, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	seen := map[string]int{}
	body := f.Body.(*hclsyntax.Body)
	for _, b := range body.Blocks {
		if b.Type != "resource" {
			continue
		}
		typ := b.Labels[0]
		seen[typ]++
		schema, ok := providerSchema[typ]
		if !ok {
			t.Errorf("resource type %s is not one of the provider's documented ones", typ)
			continue
		}
		checkBlock(t, typ, "", b.Body, schema)
		for _, r := range requiredAttrs[typ] {
			if _, ok := b.Body.Attributes[r]; !ok {
				t.Errorf("%s.%s: required attribute %s is missing", typ, b.Labels[1], r)
			}
		}
	}
	// The integrations are named as the flows' callData categories name them.
	names := map[string]bool{}
	for _, b := range body.Blocks {
		if b.Type == "resource" && b.Labels[0] == "genesyscloud_integration" {
			for _, cb := range b.Body.Blocks {
				attr, ok := cb.Body.Attributes["name"]
				if cb.Type != "config" || !ok {
					continue
				}
				if v, diags := attr.Expr.Value(nil); !diags.HasErrors() {
					names[v.AsString()] = true
				}
			}
		}
	}
	for _, a := range Actions(goldenConfig.Defaults()) {
		if !names[a.integration] {
			t.Errorf("no genesyscloud_integration is named %q, the integration of %s", a.integration, a.Name)
		}
	}
	for typ := range providerSchema {
		if seen[typ] == 0 {
			t.Errorf("no %s resource", typ)
		}
	}
	if seen["genesyscloud_integration_action"] != 6 || seen["genesyscloud_flow"] != 2 {
		t.Errorf("resources: %v", seen)
	}
	// Every file the configuration reads is one the export writes.
	for _, m := range regexp.MustCompile(`\$\{path\.module\}/\.\./([^"]+)"`).FindAllSubmatch(files[TerraformFile], -1) {
		if _, ok := files[string(m[1])]; !ok {
			t.Errorf("the Terraform reads %s, which the export does not write", m[1])
		}
	}
}

// checkBlock checks a block's attributes and nested blocks against the documented names.
func checkBlock(t *testing.T, typ, path string, body *hclsyntax.Body, schema map[string][]string) {
	t.Helper()
	for name := range body.Attributes {
		if !slices.Contains(schema[path], name) && !(path == "" && slices.Contains(metaArguments, name)) {
			t.Errorf("%s: attribute %q is not documented (in %q)", typ, name, path)
		}
	}
	for _, b := range body.Blocks {
		nested := b.Type
		if path != "" {
			nested = path + "." + b.Type
		}
		if _, ok := schema[nested]; !ok {
			t.Errorf("%s: block %q is not documented", typ, nested)
			continue
		}
		checkBlock(t, typ, nested, b.Body, schema)
	}
}
