package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/fulfillment"
	"github.com/tally-ledger/tally/metrics"
	"github.com/tally-ledger/tally/webhooks"
)

// startWebhooks runs this replica's event delivery worker until ctx ends (reading the outbox from the
// store itself, not through the circuit breaker, as the fulfillment worker does) and returns the
// subscriptions' administration for the API, over the guarded store.
func startWebhooks(ctx context.Context, store *openedStore, guarded tally.Store, key *tally.LedgerKey, m *metrics.Metrics,
	log *slog.Logger, goFn func(func())) (*webhooks.Subscriptions, error) {
	signer, err := webhookSigner(key)
	if err != nil {
		return nil, err
	}
	w := webhooks.NewWorker(webhooks.Options{Store: store.Store, Signer: signer, Config: fulfillment.Config{Logger: log,
		Observe: func(event string) { m.WebhookEvents.WithLabelValues(event).Inc() }}})
	goFn(func() { w.Run(ctx) })
	return &webhooks.Subscriptions{Store: guarded, Signer: signer}, nil
}

const webhooksSubcommands = "create, list, update, delete, secret, rotate-secret or deliveries"

// runWebhooks administers webhook subscriptions from the command line, on the database directly.
func runWebhooks(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("webhooks needs a subcommand: %s", webhooksSubcommands)
	}
	name, args := args[0], args[1:]
	fs, db := dbFlagSet("webhooks "+name, stderr)
	url := fs.String("url", "", "the receiver's URL (create, update)")
	events := fs.String("events", "", "comma-separated event types: "+strings.Join(tally.EventTypes, ", ")+" (create, update)")
	filterSrc := fs.String("filter", "", "deliver only events whose body matches this filter expression, e.g. \"$.data.points >= 100\" (create, update)")
	days := fs.Int("expiring-days", 0, "for points.expiring_soon: how many days ahead to warn (create, update)")
	active := fs.String("active", "", "true or false (update)")
	status := fs.String("status", "", "pending, delivered, skipped or dead (deliveries)")
	limit := fs.Int("limit", 50, "how many deliveries to list (deliveries)")
	asJSON := fs.Bool("json", false, "print JSON")
	var id string
	var err error
	switch name {
	case "create", "list":
		if err := fs.Parse(args); err != nil {
			return errUsageShown
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("webhooks %s takes no arguments, got %q", name, fs.Args())
		}
	case "update", "delete", "secret", "rotate-secret", "deliveries":
		if id, err = parseWithArg(fs, args, "the subscription id"); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown webhooks subcommand %q: expected %s", name, webhooksSubcommands)
	}
	s, err := openKeyed(ctx, *db, openExistingMigrated)
	if err != nil {
		return err
	}
	defer s.Close()
	signer, err := webhookSigner(s.key)
	if err != nil {
		return err
	}
	subs := &webhooks.Subscriptions{Store: s.openedStore, Signer: signer}
	show := func(v any, text string) error {
		if *asJSON {
			return printJSON(stdout, v)
		}
		_, err := fmt.Fprint(stdout, text)
		return err
	}
	types := func() []string {
		var out []string
		for _, t := range strings.Split(*events, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
		return out
	}
	line := func(sub tally.WebhookSubscription) string {
		state := "active"
		if !sub.Active {
			state = "inactive"
		}
		extra := ""
		if sub.ExpiringDays > 0 {
			extra += fmt.Sprintf(" expiring_days=%d", sub.ExpiringDays)
		}
		if sub.Filter != "" {
			extra += " filter=" + sub.Filter
		}
		return fmt.Sprintf("%s\t%s\t%s\t%s%s\n", sub.ID, state, sub.URL, strings.Join(sub.EventTypes, ","), extra)
	}
	switch name {
	case "create":
		sub, secret, err := subs.Create(ctx, tally.WebhookSubscription{URL: *url, EventTypes: types(), Filter: *filterSrc, ExpiringDays: *days})
		if err != nil {
			return catalogError("webhooks create", err)
		}
		return show(map[string]any{"subscription": sub, "secret": secret},
			line(sub)+"secret (give it to the receiver; 'tally webhooks secret "+sub.ID+"' shows it again): "+secret+"\n")
	case "list":
		list, err := s.Subscriptions(ctx)
		if err != nil {
			return err
		}
		var b strings.Builder
		for _, sub := range list {
			b.WriteString(line(sub))
		}
		if len(list) == 0 {
			b.WriteString("no webhook subscriptions\n")
		}
		return show(list, b.String())
	case "update":
		var p webhooks.Patch
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "url":
				p.URL = url
			case "events":
				t := types()
				p.EventTypes = &t
			case "filter":
				p.Filter = filterSrc
			case "expiring-days":
				p.ExpiringDays = days
			case "active":
				v := *active == "true"
				p.Active = &v
			}
		})
		if *active != "" && *active != "true" && *active != "false" {
			return fmt.Errorf("--active must be true or false")
		}
		sub, err := subs.Update(ctx, id, p)
		if err != nil {
			return catalogError("webhooks update", err)
		}
		return show(sub, line(sub))
	case "delete":
		if err := s.DeleteSubscription(ctx, id); err != nil {
			return catalogError("webhooks delete", err)
		}
		return show(map[string]string{"deleted": id}, "deleted "+id+"\n")
	case "secret":
		sub, err := s.Subscription(ctx, id)
		if err != nil {
			return catalogError("webhooks secret", err)
		}
		secret := subs.Secret(sub)
		return show(map[string]string{"secret": secret}, secret+"\n")
	case "rotate-secret":
		_, secret, err := subs.RotateSecret(ctx, id)
		if err != nil {
			return catalogError("webhooks rotate-secret", err)
		}
		return show(map[string]string{"secret": secret}, secret+"\n")
	default: // deliveries
		if _, err := s.Subscription(ctx, id); err != nil {
			return catalogError("webhooks deliveries", err)
		}
		ds, err := s.Deliveries(ctx, id, *status, *limit)
		if err != nil {
			return err
		}
		var b strings.Builder
		for _, d := range ds {
			fmt.Fprintf(&b, "%s\t%s\t%s\t%d attempts\t%s\n", d.EventID, d.EventType, d.Status, d.Attempts, d.LastError)
		}
		if len(ds) == 0 {
			b.WriteString("no deliveries\n")
		}
		return show(ds, b.String())
	}
}
