package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/balancecache"
	"github.com/tally-ledger/tally/ledger"
)

const customersSubcommands = "forget or erasures"

func runCustomers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("customers needs a subcommand: %s", customersSubcommands)
	}
	switch args[0] {
	case "forget":
		return customersForget(ctx, args[1:], stdout, stderr)
	case "erasures":
		return customersErasures(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown customers subcommand %q: expected %s", args[0], customersSubcommands)
}

// customersForget erases a customer (see ledger.Forget). Forgetting someone with no account, or
// someone forgotten already, changes nothing and exits 0, saying so: the two cannot be told apart.
func customersForget(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := dbFlagSet("customers forget", stderr)
	reason := fs.String("reason", "", "why the customer is forgotten (required; recorded)")
	actor := fs.String("actor", "", "who asked for it (recorded; default: the operating system user)")
	isHash := fs.Bool("hash", false, "ID is a customer hash (th_... or 64 hex digits), not a raw customer id")
	redisURL := fs.String("redis", envDefault("TALLY_REDIS_URL", ""), "the Redis balance cache serve uses, to drop the customer's entry (env TALLY_REDIS_URL)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tally customers forget [flags] ID --reason REASON")
		fs.PrintDefaults()
	}
	id, err := parseWithArg(fs, args, "the customer id")
	if err != nil {
		return err
	}
	if *reason == "" {
		return fmt.Errorf("--reason is required: the erasure record keeps it")
	}
	if *actor == "" {
		*actor = operatingUser()
	}
	s, err := openKeyed(ctx, *db, openExistingMigrated)
	if err != nil {
		return err
	}
	defer s.Close()
	hash, err := customerHashOf(s.openedStore, id, *isHash)
	if err != nil {
		return err
	}
	e, err := s.ledger(ledger.Options{}).Forget(ctx, hash, *actor, *reason)
	if tally.ErrorCode(err) == tally.ENOTFOUND {
		fmt.Fprintln(stdout, "nothing to forget: no account has this customer's hash (it never had one, or it was forgotten already); nothing changed")
		return nil
	}
	if err != nil {
		return catalogError("forget", err)
	}
	if *redisURL != "" {
		if rc, err := balancecache.OpenRedis(ctx, *redisURL); err != nil {
			fmt.Fprintf(stderr, "warning: could not reach the balance cache to drop the customer's entry (it expires within a day): %v\n", err)
		} else {
			if err := balancecache.NewRedis(rc, "tally:balance:", 24*time.Hour).Delete(ctx, hash); err != nil {
				fmt.Fprintf(stderr, "warning: %v (the entry expires within a day)\n", err)
			}
			rc.Close()
		}
	}
	fmt.Fprintf(stdout, "forgotten: erasure %d, %d transactions re-keyed to a random pseudonym at %s; balances unchanged\n",
		e.No, e.Transactions, e.ErasedAt.Format(time.RFC3339))
	return nil
}

// customerHashOf hashes a raw customer id with the customer secret, which must exist: a new secret
// would hash to an account that is not there.
func customerHashOf(s *openedStore, id string, isHash bool) (string, error) {
	if isHash {
		h := id
		if len(h) > 3 && h[:3] == "th_" {
			h = h[3:]
		}
		if !tally.IsCustomerHash(h) {
			return "", fmt.Errorf("%q is not a customer hash (th_ and 64 lowercase hex digits)", id)
		}
		return h, nil
	}
	if err := tally.CheckText("the customer id", id); err != nil {
		return "", err
	}
	h, err := existingCustomerHasher(s)
	if err != nil {
		return "", err
	}
	return h.Hash(id), nil
}

// customersErasures lists the erasure records: pseudonyms, never raw ids.
func customersErasures(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := dbFlagSet("customers erasures", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	s, err := openExistingMigrated(ctx, *db)
	if err != nil {
		return err
	}
	defer s.Close()
	list, err := s.Erasures(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(stdout, "no erasures")
	}
	for _, e := range list {
		fmt.Fprintf(stdout, "%d\t%s\t%s\tth_%s\t%d transactions\t%s\n", e.No, e.ErasedAt.Format(time.RFC3339), e.Actor, e.AccountID, e.Transactions, e.Reason)
	}
	return nil
}
