package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tally-ledger/tally/genesys"
)

// runGenesys dispatches tally genesys subcommands.
func runGenesys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, "usage: tally genesys export --base-url URL --out DIR [--region mypurecloud.com]")
		if len(args) == 0 {
			return errUsageShown
		}
		return nil
	}
	if args[0] != "export" {
		return fmt.Errorf("unknown genesys subcommand %q: expected export", args[0])
	}
	return genesysExport(args[1:], stdout, stderr)
}

// genesysExport writes the Genesys Cloud artifacts for a Tally at --base-url.
func genesysExport(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("genesys export", stderr)
	base := fs.String("base-url", "", "the URL Genesys Cloud reaches Tally at (https; http only for a loopback host) (required)")
	out := fs.String("out", "", "the directory to write the files to (required)")
	region := fs.String("region", genesys.DefaultRegion, "the Genesys Cloud domain: "+strings.Join(genesys.Regions, ", "))
	media := fs.String("media-type", genesys.DefaultMediaType, "the media type whose conversation end earns points: "+strings.Join(genesys.MediaTypes, ", "))
	queue := fs.String("queue", genesys.DefaultQueue, "the queue the flow transfers to")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("genesys export takes no arguments, got %q", fs.Arg(0))
	}
	if *base == "" {
		return fmt.Errorf("genesys export: --base-url is required")
	}
	if *out == "" {
		return fmt.Errorf("genesys export: --out is required")
	}
	files, err := genesys.Export(genesys.Config{BaseURL: *base, Region: *region, MediaType: *media, Queue: *queue})
	if err != nil {
		return fmt.Errorf("genesys export: %w", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("genesys export: %w", err)
	}
	if err := genesys.Write(*out, files); err != nil {
		return fmt.Errorf("genesys export: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %d files to %s; start with %s\n", len(files), *out, genesys.InstallFile)
	return nil
}
