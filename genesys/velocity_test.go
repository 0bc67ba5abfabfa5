package genesys

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// The subset of Genesys's Velocity the generated templates use, rendered the way Genesys documents it:
// ${input.X}, ${credentials.X}, ${authResponse.X} insert values as they are; $esc.jsonString(...) escapes
// for a JSON string; $esc.url(...) form-encodes; $encoding.base64("...") encodes its rendered argument.
// Anything else left in a template fails the render, so a template cannot use more than this checks.
var (
	velocityRef    = regexp.MustCompile(`\$\{(input|credentials|authResponse)\.([A-Za-z0-9_]+)\}`)
	velocityEsc    = regexp.MustCompile(`\$esc\.(jsonString|url)\(\$\{(input|credentials|authResponse)\.([A-Za-z0-9_]+)\}\)`)
	velocityBase64 = regexp.MustCompile(`\$encoding\.base64\("([^"]*)"\)`)
	velocityLeft   = regexp.MustCompile(`\$[{!A-Za-z]`)
)

// velocityContext holds the values of the three namespaces.
type velocityContext map[string]map[string]any

func (vc velocityContext) value(ns, name string) (string, error) {
	v, ok := vc[ns][name]
	if !ok {
		return "", fmt.Errorf("${%s.%s} has no value", ns, name)
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case int, int64:
		return fmt.Sprint(v), nil
	}
	return "", fmt.Errorf("${%s.%s}: unsupported value %T", ns, name, v)
}

// renderVelocity renders a request template (URL, header or body).
func renderVelocity(tmpl string, vc velocityContext) (string, error) {
	var err error
	fail := func(e error) {
		if err == nil {
			err = e
		}
	}
	out := velocityEsc.ReplaceAllStringFunc(tmpl, func(s string) string {
		p := velocityEsc.FindStringSubmatch(s)
		v, e := vc.value(p[2], p[3])
		if e != nil {
			fail(e)
			return ""
		}
		if p[1] == "url" {
			return url.QueryEscape(v)
		}
		b, _ := json.Marshal(v)
		return string(b[1 : len(b)-1])
	})
	out = velocityRef.ReplaceAllStringFunc(out, func(s string) string {
		p := velocityRef.FindStringSubmatch(s)
		v, e := vc.value(p[1], p[2])
		if e != nil {
			fail(e)
		}
		return v
	})
	out = velocityBase64.ReplaceAllStringFunc(out, func(s string) string {
		return base64.StdEncoding.EncodeToString([]byte(velocityBase64.FindStringSubmatch(s)[1]))
	})
	if err == nil && velocityLeft.MatchString(out) {
		err = fmt.Errorf("template %q: unsupported Velocity left in %q", tmpl, out)
	}
	return out, err
}

// placeholders lists the ns.name references of a template, functions' arguments included.
func placeholders(tmpl string) [][2]string {
	var out [][2]string
	for _, p := range velocityRef.FindAllStringSubmatch(tmpl, -1) {
		out = append(out, [2]string{p[1], p[2]})
	}
	return out
}

// successRef matches the ${name} references of a success template.
var successRef = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)

// translate applies a response config to an answer: each translationMap path is resolved in the answer
// (its default when it does not resolve; failure without one, as Genesys takes the failure path), and the
// success template is filled with the JSON values.
func translate(resp Response, answer []byte) (map[string]any, error) {
	var doc any
	if err := json.Unmarshal(answer, &doc); err != nil {
		return nil, fmt.Errorf("the answer is not JSON: %v", err)
	}
	values := map[string]string{}
	for name, path := range resp.TranslationMap {
		v, ok, err := jsonPath(doc, path)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		if !ok {
			def, has := resp.TranslationMapDefaults[name]
			if !has {
				return nil, fmt.Errorf("%s: %s does not resolve in %s and has no default", name, path, answer)
			}
			values[name] = def
			continue
		}
		b, _ := json.Marshal(v)
		values[name] = string(b)
	}
	var missing []string
	out := successRef.ReplaceAllStringFunc(resp.SuccessTemplate, func(s string) string {
		name := successRef.FindStringSubmatch(s)[1]
		v, ok := values[name]
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return nil, fmt.Errorf("the success template names %v, which the translation map does not", missing)
	}
	var result map[string]any
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&result); err != nil {
		return nil, fmt.Errorf("the success template renders %q, not a JSON object: %v", out, err)
	}
	return result, nil
}

// jsonPath resolves the paths the actions use: $.a.b and $.a[*].b (which collects into an array).
func jsonPath(doc any, path string) (any, bool, error) {
	if !strings.HasPrefix(path, "$.") {
		return nil, false, fmt.Errorf("path %q does not start with $.", path)
	}
	cur := []any{doc}
	wild := false
	for _, seg := range strings.Split(path[2:], ".") {
		star := strings.HasSuffix(seg, "[*]")
		seg = strings.TrimSuffix(seg, "[*]")
		if seg == "" || strings.ContainsAny(seg, "[]?@()*") {
			return nil, false, fmt.Errorf("path %q: unsupported segment %q", path, seg)
		}
		var next []any
		for _, c := range cur {
			obj, ok := c.(map[string]any)
			if !ok {
				continue
			}
			v, ok := obj[seg]
			if !ok {
				continue
			}
			if star {
				arr, ok := v.([]any)
				if !ok {
					continue
				}
				next = append(next, arr...)
			} else {
				next = append(next, v)
			}
		}
		wild = wild || star
		cur = next
	}
	if wild {
		if cur == nil {
			cur = []any{}
		}
		return cur, true, nil
	}
	if len(cur) == 0 {
		return nil, false, nil
	}
	return cur[0], true, nil
}

func TestRenderVelocity(t *testing.T) {
	vc := velocityContext{"input": {"s": `a "quoted" \ value`, "n": int64(42)}, "credentials": {"id": "a b:c"}}
	for _, tc := range []struct{ tmpl, want string }{
		{`{"s": "$esc.jsonString(${input.s})", "n": ${input.n}}`, `{"s": "a \"quoted\" \\ value", "n": 42}`},
		{`Basic $encoding.base64("$esc.url(${credentials.id}):x")`, "Basic " + base64.StdEncoding.EncodeToString([]byte("a+b%3Ac:x"))},
	} {
		got, err := renderVelocity(tc.tmpl, vc)
		if err != nil || got != tc.want {
			t.Errorf("renderVelocity(%q) = %q, %v; want %q", tc.tmpl, got, err, tc.want)
		}
	}
	for _, bad := range []string{`${input.missing}`, `#if($x)`, `$!{input.s}`, `$esc.html(${input.s})`} {
		if got, err := renderVelocity(bad, vc); err == nil {
			t.Errorf("renderVelocity(%q) = %q, want an error", bad, got)
		}
	}
}

func TestTranslate(t *testing.T) {
	resp := Response{
		TranslationMap:         map[string]string{"a": "$.x.y", "ids": "$.list[*].id", "gone": "$.nope"},
		TranslationMapDefaults: map[string]string{"gone": `""`},
		SuccessTemplate:        `{"a": ${a}, "ids": ${ids}, "gone": ${gone}}`,
	}
	got, err := translate(resp, []byte(`{"x": {"y": "v"}, "list": [{"id": 1}, {"id": 2}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(got); string(b) != `{"a":"v","gone":"","ids":[1,2]}` {
		t.Errorf("translate = %s", b)
	}
	delete(resp.TranslationMapDefaults, "gone")
	if _, err := translate(resp, []byte(`{"x": {"y": "v"}, "list": []}`)); err == nil {
		t.Error("a path that does not resolve and has no default must fail")
	}
}
