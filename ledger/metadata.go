package ledger

import (
	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/strictjson"
)

// checkMetadata refuses metadata that two readers could read differently, whatever route it came by: an
// object that repeats a member name (parsers keep the first or the last), an escaped surrogate that
// pairs with nothing (decoded as U+FFFD, or refused, depending on the reader), or an escaped NUL (which
// PostgreSQL's jsonb, for one, refuses). Metadata is hashed and kept byte for byte, so it must mean one
// thing to every reader.
func checkMetadata(m []byte) error {
	rep, err := strictjson.Scan(m)
	if err != nil {
		return tally.Errorf(tally.EINVALID, "metadata: %s", tally.ErrorMessage(err))
	}
	for _, d := range rep.Duplicates {
		if !d.Folded { // metadata is kept as JSON, never decoded into a struct: case tells names apart
			return tally.Errorf(tally.EINVALID, "metadata repeats the member %q (at %q)", d.Name, d.Pointer)
		}
	}
	if len(rep.NULs) > 0 {
		return tally.Errorf(tally.EINVALID, "metadata holds an escaped NUL character (at %q)", rep.NULs[0])
	}
	return nil
}
