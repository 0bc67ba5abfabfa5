package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api"
	"github.com/tally-ledger/tally/auth"
)

func runClients(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("clients needs a subcommand: create, list or revoke")
	}
	switch args[0] {
	case "create":
		return clientsCreate(ctx, args[1:], stdout, stderr)
	case "list":
		return clientsList(ctx, args[1:], stdout, stderr)
	case "revoke":
		return clientsRevoke(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown clients subcommand %q: expected create, list or revoke", args[0])
}

func clientsCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := dbFlagSet("clients create", stderr)
	name := fs.String("name", "", "client name (required)")
	scopes := fs.String("scopes", "", "comma-separated scopes: ledger:read, ledger:write, admin (required)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if strings.TrimSpace(*name) == "" {
		return fmt.Errorf("clients create: --name is required")
	}
	var list []string
	for _, s := range strings.Split(*scopes, ",") {
		if s = strings.TrimSpace(s); s != "" {
			list = append(list, s)
		}
	}
	if len(list) == 0 {
		return fmt.Errorf("clients create: --scopes is required (%s)", strings.Join(tally.Scopes, ", "))
	}
	for _, s := range list {
		if !tally.ValidScope(s) {
			return fmt.Errorf("clients create: unknown scope %q: expected %s", s, strings.Join(tally.Scopes, ", "))
		}
	}
	c, secret, err := auth.NewClient(*name, list, time.Now().UTC())
	if err != nil {
		return fmt.Errorf("clients create: %s", tally.ErrorMessage(err))
	}
	s, err := openMigrated(ctx, *db)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.creds.CreateClient(ctx, c); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, map[string]any{"client_id": c.ID, "client_secret": secret, "name": c.Name, "scopes": c.Scopes})
	}
	fmt.Fprintf(stdout, "client_id:     %s\nclient_secret: %s\nscopes:        %s\n(the secret is shown only now: store it safely)\n", c.ID, secret, strings.Join(c.Scopes, " "))
	return nil
}

func clientsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := dbFlagSet("clients list", stderr)
	asJSON := fs.Bool("json", false, "print the list as JSON")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	s, err := openExistingMigrated(ctx, *db)
	if err != nil {
		return err
	}
	defer s.Close()
	clients, err := s.creds.Clients(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		type row struct {
			ID        string     `json:"client_id"`
			Name      string     `json:"name"`
			Scopes    []string   `json:"scopes"`
			CreatedAt time.Time  `json:"created_at"`
			RevokedAt *time.Time `json:"revoked_at,omitempty"`
		}
		rows := []row{}
		for _, c := range clients {
			rows = append(rows, row{c.ID, c.Name, c.Scopes, c.CreatedAt, c.RevokedAt})
		}
		return printJSON(stdout, rows)
	}
	tw := newTable(stdout, "CLIENT_ID", "NAME", "SCOPES", "CREATED", "REVOKED")
	for _, c := range clients {
		revoked := "-"
		if c.RevokedAt != nil {
			revoked = c.RevokedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, c.Name, strings.Join(c.Scopes, ","), c.CreatedAt.Format(time.RFC3339), revoked)
	}
	return tw.Flush()
}

func clientsRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := dbFlagSet("clients revoke", stderr)
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("clients revoke: name one client_id")
	}
	id := fs.Arg(0)
	if err := tally.CheckText("the client id", id); err != nil {
		return fmt.Errorf("clients revoke: %s", tally.ErrorMessage(err))
	}
	s, err := openExistingMigrated(ctx, *db)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.creds.RevokeClient(ctx, id, time.Now().UTC()); err != nil {
		if tally.ErrorCode(err) == tally.ENOTFOUND {
			return fmt.Errorf("clients revoke: no client %q", id)
		}
		return err
	}
	// Every server re-reads a client's revocation status at least this often, so the tokens it already
	// holds stop working then, long before they expire.
	fmt.Fprintf(stdout, "revoked %s: it can get no new tokens, and the tokens it already has stop working within %s\n", id, api.RevocationTTL)
	return nil
}
