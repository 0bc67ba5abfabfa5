package genesys

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// omap is a YAML mapping that keeps its keys in the order written, as Archy files read best (name
// first); a Go map would be sorted.
type omap []kv

type kv struct {
	key string
	val any
}

// m builds an omap from alternating keys and values.
func m(pairs ...any) omap {
	if len(pairs)%2 != 0 {
		panic(fmt.Sprintf("m: odd number of arguments %v", pairs))
	}
	o := make(omap, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		o = append(o, kv{pairs[i].(string), pairs[i+1]})
	}
	return o
}

// MarshalYAML renders the mapping in order. Keys go through the encoder too, so that one such as "yes"
// is quoted (YAML 1.1 readers, Archy's among them, would take a bare yes for a boolean).
func (o omap) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for _, e := range o {
		var k, v yaml.Node
		if err := k.Encode(e.key); err != nil {
			return nil, err
		}
		if err := v.Encode(e.val); err != nil {
			return nil, err
		}
		n.Content = append(n.Content, &k, &v)
	}
	return n, nil
}

// list is a YAML sequence.
type list []any

func marshalYAML(v any) ([]byte, error) {
	var b yamlBuffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.data, nil
}

type yamlBuffer struct{ data []byte }

func (b *yamlBuffer) Write(p []byte) (int, error) {
	b.data = append(b.data, p...)
	return len(p), nil
}
