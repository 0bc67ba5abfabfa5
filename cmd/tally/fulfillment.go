package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/fulfillment"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/metrics"
)

// fulfillmentConfig is what serve reads for the fulfillment worker.
type fulfillmentConfig struct {
	attempts  int
	refund    bool
	mailerURL string
}

// fulfillmentFlags registers the worker's flags; the function it returns reads them after parsing.
func fulfillmentFlags(fs *flag.FlagSet) func() (fulfillmentConfig, error) {
	c := fulfillmentConfig{}
	attempts := intFlag(fs, "fulfillment-attempts", "TALLY_FULFILLMENT_ATTEMPTS", 8, "deliveries tried before a redemption is dead-lettered")
	fs.BoolVar(&c.refund, "fulfillment-refund", envDefault("TALLY_FULFILLMENT_REFUND", "true") != "false",
		"refund dead-lettered redemptions (points and stock back) by a reversal; false leaves them dead for an operator (env TALLY_FULFILLMENT_REFUND)")
	fs.StringVar(&c.mailerURL, "mailer-url", envDefault("TALLY_MAILER_URL", ""), "endpoint that receives email rewards without a webhook URL of their own, signed like webhooks (env TALLY_MAILER_URL)")
	return func() (fulfillmentConfig, error) {
		n, err := attempts()
		if err != nil {
			return c, err
		}
		if n <= 0 || n > 100 {
			return c, errors.New("--fulfillment-attempts must be between 1 and 100")
		}
		c.attempts = n
		if c.mailerURL != "" {
			if _, err := fulfillment.Origin(c.mailerURL); err != nil {
				return c, fmt.Errorf("--mailer-url: %w", err)
			}
		}
		return c, nil
	}
}

// webhookSigner signs deliveries with TALLY_WEBHOOK_SECRET when it is set, else with a key derived from
// the ledger key: nothing more to keep safe, and a receiver's secret can still be rotated by setting one.
func webhookSigner(key *tally.LedgerKey) (*fulfillment.Signer, error) {
	if s := os.Getenv("TALLY_WEBHOOK_SECRET"); s != "" {
		signer, err := fulfillment.NewSigner([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("TALLY_WEBHOOK_SECRET: %w", err)
		}
		return signer, nil
	}
	return fulfillment.NewSigner(key.WebhookKey())
}

// startFulfillment runs this replica's fulfillment worker until ctx ends. Jobs are read from the store
// itself (not through the circuit breaker: a worker that polls must not trip the breaker that requests
// depend on); refunds go through the ledger like any write.
func startFulfillment(ctx context.Context, store *openedStore, l *ledger.Service, key *tally.LedgerKey, c fulfillmentConfig,
	m *metrics.Metrics, log *slog.Logger, goFn func(func())) error {
	jobs, ok := store.Store.(tally.FulfillmentStore)
	if !ok {
		return fmt.Errorf("the %s store has no fulfillment outbox", store.kind)
	}
	signer, err := webhookSigner(key)
	if err != nil {
		return err
	}
	w := fulfillment.New(fulfillment.Options{
		Jobs: jobs, Catalog: store.Store, Ledger: l, Signer: signer, MailerURL: c.mailerURL, KeepDead: !c.refund,
		Config: fulfillment.Config{MaxAttempts: c.attempts, Logger: log,
			Observe: func(event string) { m.FulfillmentEvents.WithLabelValues(event).Inc() }},
	})
	log.Info("fulfillment worker", "attempts", c.attempts, "refund", c.refund, "mailer", c.mailerURL != "")
	if c.mailerURL == "" {
		log.Warn("no --mailer-url: redemptions of email rewards without a webhook URL of their own cannot be delivered; they are retried, then dead-lettered")
	}
	goFn(func() { w.Run(ctx) })
	return nil
}

// runWebhookSecret prints the secret a webhook receiver verifies Tally's signatures with.
func runWebhookSecret(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := dbFlagSet("webhook-secret", stderr)
	endpoint := fs.String("url", "", "the receiver's URL (a reward's webhook URL, or the mailer URL); the secret depends on its scheme, host and port")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if err := takesNoArgs(fs, "webhook-secret"); err != nil {
		return err
	}
	if strings.TrimSpace(*endpoint) == "" {
		return errors.New("--url is required: the receiver's URL")
	}
	if _, err := fulfillment.Origin(*endpoint); err != nil {
		return err
	}
	var key *tally.LedgerKey
	if os.Getenv("TALLY_WEBHOOK_SECRET") == "" {
		s, err := openKeyed(ctx, *db, openExisting)
		if err != nil {
			return err
		}
		defer s.Close()
		key = s.key
	}
	signer, err := webhookSigner(key)
	if err != nil {
		return err
	}
	secret, err := signer.Secret(*endpoint)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, secret)
	return nil
}
