package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api"
	"github.com/tally-ledger/tally/earning"
	"github.com/tally-ledger/tally/genesys"
	"github.com/tally-ledger/tally/genesysmirror"
)

// mirrorConfig configures the Genesys contact mirror (off by default).
type mirrorConfig struct {
	on                       bool
	region, clientID, secret string
	apiURL, loginURL         string // overrides of https://api.<region> and https://login.<region>
	balanceField, tierField  string
}

func mirrorFlags(fs *flag.FlagSet) func() (mirrorConfig, error) {
	c := mirrorConfig{}
	fs.BoolVar(&c.on, "genesys-mirror", envDefault("TALLY_GENESYS_MIRROR", "") == "true",
		"copy each customer's balance and tier to their Genesys external contact after Genesys events that name one (env TALLY_GENESYS_MIRROR=true; needs --genesys-client-id and TALLY_GENESYS_CLIENT_SECRET)")
	fs.StringVar(&c.region, "genesys-region", envDefault("TALLY_GENESYS_REGION", genesys.DefaultRegion), "Genesys Cloud domain of the org, e.g. mypurecloud.de (env TALLY_GENESYS_REGION)")
	fs.StringVar(&c.clientID, "genesys-client-id", envDefault("TALLY_GENESYS_CLIENT_ID", ""), "Genesys OAuth client (client credentials grant) of the mirror (env TALLY_GENESYS_CLIENT_ID; its secret: env TALLY_GENESYS_CLIENT_SECRET)")
	fs.StringVar(&c.apiURL, "genesys-api-url", envDefault("TALLY_GENESYS_API_URL", ""), "override of https://api.<region> (tests; http only on loopback) (env TALLY_GENESYS_API_URL)")
	fs.StringVar(&c.loginURL, "genesys-login-url", envDefault("TALLY_GENESYS_LOGIN_URL", ""), "override of https://login.<region> (tests; http only on loopback) (env TALLY_GENESYS_LOGIN_URL)")
	fs.StringVar(&c.balanceField, "genesys-balance-field", envDefault("TALLY_GENESYS_BALANCE_FIELD", "loyaltyBalance_number"), "external contact custom field that receives the balance (env TALLY_GENESYS_BALANCE_FIELD)")
	fs.StringVar(&c.tierField, "genesys-tier-field", envDefault("TALLY_GENESYS_TIER_FIELD", "loyaltyTier_text"), "external contact custom field that receives the tier; empty sends none (env TALLY_GENESYS_TIER_FIELD)")
	return func() (mirrorConfig, error) {
		if !c.on {
			return c, nil
		}
		c.secret = os.Getenv("TALLY_GENESYS_CLIENT_SECRET")
		if strings.TrimSpace(c.clientID) == "" || c.secret == "" {
			return c, errors.New("--genesys-mirror needs --genesys-client-id and TALLY_GENESYS_CLIENT_SECRET")
		}
		if !slices.Contains(genesys.Regions, c.region) {
			return c, fmt.Errorf("--genesys-region %q is not a Genesys Cloud domain (one of %s)", c.region, strings.Join(genesys.Regions, ", "))
		}
		if strings.TrimSpace(c.balanceField) == "" {
			return c, errors.New("--genesys-balance-field must not be empty")
		}
		var err error
		if c.apiURL, err = genesysURL("--genesys-api-url", c.apiURL, "https://api."+c.region); err != nil {
			return c, err
		}
		if c.loginURL, err = genesysURL("--genesys-login-url", c.loginURL, "https://login."+c.region); err != nil {
			return c, err
		}
		return c, nil
	}
}

// genesysURL checks an override of a Genesys base URL: https, or http to a loopback address (a test's
// fake Genesys). Credentials and tokens never travel in clear to another host.
func genesysURL(flag, v, def string) (string, error) {
	if v == "" {
		return def, nil
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%s %q is not an absolute URL", flag, v)
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return "", fmt.Errorf("%s %q: http is allowed only to a loopback address", flag, v)
		}
	default:
		return "", fmt.Errorf("%s %q is not an http(s) URL", flag, v)
	}
	return strings.TrimSuffix(v, "/"), nil
}

// startMirror runs this replica's mirror worker until ctx ends and returns the outbox the API queues
// into; nil when the mirror is off. The worker reads the store itself, not through the circuit breaker
// (as the fulfillment worker does).
func startMirror(ctx context.Context, store *openedStore, key *tally.LedgerKey, engine *earning.Engine, rdb *redis.Client,
	c mirrorConfig, log *slog.Logger, goFn func(func())) (api.ContactMirror, error) {
	if !c.on {
		return nil, nil
	}
	ms, ok := store.Store.(tally.MirrorStore)
	if !ok {
		return nil, fmt.Errorf("the %s store has no contact mirror outbox", store.kind)
	}
	outbox := &genesysmirror.Outbox{Store: ms, Key: key}
	client := &genesysmirror.Client{
		API:    c.apiURL,
		Tokens: genesysmirror.NewTokens(c.loginURL+"/oauth/token", c.clientID, c.secret, rdb),
		HTTP:   &http.Client{Timeout: 30 * time.Second},
	}
	w := genesysmirror.New(genesysmirror.Options{
		Outbox: outbox, Accounts: store.Store, TierOf: engine.Tier, Client: client,
		Fields: genesysmirror.Fields{Balance: c.balanceField, Tier: c.tierField}, Logger: log,
	})
	log.Info("genesys contact mirror", "api", c.apiURL, "balance_field", c.balanceField, "tier_field", c.tierField, "shared_token", rdb != nil)
	goFn(func() { w.Run(ctx) })
	return outbox, nil
}
