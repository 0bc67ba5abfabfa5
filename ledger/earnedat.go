package ledger

import (
	"time"

	"github.com/tally-ledger/tally"
)

// earnedAt is the time r's points are earned at: when it arrived (Request.EarnAt), for a request decided
// after it was kept through an outage, else the decision's. A time after the decision (another
// replica's clock ahead of this one's) is the decision's: nothing is earned in the future.
func (b *batchRun) earnedAt(r Request) time.Time {
	if r.EarnAt.IsZero() || r.EarnAt.After(b.now) {
		return b.now
	}
	return tally.LedgerTime(r.EarnAt)
}

// earliestEarning is the earliest time an accrual of the batch that the rules decide is earned at: the
// cap periods read for the batch start from it.
func (b *batchRun) earliestEarning() time.Time {
	at := b.now
	for _, i := range b.fresh {
		if r := b.ops[i].req; r.Earn != nil {
			if t := b.earnedAt(r); t.Before(at) {
				at = t
			}
		}
	}
	return at
}
