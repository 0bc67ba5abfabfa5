package genesys

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// flowRefs is what a flow file declares and references, collected by walking the parsed YAML.
type flowRefs struct {
	vars      map[string]bool // declared Flow.* variables
	states    map[string]bool // state refIds
	stateRefs []string        // targetStateRef and startUpRef values
	used      []string        // variables named in var: and exp:
	calls     []map[string]any
}

var varName = regexp.MustCompile(`\b(?:Flow|State|Task)\.[A-Za-z_][A-Za-z0-9_]*`)

func walk(v any, r *flowRefs) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			switch k {
			case "name":
				if s, ok := x.(string); ok && strings.HasPrefix(s, "Flow.") {
					if _, decl := v["initialValue"]; decl {
						r.vars[s] = true
					}
				}
			case "refId":
				r.states[x.(string)] = true
			case "targetStateRef", "startUpRef":
				r.stateRefs = append(r.stateRefs, x.(string))
			case "var", "variable", "currentIndex":
				if s, ok := x.(string); ok {
					r.used = append(r.used, s)
				}
			case "exp":
				r.used = append(r.used, varName.FindAllString(x.(string), -1)...)
			case "callData":
				r.calls = append(r.calls, x.(map[string]any))
			}
			walk(x, r)
		}
	case []any:
		for _, x := range v {
			walk(x, r)
		}
	}
}

func TestFlowsReferenceWhatExists(t *testing.T) {
	c := goldenConfig.Defaults()
	files := mustExport(t, goldenConfig)
	actions := map[string]map[string]*DataAction{}
	for _, a := range Actions(c) {
		if actions[a.integration] == nil {
			actions[a.integration] = map[string]*DataAction{}
		}
		actions[a.integration][a.Name] = a
	}
	for _, tc := range []struct{ file, key, name string }{
		{flowFile(c), "inboundShortMessage", c.Flow},
		{workflowFile(c), "workflow", c.Workflow},
	} {
		t.Run(tc.key, func(t *testing.T) {
			var doc map[string]any
			if err := yaml.Unmarshal(files[tc.file], &doc); err != nil {
				t.Fatalf("%s does not parse: %v", tc.file, err)
			}
			flow, ok := doc[tc.key].(map[string]any)
			if !ok || len(doc) != 1 {
				t.Fatalf("%s: want one top-level key %s, got %v", tc.file, tc.key, doc)
			}
			if flow["name"] != tc.name {
				t.Errorf("name %v, want %s", flow["name"], tc.name)
			}
			r := &flowRefs{vars: map[string]bool{}, states: map[string]bool{}}
			walk(flow, r)
			for _, ref := range r.stateRefs {
				id := strings.TrimSuffix(strings.TrimPrefix(ref, "/"+tc.key+"/states/state["), "]")
				if id == ref || !r.states[id] {
					t.Errorf("state reference %q names no state", ref)
				}
			}
			builtins := []string{"Message.ConversationId"}
			for _, v := range r.used {
				if !r.vars[v] && !slices.Contains(builtins, v) {
					t.Errorf("variable %s is used but not declared", v)
				}
			}
			if len(r.calls) == 0 {
				t.Fatal("no callData")
			}
			for _, call := range r.calls {
				for integration, x := range call["category"].(map[string]any) {
					byName, ok := actions[integration]
					if !ok {
						t.Errorf("callData names integration %q, which holds no exported action", integration)
						continue
					}
					for name, x := range x.(map[string]any)["dataAction"].(map[string]any) {
						a, ok := byName[name]
						if !ok {
							t.Errorf("callData names action %q, not in integration %q", name, integration)
							continue
						}
						io := x.(map[string]any)
						inputs, _ := io["inputs"].(map[string]any)
						for _, req := range a.Contract.Input.InputSchema.Required {
							if _, ok := inputs[req]; !ok {
								t.Errorf("%s: required input %s is not given", name, req)
							}
						}
						for in := range inputs {
							if _, ok := a.Contract.Input.InputSchema.Properties[in]; !ok {
								t.Errorf("%s: input %s is not in the contract", name, in)
							}
						}
						outs, _ := io["successOutputs"].(map[string]any)
						for out := range outs {
							if _, ok := a.Contract.Output.SuccessSchema.Properties[out]; !ok {
								t.Errorf("%s: output %s is not in the contract", name, out)
							}
						}
					}
				}
				if secs := call["timeout"].(map[string]any)["lit"].(map[string]any)["seconds"]; secs == nil {
					t.Errorf("%s: no timeout in seconds", call["name"])
				}
			}
		})
	}
}

// The decision outputs "yes" and "no" must stay strings: a YAML 1.1 reader takes bare yes/no for booleans.
func TestDecisionKeysAreQuoted(t *testing.T) {
	files := mustExport(t, goldenConfig)
	for _, f := range []string{flowFile(goldenConfig.Defaults()), workflowFile(goldenConfig.Defaults())} {
		if regexp.MustCompile(`(?m)^\s+(yes|no):`).Match(files[f]) {
			t.Errorf("%s has a bare yes/no key", f)
		}
	}
}

func TestLookupRetries(t *testing.T) {
	var doc map[string]any
	c := goldenConfig.Defaults()
	if err := yaml.Unmarshal(mustExport(t, goldenConfig)[flowFile(c)], &doc); err != nil {
		t.Fatal(err)
	}
	r := &flowRefs{vars: map[string]bool{}, states: map[string]bool{}}
	walk(doc, r)
	for _, call := range r.calls {
		if call["name"] != "Balance lookup" {
			continue
		}
		if secs := call["timeout"].(map[string]any)["lit"].(map[string]any)["seconds"]; secs != 3 {
			t.Errorf("the lookup's timeout is %v s, want 3", secs)
		}
		outs := call["outputs"].(map[string]any)
		for _, p := range []string{"success", "failure", "timeout"} {
			if outs[p] == nil {
				t.Errorf("the lookup has no %s path", p)
			}
		}
		return
	}
	t.Error("no balance lookup in the flow")
}
