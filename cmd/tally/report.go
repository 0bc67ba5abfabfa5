package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/report"
)

// runReport is `tally report outstanding|rollforward|breakage`: a finance report from one snapshot of
// the ledger, as CSV (the default) or JSON. A report that does not reconcile with the accounts is
// printed all the same, and the command exits with status 3.
func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := "report needs one of: " + strings.Join(report.Names, ", ")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%s", usage)
	}
	name := args[0]
	known := false
	for _, n := range report.Names {
		known = known || n == name
	}
	if !known {
		return fmt.Errorf("unknown report %q: %s", name, usage)
	}
	fs, db := dbFlagSet("report "+name, stderr)
	format := fs.String("format", "csv", "csv or json")
	var p report.Params
	fs.StringVar(&p.PointValue, "point-value", envDefault("TALLY_POINT_VALUE", ""),
		"money per point, such as 0.01, for money columns (env TALLY_POINT_VALUE)")
	fs.StringVar(&p.Currency, "currency", envDefault("TALLY_CURRENCY", ""),
		"ISO 4217 currency of --point-value, such as EUR (env TALLY_CURRENCY)")
	programme := fs.String("programme", envDefault("TALLY_PROGRAMME", ""),
		"programme file whose \"reporting\" setting gives the point value when --point-value does not (env TALLY_PROGRAMME)")
	if name == "rollforward" {
		fs.StringVar(&p.From, "from", "", "first day, YYYY-MM-DD (UTC; default January 1st of --to's year)")
		fs.StringVar(&p.To, "to", "", "last day, YYYY-MM-DD, included (UTC; default today)")
		fs.StringVar(&p.Period, "period", "month", "day, month, quarter or year")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return errUsageShown
	}
	if err := noArgs(fs, "report "+name); err != nil {
		return err
	}
	f, err := report.ParseFormat(*format)
	if err != nil {
		return fmt.Errorf("report %s: --format: %s", name, tally.ErrorMessage(err))
	}
	if p.PointValue == "" && p.Currency == "" && *programme != "" {
		if p.PointValue, p.Currency, err = report.ProgrammeValue(*programme); err != nil {
			return err
		}
	}
	// Check the parameters before opening the database, so that a typo costs nothing.
	if _, err := report.ParsePointValue(p.PointValue, p.Currency); err != nil {
		return fmt.Errorf("report %s: %s", name, tally.ErrorMessage(err))
	}
	s, err := openExisting(ctx, *db)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := requireCurrentSchema(ctx, s); err != nil {
		return fmt.Errorf("report %s: %w", name, err)
	}
	r, err := report.Make(ctx, s, name, p, time.Now())
	if err != nil {
		return catalogError("report "+name, err)
	}
	if err := r.Write(stdout, f); err != nil {
		return err
	}
	if !r.Balanced() {
		return &exitError{code: 3, err: fmt.Errorf("report %s: the report does not reconcile with the account balances: run 'tally verify'", name)}
	}
	return nil
}
