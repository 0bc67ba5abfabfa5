package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/earning"
	"github.com/tally-ledger/tally/ledger"
)

// The rules and tiers commands work on the database directly, as rewards does. Rule edits go through the
// admin API (POST/PUT/DELETE /v1/admin/rules), which records the client as the actor.

const rulesSubcommands = "list, show NAME or test --event FILE"

func runRules(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("rules needs a subcommand: %s", rulesSubcommands)
	}
	sub := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"list": rulesList, "show": rulesShow, "test": rulesTest,
	}
	run, ok := sub[args[0]]
	if !ok {
		return fmt.Errorf("unknown rules subcommand %q: expected %s", args[0], rulesSubcommands)
	}
	return run(ctx, args[1:], stdout, stderr)
}

// engineFlags are the flags every rules and tiers subcommand takes: --db, and --programme, which the
// tiers and their multipliers come from, as in serve.
type engineFlags struct {
	*flag.FlagSet
	db, programme *string
}

func newEngineFlags(name string, stderr io.Writer) engineFlags {
	fs, db := dbFlagSet(name, stderr)
	return engineFlags{fs, db, fs.String("programme", envDefault("TALLY_PROGRAMME", ""), "programme file, as given to serve (env TALLY_PROGRAMME)")}
}

// openEngine opens the database and an earning engine over it (seeding nothing: serve does).
func (f engineFlags) openEngine(ctx context.Context) (*openedStore, *earning.Engine, error) {
	programme := earning.DefaultProgramme()
	if *f.programme != "" {
		p, err := earning.LoadProgramme(*f.programme)
		if err != nil {
			return nil, nil, err
		}
		programme = p
	}
	s, err := openExistingMigrated(ctx, *f.db)
	if err != nil {
		return nil, nil, err
	}
	ps, ok := s.Store.(tally.ProgrammeStore)
	if !ok {
		s.Close()
		return nil, nil, fmt.Errorf("the %T store keeps no earning rules", s.Store)
	}
	return s, earning.NewEngine(ps, programme, nil), nil
}

func rulesList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newEngineFlags("rules list", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	s, e, err := fs.openEngine(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	vs, err := e.Rules(ctx)
	if err != nil {
		return catalogError("rules list", err)
	}
	if *asJSON {
		return printIndentedJSON(stdout, map[string]any{"rules": vs})
	}
	tw := newTable(stdout, "NAME", "VERSION", "ACTIVE", "ACTOR", "CHANGED", "DEFINITION")
	for _, v := range vs {
		fmt.Fprintf(tw, "%s\t%d\t%v\t%s\t%s\t%s\n", v.Name, v.Version, v.Active, v.Actor, v.CreatedAt.Format(time.RFC3339), v.Definition)
	}
	return tw.Flush()
}

func rulesShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newEngineFlags("rules show", stderr)
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("rules show takes one rule name")
	}
	s, e, err := fs.openEngine(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	vs, err := e.History(ctx, fs.Arg(0))
	if err != nil {
		return catalogError("rules show", err)
	}
	return printIndentedJSON(stdout, map[string]any{"name": fs.Arg(0), "versions": vs})
}

func rulesTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newEngineFlags("rules test", stderr)
	file := fs.String("event", "", "a JSON file holding the event (any shape transaction/process takes)")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if *file == "" {
		return fmt.Errorf("rules test needs --event FILE")
	}
	body, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	ev, err := earning.ParseEvent(body)
	if err != nil {
		return fmt.Errorf("rules test: %s", tally.ErrorMessage(err))
	}
	s, e, err := fs.openEngine(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	var hash string
	if ev.Customer != "" {
		if hash = ev.Customer; !tally.IsCustomerHash(strings.TrimPrefix(hash, "th_")) {
			h, err := customerHasher(s, nil)
			if err != nil {
				return err
			}
			hash = h.Hash(ev.Customer)
		}
		hash = strings.TrimPrefix(hash, "th_")
	}
	res, err := e.Test(ctx, hash, ev.Fields)
	if err != nil {
		return catalogError("rules test", err)
	}
	return printIndentedJSON(stdout, res)
}

const tiersSubcommands = "show CUSTOMER or review [--period-end TIME]"

func runTiers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("tiers needs a subcommand: %s", tiersSubcommands)
	}
	switch args[0] {
	case "show":
		return tiersShow(ctx, args[1:], stdout, stderr)
	case "review":
		return tiersReview(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown tiers subcommand %q: expected %s", args[0], tiersSubcommands)
}

func tiersShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newEngineFlags("tiers show", stderr)
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("tiers show takes one customer (a raw id, or th_ and a customer hash)")
	}
	s, e, err := fs.openEngine(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	hash := fs.Arg(0)
	if h, ok := strings.CutPrefix(hash, "th_"); ok && tally.IsCustomerHash(h) {
		hash = h
	} else {
		hasher, err := customerHasher(s, nil)
		if err != nil {
			return err
		}
		hash = hasher.Hash(hash)
	}
	st, err := e.Standing(ctx, hash)
	if err != nil {
		return catalogError("tiers show", err)
	}
	return printIndentedJSON(stdout, map[string]any{"customer_hash": "th_" + hash, "standing": st})
}

func tiersReview(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newEngineFlags("tiers review", stderr)
	end := fs.String("period-end", "", "the end of the period to review (RFC 3339; default: the newest period that has ended)")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	s, e, err := fs.openEngine(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	periodEnd := e.Programme().PeriodEnd(time.Now())
	if *end != "" {
		if periodEnd, err = time.Parse(time.RFC3339, *end); err != nil {
			return fmt.Errorf("--period-end: %w", err)
		}
	}
	key, err := existingLedgerKey(s)
	if err != nil {
		return err
	}
	l := ledger.New(s.Store, ledger.Options{Key: key, Tiers: e.Programme()})
	defer l.Close()
	rep, err := l.ReviewTiers(ctx, periodEnd)
	if err != nil {
		return catalogError("tiers review", err)
	}
	return printIndentedJSON(stdout, rep)
}
