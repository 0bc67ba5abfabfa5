package ledger

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestPacerSpacesStarts: the expiry job's pacer lets the first lots start at once, makes later ones
// wait for their turn (here, ctx ends first), and never waits when unpaced or behind.
func TestPacerSpacesStarts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := pacer{start: time.Now(), rate: 10}
	if err := p.wait(context.Background(), 1000); err != nil {
		t.Fatalf("the first lots waited: %v", err)
	}
	// The next lot is due 100 s after the start: a cancelled ctx ends the wait.
	if err := p.wait(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait for a lot due in 100 s = %v, want the context's error", err)
	}
	behind := pacer{start: time.Now().Add(-time.Hour), rate: 10, lots: 10}
	if err := behind.wait(context.Background(), 1); err != nil {
		t.Fatalf("a job behind its pace waited: %v", err)
	}
	unpaced := pacer{start: time.Now(), rate: -1, lots: 1 << 40}
	if err := unpaced.wait(context.Background(), 1); err != nil {
		t.Fatalf("an unpaced job waited: %v", err)
	}
}
