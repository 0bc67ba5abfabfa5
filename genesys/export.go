package genesys

import (
	"fmt"
	"os"
	"path/filepath"
)

// File is one generated file: a slash-separated path under the output directory, and its bytes.
type File struct {
	Path string
	Data []byte
}

// TriggerFile is the Process Automation Trigger.
const TriggerFile = "triggers/loyalty-conversation-end.json"

// InstallFile is the admin's guide.
const InstallFile = "INSTALL.md"

func flowFile(c Config) string     { return "flows/" + c.Flow + ".yaml" }
func workflowFile(c Config) string { return "flows/" + c.Workflow + ".yaml" }

// Actions returns the Data Actions for c (after Defaults), in INSTALL.md's order.
func Actions(c Config) []*DataAction {
	var out []*DataAction
	for _, s := range actionSpecs() {
		out = append(out, s.build(c))
	}
	return out
}

// Export returns every file for c. It fails when c is invalid.
func Export(c Config) ([]File, error) {
	c = c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var files []File
	add := func(path string, data []byte, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		files = append(files, File{path, data})
		return nil
	}
	acts := Actions(c)
	for _, a := range acts {
		b, err := marshalJSON(a)
		if err := add(a.spec.File, b, err); err != nil {
			return nil, err
		}
	}
	steps := []struct {
		path string
		gen  func(Config) ([]byte, error)
	}{
		{CustomAuthFile, func(c Config) ([]byte, error) { return marshalJSON(customAuthAction(c)) }},
		{flowFile(c), inboundMessageFlow},
		{workflowFile(c), conversationEndWorkflow},
		{TriggerFile, triggerJSON},
		{SnippetFile, snippet},
		{TerraformFile, func(c Config) ([]byte, error) { return terraform(c, acts) }},
		{InstallFile, func(c Config) ([]byte, error) { return install(c, acts) }},
	}
	for _, s := range steps {
		b, err := s.gen(c)
		if err := add(s.path, b, err); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// Write writes files under dir, creating folders as needed.
func Write(dir string, files []File) error {
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
