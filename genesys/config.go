// Package genesys generates the files a Genesys Cloud admin imports to wire Tally into a contact centre:
// Data Actions and the custom auth action of a web services data actions integration, the Architect
// flows (Archy YAML), the Process Automation Trigger, the page snippet, the same wiring as Terraform for
// the CX as Code provider, and INSTALL.md. Every generator is a pure function of Config.
//
// Tally cannot reach Genesys, so the shapes follow Genesys's public artifacts (exported Data Actions and
// Archy flows of the GenesysCloudBlueprints repositories, the provider's documentation); see
// ../shared/genesys/REFERENCE.md in the project's notes for the facts and their sources.
package genesys

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
)

// Config is what the artifacts depend on.
type Config struct {
	// BaseURL is where Genesys reaches Tally, e.g. https://ledger.example.com (no trailing slash needed).
	BaseURL string
	// Region is the Genesys Cloud domain of the org, e.g. mypurecloud.com; one of Regions.
	Region string
	// MediaType is the conversation media type whose end earns points (the trigger's match criteria).
	MediaType string
	// Names of the Genesys objects; Defaults fills the empty ones.
	Integration      string // the integration holding the customer-facing actions (ledger:read, ledger:write)
	AdminIntegration string // the integration holding the agents' admin actions (admin scope too)
	Flow             string // the inbound message flow
	Workflow         string // the workflow the trigger starts
	Queue            string // the fallback queue
	Trigger          string // the Process Automation Trigger
}

// Default names, as the integration guide and the issue name them.
const (
	DefaultRegion           = "mypurecloud.com"
	DefaultMediaType        = "MESSAGE"
	DefaultIntegration      = "Tally Ledger"
	DefaultAdminIntegration = "Tally Ledger Admin"
	DefaultFlow             = "Loyalty_Economy_Validation"
	DefaultWorkflow         = "Loyalty_Conversation_End"
	DefaultQueue            = "Loyalty_Redemptions"
	DefaultTrigger          = "Loyalty conversation end"
)

// Regions are the Genesys Cloud domains (login.<domain>, api.<domain>, apps.<domain>).
var Regions = []string{
	"mypurecloud.com", "usw2.pure.cloud", "cac1.pure.cloud", "sae1.pure.cloud", "mypurecloud.ie",
	"mypurecloud.de", "euw2.pure.cloud", "euc2.pure.cloud", "mec1.pure.cloud", "aps1.pure.cloud",
	"mypurecloud.jp", "apne2.pure.cloud", "apne3.pure.cloud", "mypurecloud.com.au", "use2.us-gov-pure.cloud",
}

// messengerEnvironments names each region the way a Messenger deployment snippet does (`environment`);
// the `prod-<region code>` pattern is Genesys's, the admin's own deployment snippet is authoritative.
var messengerEnvironments = map[string]string{
	"mypurecloud.com": "prod", "usw2.pure.cloud": "prod-usw2", "cac1.pure.cloud": "prod-cac1",
	"sae1.pure.cloud": "prod-sae1", "mypurecloud.ie": "prod-euw1", "mypurecloud.de": "prod-euc1",
	"euw2.pure.cloud": "prod-euw2", "euc2.pure.cloud": "prod-euc2", "mec1.pure.cloud": "prod-mec1",
	"aps1.pure.cloud": "prod-aps1", "mypurecloud.jp": "prod-apne1", "apne2.pure.cloud": "prod-apne2",
	"apne3.pure.cloud": "prod-apne3", "mypurecloud.com.au": "prod-apse2", "use2.us-gov-pure.cloud": "prod-use2",
}

// MediaTypes are the conversation media types a customer.end event carries.
var MediaTypes = []string{"MESSAGE", "CHAT", "VOICE", "CALLBACK", "EMAIL"}

// Defaults returns c with the empty fields set to their defaults.
func (c Config) Defaults() Config {
	set := func(p *string, v string) {
		if strings.TrimSpace(*p) == "" {
			*p = v
		}
	}
	set(&c.Region, DefaultRegion)
	set(&c.MediaType, DefaultMediaType)
	set(&c.Integration, DefaultIntegration)
	set(&c.AdminIntegration, DefaultAdminIntegration)
	set(&c.Flow, DefaultFlow)
	set(&c.Workflow, DefaultWorkflow)
	set(&c.Queue, DefaultQueue)
	set(&c.Trigger, DefaultTrigger)
	c.BaseURL = strings.TrimRight(strings.TrimSpace(c.BaseURL), "/")
	return c
}

// Validate reports the first thing wrong with c (after Defaults).
func (c Config) Validate() error {
	if c.BaseURL == "" {
		return fmt.Errorf("the base URL is required")
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("base URL %q is not an absolute http(s) URL", c.BaseURL)
	}
	// Genesys sends client secrets and bearer tokens to this URL: only https, but for a test server on
	// this machine.
	if u.Scheme != "https" && !isLoopback(u.Hostname()) {
		return fmt.Errorf("base URL %q must use https (plain http is allowed only for a loopback host)", c.BaseURL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("base URL %q must not hold credentials, a query or a fragment", c.BaseURL)
	}
	// The URL lands in Velocity templates, HCL strings, YAML and HTML: keep it to characters that mean
	// nothing in any of them.
	if strings.ContainsAny(c.BaseURL, "\"'\\$#{}<>` ") {
		return fmt.Errorf("base URL %q holds a character that templates would interpret", c.BaseURL)
	}
	if !slices.Contains(Regions, c.Region) {
		return fmt.Errorf("unknown region %q: expected one of %s", c.Region, strings.Join(Regions, ", "))
	}
	if !slices.Contains(MediaTypes, c.MediaType) {
		return fmt.Errorf("unknown media type %q: expected one of %s", c.MediaType, strings.Join(MediaTypes, ", "))
	}
	names := map[string]string{"integration": c.Integration, "admin integration": c.AdminIntegration,
		"flow": c.Flow, "workflow": c.Workflow, "queue": c.Queue, "trigger": c.Trigger}
	for _, what := range []string{"integration", "admin integration", "flow", "workflow", "queue", "trigger"} {
		n := names[what]
		if len(n) > 200 || strings.ContainsAny(n, "\"'\\$#{}<>`[]/:\n\r\t") {
			return fmt.Errorf("%s name %q is longer than 200 bytes or holds a character Genesys or the templates would interpret", what, n)
		}
	}
	if c.Integration == c.AdminIntegration {
		return fmt.Errorf("the integration and the admin integration need different names")
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
