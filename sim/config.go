package sim

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Config is one run of the emulator.
type Config struct {
	Target                 string // base URL of a running Tally
	AllowRemote            bool   // the emulator writes customers and rewards: only loopback unless allowed
	ClientID, ClientSecret string // a client with ledger:read, ledger:write and admin (to create the run's rewards)
	Customers              int
	Duration               time.Duration // the run ends at Duration or after Events conversations, whichever first
	Events                 int
	Concurrency            int
	Duplicates             float64  // share of events delivered more than once, 0..1
	Channels               []string // channels customers interact on (webchat, sms, voice, email, callback)
	HonourExpiry           bool     // renew the token when expires_in has passed, not only after a 401
	LookupTimeout          time.Duration
	FlowRetries            int           // Architect retries after a failed or timed-out Data Action (lookup, Workflow)
	ActionTimeout          time.Duration // timeout of every other Data Action
	MaxRetryAfter          time.Duration // the longest Retry-After honoured
	RewardCost             int64         // point cost of the run's rewards
	Stock                  int64         // units of the run's limited reward
	// Verify runs the ledger verification at the end and describes what it checked; nil: not run.
	Verify func(ctx context.Context) (string, error)
	// Progress, when not nil, is called about five times a second with the share of the run done (0..1)
	// and the counts so far.
	Progress func(done float64, events, requests int64)
}

// Defaults fills what the command line left unset.
func (c *Config) defaults() {
	if c.Customers == 0 {
		c.Customers = 50
	}
	if c.Concurrency == 0 {
		c.Concurrency = 8
	}
	if c.Duration == 0 && c.Events == 0 {
		c.Duration = 10 * time.Second
	}
	if len(c.Channels) == 0 {
		c.Channels = []string{"webchat", "sms", "voice", "email"}
	}
	if c.LookupTimeout == 0 {
		c.LookupTimeout = 3 * time.Second
	}
	if c.ActionTimeout == 0 {
		c.ActionTimeout = 10 * time.Second
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = 10 * time.Second
	}
	if c.RewardCost == 0 {
		c.RewardCost = 20
	}
	if c.Stock == 0 {
		c.Stock = int64(max(1, c.Customers/5))
	}
}

func (c *Config) validate() error {
	u, err := url.Parse(c.Target)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("--target must be an http(s) URL such as http://127.0.0.1:8080")
	}
	if host := u.Hostname(); !c.AllowRemote && host != "localhost" && !isLoopback(host) {
		return fmt.Errorf("--target %s is not on this machine: the emulator creates customers and rewards in the ledger it targets; pass --allow-remote for a test deployment", host)
	}
	switch {
	case c.ClientID == "" || c.ClientSecret == "":
		return fmt.Errorf("--client-id and --client-secret are required (tally clients create --scopes ledger:read,ledger:write,admin)")
	case c.Customers < 1 || c.Concurrency < 1 || c.Events < 0 || c.Duration < 0:
		return fmt.Errorf("--customers and --concurrency must be positive, --events and --duration not negative")
	case c.Duplicates < 0 || c.Duplicates > 1:
		return fmt.Errorf("--duplicates must be a share between 0 and 1, not %g", c.Duplicates)
	case c.FlowRetries < 0 || c.RewardCost < 1 || c.Stock < 1:
		return fmt.Errorf("--flow-retries must not be negative, --reward-cost and --stock must be positive")
	}
	for _, ch := range c.Channels {
		if _, ok := channels[ch]; !ok {
			return fmt.Errorf("unknown channel %q: choose among webchat, sms, voice, email, callback", ch)
		}
	}
	return nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
