package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tally-ledger/tally"
)

// rewardsCoupons is `tally rewards coupons add`: a file of codes uploaded to a coupon reward in one
// transaction.
func rewardsCoupons(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "add" {
		return fmt.Errorf("rewards coupons needs a subcommand: add")
	}
	fs, db := dbFlagSet("rewards coupons add", stderr)
	id := fs.String("id", "", "reward id (required)")
	file := fs.String("file", "", `file of codes, one a line ("-": standard input) (required)`)
	if err := fs.Parse(args[1:]); err != nil {
		return errUsageShown
	}
	if err := noArgs(fs, "rewards coupons add"); err != nil {
		return err
	}
	if *id == "" || *file == "" {
		return fmt.Errorf("rewards coupons add: --id and --file are required")
	}
	codes, err := readCodes(*file)
	if err != nil {
		return fmt.Errorf("rewards coupons add: %w", err)
	}
	s, err := openCatalog(ctx, *db)
	if err != nil {
		return err
	}
	defer s.Close()
	up, err := s.AddCoupons(ctx, *id, codes)
	if err != nil {
		return catalogError("rewards coupons add", err)
	}
	fmt.Fprintf(stdout, "reward %s: %d codes added, %d skipped (already there or repeated), %d free\n", *id, up.Added, up.Skipped, up.Free)
	return nil
}

// readCodes reads one code a line, trimmed of surrounding white space; blank lines are skipped. A line
// that is no valid code is named by its number.
func readCodes(path string) ([]string, error) {
	var in io.Reader = os.Stdin
	name := "standard input"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		in, name = f, path
	}
	var codes []string
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for line := 1; sc.Scan(); line++ {
		code := strings.TrimSpace(sc.Text())
		if code == "" {
			continue
		}
		if err := tally.CheckCouponCode(code); err != nil {
			return nil, fmt.Errorf("%s line %d: %s", name, line, tally.ErrorMessage(err))
		}
		if len(codes) == tally.MaxCouponUpload {
			return nil, fmt.Errorf("%s has more than %d codes: split it", name, tally.MaxCouponUpload)
		}
		codes = append(codes, code)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(codes) == 0 {
		return nil, fmt.Errorf("%s holds no codes", name)
	}
	return codes, nil
}
