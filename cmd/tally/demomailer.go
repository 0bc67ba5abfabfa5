package main

import (
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/fulfillment"
)

// demoMailerPath is where serve --demo receives the e-mail rewards' deliveries when no --mailer-url is
// set, so that a demo redemption is delivered (and its receipt says so) instead of failing every attempt
// and being refunded an hour later.
const demoMailerPath = "/demo/mailer"

// withDemoMailer serves the demo mailer beside the API: it checks each delivery's signature as a real
// receiver would, logs what it would have e-mailed, and acknowledges it.
func withDemoMailer(api http.Handler, key *tally.LedgerKey, mailerURL string, log *slog.Logger) (http.Handler, error) {
	signer, err := webhookSigner(key)
	if err != nil {
		return nil, err
	}
	secret, err := signer.Secret(mailerURL)
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != demoMailerPath {
			api.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if r.Method != http.MethodPost || err != nil {
			http.Error(w, "POST a signed delivery", http.StatusBadRequest)
			return
		}
		if err := fulfillment.Verify(secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, "signature: "+err.Error(), http.StatusUnauthorized)
			return
		}
		log.Info("demo mailer: a reward e-mail would be sent now", "delivery", r.Header.Get("Tally-Delivery"))
		w.WriteHeader(http.StatusNoContent)
	}), nil
}
