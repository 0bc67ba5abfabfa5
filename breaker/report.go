package breaker

import (
	"context"

	"github.com/tally-ledger/tally"
)

// Report implements tally.ReportStore.
func (s *Store) Report(ctx context.Context, fn func(ctx context.Context, tx tally.ReportTx) error) error {
	return s.exec(func() error { return s.inner.Report(ctx, fn) })
}
