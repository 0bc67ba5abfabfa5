package spool

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestFileBrokenAfterWriteFailure: once a write fails the spool refuses every later Append, rather than
// acknowledge entries it cannot vouch for.
func TestFileBrokenAfterWriteFailure(t *testing.T) {
	s, err := OpenFile(filepath.Join(t.TempDir(), "tally.spool"), FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := Entry{Body: []byte(`{}`), Customer: "c", Received: time.Now().UTC()}
	if err := s.Append(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	// The descriptor goes away under the spool: the next write fails as a full or failing disk would.
	s.f.Close()
	if err := s.Append(context.Background(), e); !errors.Is(err, ErrBroken) {
		t.Fatalf("Append after a failed write = %v, want ErrBroken", err)
	}
	if err := s.Append(context.Background(), e); !errors.Is(err, ErrBroken) {
		t.Fatalf("a later Append = %v, want ErrBroken", err)
	}
}
