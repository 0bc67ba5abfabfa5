package genesys

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// decodeObject decodes a JSON object keeping numbers exact.
func decodeObject(t *testing.T, name string, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s is not a JSON object: %v", name, err)
	}
	return m
}

// obj returns m[key] as an object, failing the test when it is not one.
func obj(t *testing.T, where string, m map[string]any, key string) map[string]any {
	t.Helper()
	v, ok := m[key].(map[string]any)
	if !ok {
		t.Fatalf("%s: %s is not an object (%T)", where, key, m[key])
	}
	return v
}

func str(t *testing.T, where string, m map[string]any, key string) string {
	t.Helper()
	v, ok := m[key].(string)
	if !ok {
		t.Fatalf("%s: %s is not a string (%T)", where, key, m[key])
	}
	return v
}

// compileSchema compiles a contract schema as the draft it names.
func compileSchema(t *testing.T, where string, schema map[string]any) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	if err := c.AddResource("contract.json", schema); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	s, err := c.Compile("contract.json")
	if err != nil {
		t.Fatalf("%s is not a valid JSON Schema: %v", where, err)
	}
	return s
}

var primitiveTypes = []string{"string", "integer", "number", "boolean"}

// checkContractSchema checks the shape Genesys documents: title, type object, properties, required,
// additionalProperties; for outputs, flat primitives or arrays of them (what Architect can use).
func checkContractSchema(t *testing.T, where string, s map[string]any, output bool) map[string]string {
	t.Helper()
	for _, k := range []string{"title", "type", "properties", "required", "additionalProperties"} {
		if _, ok := s[k]; !ok && !(k == "required" && len(obj(t, where, s, "properties")) == 0) {
			t.Errorf("%s: no %s", where, k)
		}
	}
	if s["type"] != "object" {
		t.Errorf("%s: type is %v, want object", where, s["type"])
	}
	compileSchema(t, where, s)
	types := map[string]string{}
	props := obj(t, where, s, "properties")
	for name, p := range props {
		p := p.(map[string]any)
		typ, _ := p["type"].(string)
		types[name] = typ
		switch {
		case slices.Contains(primitiveTypes, typ):
		case typ == "array" && output:
			items, _ := p["items"].(map[string]any)
			if it, _ := items["type"].(string); !slices.Contains(primitiveTypes, it) {
				t.Errorf("%s: output %s is an array of %v, not of a primitive", where, name, items["type"])
			}
		default:
			t.Errorf("%s: property %s has type %q: Architect needs flat primitives", where, name, typ)
		}
	}
	req, _ := s["required"].([]any)
	for _, r := range req {
		if _, ok := props[r.(string)]; !ok {
			t.Errorf("%s: required %v is not a property", where, r)
		}
	}
	return types
}

// checkRequest checks config.request and that every Velocity reference names something declared.
func checkRequest(t *testing.T, where string, req map[string]any, inputs map[string]string, auth bool) {
	t.Helper()
	method := str(t, where, req, "requestType")
	if !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, method) {
		t.Errorf("%s: requestType %q", where, method)
	}
	headers := obj(t, where, req, "headers")
	accept, _ := headers["Accept"].(string)
	if mt, _, err := mime.ParseMediaType(accept); err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		t.Errorf("%s: Accept %q is not a JSON media type", where, accept)
	}
	templates := []string{str(t, where, req, "requestUrlTemplate"), str(t, where, req, "requestTemplate")}
	for _, h := range headers {
		templates = append(templates, h.(string))
	}
	if !strings.HasPrefix(templates[0], goldenConfig.BaseURL+"/") {
		t.Errorf("%s: requestUrlTemplate %q is not under the base URL", where, templates[0])
	}
	for _, tmpl := range templates {
		for _, p := range placeholders(tmpl) {
			ok := false
			switch p[0] {
			case "input":
				_, ok = inputs[p[1]]
				ok = ok || p[1] == "rawRequest"
			case "credentials":
				ok = auth && slices.Contains(CredentialFields, p[1])
			case "authResponse":
				ok = !auth && slices.Contains(AuthResponseFields, p[1])
			}
			if !ok {
				t.Errorf("%s: ${%s.%s} names nothing declared", where, p[0], p[1])
			}
		}
		// Every `$` must belong to a construct the renderer knows (and so the checks above saw).
		vc := velocityContext{"input": {}, "credentials": {}, "authResponse": {}}
		for name, typ := range inputs {
			vc["input"][name] = map[string]any{"integer": int64(1)}[typ]
			if typ != "integer" {
				vc["input"][name] = "x"
			}
		}
		vc["input"]["rawRequest"] = "{}"
		for _, f := range CredentialFields {
			vc["credentials"][f] = "x"
		}
		for _, f := range AuthResponseFields {
			vc["authResponse"][f] = "x"
		}
		if _, err := renderVelocity(tmpl, vc); err != nil {
			t.Errorf("%s: %v", where, err)
		}
	}
}

// checkResponse checks config.response: every translationMap name is used by the success template and
// every name it uses is mapped; defaults are JSON of mapped names; the output is the declared schema.
func checkResponse(t *testing.T, where string, resp map[string]any, outputs map[string]string) {
	t.Helper()
	tm := obj(t, where, resp, "translationMap")
	defs := obj(t, where, resp, "translationMapDefaults")
	tmpl := str(t, where, resp, "successTemplate")
	used := map[string]bool{}
	for _, p := range successRef.FindAllStringSubmatch(tmpl, -1) {
		used[p[1]] = true
		if _, ok := tm[p[1]]; !ok {
			t.Errorf("%s: the success template names ${%s}, which the translation map does not", where, p[1])
		}
	}
	for name, path := range tm {
		if !used[name] {
			t.Errorf("%s: translation map %s is not used by the success template", where, name)
		}
		if !strings.HasPrefix(path.(string), "$.") {
			t.Errorf("%s: translation map %s = %q is not a JSONPath", where, name, path)
		}
	}
	for name, d := range defs {
		if _, ok := tm[name]; !ok {
			t.Errorf("%s: default %s has no translation", where, name)
		}
		if !json.Valid([]byte(d.(string))) {
			t.Errorf("%s: default %s = %q is not JSON", where, name, d)
		}
	}
	if outputs == nil {
		return
	}
	// Filled with the defaults or a value of each output's type, the template gives the declared outputs.
	sample := map[string]string{"string": `"s"`, "integer": "1", "boolean": "true", "array": "[]"}
	out := successRef.ReplaceAllStringFunc(tmpl, func(s string) string {
		name := successRef.FindStringSubmatch(s)[1]
		return sample[outputs[name]]
	})
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%s: the success template renders %q, not JSON", where, out)
	}
	for name := range outputs {
		if _, ok := got[name]; !ok {
			t.Errorf("%s: output %s is not in the success template", where, name)
		}
	}
	for name := range got {
		if _, ok := outputs[name]; !ok {
			t.Errorf("%s: the success template gives %s, which the contract does not declare", where, name)
		}
	}
}

func TestDataActionFiles(t *testing.T) {
	files := mustExport(t, goldenConfig)
	n := 0
	for _, a := range Actions(goldenConfig.Defaults()) {
		n++
		where := a.spec.File
		m := decodeObject(t, where, files[where])
		for _, k := range []string{"name", "integrationType", "actionType", "secure", "config", "contract"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: no %s", where, k)
			}
		}
		if m["integrationType"] != "custom-rest-actions" || m["actionType"] != "custom" {
			t.Errorf("%s: integrationType %v, actionType %v", where, m["integrationType"], m["actionType"])
		}
		if _, ok := m["secure"].(bool); !ok {
			t.Errorf("%s: secure is not a boolean", where)
		}
		config := obj(t, where, m, "config")
		timeout, err := config["timeoutSeconds"].(json.Number).Int64()
		if err != nil || timeout < 1 || timeout > 60 {
			t.Errorf("%s: timeoutSeconds %v is not an integer 1..60", where, config["timeoutSeconds"])
		}
		if a.Name == "Tally - Balance Lookup" && timeout != 3 {
			t.Errorf("%s: timeoutSeconds %d, want 3 (the guide's 3000 ms)", where, timeout)
		}
		contract := obj(t, where, m, "contract")
		inputs := checkContractSchema(t, where+" input", obj(t, where, obj(t, where, contract, "input"), "inputSchema"), false)
		outputs := checkContractSchema(t, where+" output", obj(t, where, obj(t, where, contract, "output"), "successSchema"), true)
		checkRequest(t, where, obj(t, where, config, "request"), inputs, false)
		checkResponse(t, where, obj(t, where, config, "response"), outputs)
		// Every declared input reaches the request, so none is asked of Architect for nothing.
		req, _ := json.Marshal(config["request"])
		for name := range inputs {
			if !strings.Contains(string(req), "${input."+name+"}") {
				t.Errorf("%s: input %s is not used by the request", where, name)
			}
		}
	}
	if n != 6 {
		t.Errorf("%d data actions, want 6", n)
	}
}

func TestCustomAuthFile(t *testing.T) {
	files := mustExport(t, goldenConfig)
	m := decodeObject(t, CustomAuthFile, files[CustomAuthFile])
	config := obj(t, CustomAuthFile, m, "config")
	if _, ok := config["timeoutSeconds"]; ok {
		t.Error("the custom auth action may not set timeoutSeconds")
	}
	if _, ok := m["contract"]; ok {
		t.Error("the custom auth action has no contract")
	}
	req := obj(t, CustomAuthFile, config, "request")
	if got := str(t, CustomAuthFile, req, "requestUrlTemplate"); got != goldenConfig.BaseURL+"/oauth/token" {
		t.Errorf("the auth action posts to %q", got)
	}
	checkRequest(t, CustomAuthFile, req, nil, true)
	resp := obj(t, CustomAuthFile, config, "response")
	checkResponse(t, CustomAuthFile, resp, nil)
	// Its success template names what the other actions use.
	out := successRef.ReplaceAllString(str(t, CustomAuthFile, resp, "successTemplate"), `"t"`)
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	for _, f := range AuthResponseFields {
		if _, ok := got[f]; !ok {
			t.Errorf("the auth action's success template does not name %s", f)
		}
	}
}

func TestTriggerFile(t *testing.T) {
	files := mustExport(t, goldenConfig)
	m := decodeObject(t, TriggerFile, files[TriggerFile])
	for _, k := range []string{"name", "topicName", "enabled", "target", "matchCriteria"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %s", k)
		}
	}
	if m["topicName"] != "v2.detail.events.conversation.{id}.customer.end" || m["enabled"] != true {
		t.Errorf("topicName %v, enabled %v", m["topicName"], m["enabled"])
	}
	target := obj(t, TriggerFile, m, "target")
	if target["type"] != "Workflow" || target["id"] == "" {
		t.Errorf("target %v", target)
	}
	if f := obj(t, TriggerFile, target, "workflowTargetSettings")["dataFormat"]; f != "Json" && f != "TopLevelPrimitives" {
		t.Errorf("dataFormat %v", f)
	}
	operators := []string{"Equal", "NotEqual", "GreaterThan", "GreaterThanOrEqual", "LessThan", "LessThanOrEqual", "In", "NotIn", "Contains", "All", "Exists", "Size"}
	criteria, _ := m["matchCriteria"].([]any)
	if len(criteria) == 0 {
		t.Fatal("no matchCriteria")
	}
	for i, c := range criteria {
		c := c.(map[string]any)
		where := fmt.Sprintf("matchCriteria[%d]", i)
		str(t, where, c, "jsonPath")
		if !slices.Contains(operators, str(t, where, c, "operator")) {
			t.Errorf("%s: operator %v", where, c["operator"])
		}
		_, v := c["value"]
		_, vs := c["values"]
		if v == vs {
			t.Errorf("%s: exactly one of value and values is allowed", where)
		}
	}
	_, ttl := m["eventTTLSeconds"]
	_, delay := m["delayBySeconds"]
	if ttl && delay {
		t.Error("eventTTLSeconds and delayBySeconds are exclusive")
	}
	if ttl {
		if n, _ := m["eventTTLSeconds"].(json.Number).Int64(); n < 10 {
			t.Errorf("eventTTLSeconds %d < 10", n)
		}
	}
}
