// Package api is Tally's HTTP interface: the endpoints Genesys Cloud Data Actions call, OAuth 2.0, the
// operational endpoints, one route table, and one error-to-status table.
package api

import (
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/auth"
	"github.com/tally-ledger/tally/balancecache"
	"github.com/tally-ledger/tally/earning"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/metrics"
	"github.com/tally-ledger/tally/ratelimit"
	"github.com/tally-ledger/tally/spool"
	"github.com/tally-ledger/tally/webhooks"
)

// Deps are what the server calls. Store is the store the ledger runs on (already wrapped by the circuit
// breaker); Cache holds last-known balances for stale answers.
type Deps struct {
	Ledger    *ledger.Service
	Store     tally.Store
	Hasher    *tally.CustomerHasher
	Programme *earning.Programme
	// Earning applies the earning rules (the ledger's Earner must be the same engine); nil: the
	// programme's own rules, without a database (events then need a ledger with that engine too).
	Earning  *earning.Engine
	Issuer   *auth.Issuer
	Verifier *auth.Verifier
	Clients  tally.CredentialStore
	Cache    balancecache.Cache
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
	Mirror   ContactMirror // nil: the Genesys contact mirror is off
	Spool    spool.Spool   // nil: accruals are refused (503) while the store is unavailable
	// ReadReplica, when set, is a standby that balance lookups read from while it is no further behind
	// than Options.ReadMaxStaleness (see readreplica.go).
	ReadReplica ReadReplica
	// Webhooks administers webhook subscriptions (nil: /v1/admin/webhooks answers 503).
	Webhooks *webhooks.Subscriptions
	// Clock stamps the arrival of spooled accruals, which are earned as of then; nil: time.Now. Give it
	// the clock of the ledger and the earning engine.
	Clock func() time.Time
	// AuthFailures locks the token endpoint out after repeated failed client authentications; nil: an
	// in-memory limiter of this replica with ratelimit's defaults (10 failures in a sliding minute).
	AuthFailures ratelimit.Failures
}

// Options tune the server. Zero values take the defaults.
type Options struct {
	BodyLimit      int64         // request body limit in bytes (default 64 KiB)
	CORSOrigins    []string      // exact origins whose pages may call the portal API (see cors.go; default none)
	MaxInFlight    int           // requests that may use the store at once (default 256)
	AdmissionWait  time.Duration // how long a request may wait for a slot before 429 (default 100 ms)
	LookupDeadline time.Duration // after this a lookup answers from the cache (default 1 s)
	WriteDeadline  time.Duration // bound on a write's wait for its commit (default 10 s)
	SessionTTL     time.Duration // lifetime of portal session tokens (default 15 min)
	// ReadMaxStaleness is how far behind its primary the read replica may be for a lookup to read it
	// (default 5 s); beyond it lookups read the primary.
	ReadMaxStaleness time.Duration
	LogRequests      bool
	// PointValue and Currency are the reports' default money per point ("" for points only).
	PointValue, Currency string
	ClientRate           float64 // requests a second each OAuth client may make, after authentication (0: no limit)
	ClientBurst          int     // requests an OAuth client may make at once above its rate (default 2 s of ClientRate)
	HSTS                 bool    // send Strict-Transport-Security on every answer (the server is reached over TLS)
	// PortalRate is the requests a second each source address may make to the portal session routes,
	// and each customer's sessions to every portal route (0: no limit); PortalBurst how many at once
	// above it (default 2 s of PortalRate).
	PortalRate  float64
	PortalBurst int
	// TrustedProxies are the proxies (load balancers) whose ForwardedHeader names the client: a request
	// from one of them counts against the address it names, not the proxy's (see clientaddr.go). None:
	// every request is its TCP peer's.
	TrustedProxies []netip.Prefix
	// ForwardedHeader is the header the trusted proxies write the client's address in: HeaderXForwardedFor
	// (the default) or HeaderForwarded.
	ForwardedHeader string
}

// Server is the HTTP service.
type Server struct {
	Deps
	opts     Options
	log      *slog.Logger
	metrics  *metrics.Metrics
	slots    chan struct{}
	revoke   revocations
	sessions sessions
	handler  http.Handler
	spooled  spoolState

	authFailures ratelimit.Failures
	clientRate   *ratelimit.Buckets
	portalRate   *ratelimit.Buckets
}

// New builds the server and its route table.
func New(d Deps, opts Options) *Server {
	if opts.BodyLimit <= 0 {
		opts.BodyLimit = 64 << 10
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 256
	}
	if opts.AdmissionWait <= 0 {
		opts.AdmissionWait = 100 * time.Millisecond
	}
	if opts.LookupDeadline <= 0 {
		opts.LookupDeadline = time.Second
	}
	if opts.WriteDeadline <= 0 {
		opts.WriteDeadline = 10 * time.Second
	}
	if opts.ReadMaxStaleness <= 0 {
		opts.ReadMaxStaleness = 5 * time.Second
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 15 * time.Minute
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Programme == nil {
		d.Programme = earning.DefaultProgramme()
	}
	if d.Earning == nil {
		d.Earning = earning.NewEngine(nil, d.Programme, nil)
	}
	if d.Clock == nil {
		d.Clock = time.Now
	}
	if d.AuthFailures == nil {
		d.AuthFailures = ratelimit.NewMemory(ratelimit.FailureConfig{})
	}
	if opts.ClientBurst <= 0 {
		opts.ClientBurst = int(math.Ceil(2 * opts.ClientRate))
	}
	if opts.PortalBurst <= 0 {
		opts.PortalBurst = int(math.Ceil(2 * opts.PortalRate))
	}
	if opts.ForwardedHeader == "" {
		opts.ForwardedHeader = HeaderXForwardedFor
	}
	s := &Server{Deps: d, opts: opts, log: d.Logger, metrics: d.Metrics, slots: make(chan struct{}, opts.MaxInFlight),
		authFailures: d.AuthFailures, clientRate: ratelimit.NewBuckets(opts.ClientRate, opts.ClientBurst),
		portalRate: ratelimit.NewBuckets(opts.PortalRate, opts.PortalBurst)}
	s.handler = s.observe(s.secure(s.cors(s.routes())))
	s.startSpool()
	return s
}

// ServeHTTP serves a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// routes is the one route table.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	read, write, admin := tally.ScopeLedgerRead, tally.ScopeLedgerWrite, tally.ScopeAdmin

	mux.Handle("POST /oauth/token", s.guardToken(s.admit(auth.NewTokenService(s.Issuer, s.Clients, s.log))))
	mux.HandleFunc("GET /.well-known/jwks.json", s.handleJWKS)

	mux.Handle("POST /v1/ledger/balance/lookup", s.admit(s.authorize(read, s.handleLookup)))
	mux.Handle("POST /v1/ledger/transaction/process", s.admit(s.authorize(write, s.handleProcess)))
	mux.Handle("GET /v1/ledger/accounts/{customer}/history", s.admit(s.authorize(read, s.handleHistory)))
	mux.Handle("POST /v1/ledger/accounts/{customer}/status", s.admit(s.authorize(admin, s.handleStatus)))
	mux.Handle("POST /v1/admin/customers/{customer}/forget", s.admit(s.authorize(admin, s.handleForget)))
	mux.Handle("POST /v1/admin/imports", s.admit(s.authorize(admin, s.handleImport)))
	mux.Handle("GET /v1/admin/webhooks", s.admit(s.authorize(admin, s.handleListWebhooks)))
	mux.Handle("POST /v1/admin/webhooks", s.admit(s.authorize(admin, s.handleCreateWebhook)))
	mux.Handle("GET /v1/admin/webhooks/{id}", s.admit(s.authorize(admin, s.handleGetWebhook)))
	mux.Handle("PATCH /v1/admin/webhooks/{id}", s.admit(s.authorize(admin, s.handlePatchWebhook)))
	mux.Handle("DELETE /v1/admin/webhooks/{id}", s.admit(s.authorize(admin, s.handleDeleteWebhook)))
	mux.Handle("POST /v1/admin/webhooks/{id}/secret", s.admit(s.authorize(admin, s.handleRotateWebhookSecret)))
	mux.Handle("GET /v1/admin/webhooks/{id}/deliveries", s.admit(s.authorize(admin, s.handleWebhookDeliveries)))
	mux.Handle("GET /v1/ledger/transactions/{seq}", s.admit(s.authorize(read, s.handleTransaction)))
	mux.Handle("GET /v1/catalog/rewards", s.admit(s.authorize(read, s.handleRewards)))
	mux.Handle("GET /v1/catalog/rewards/{id}", s.admit(s.authorize(read, s.handleReward)))
	mux.Handle("PUT /v1/catalog/rewards/{id}", s.admit(s.authorize(admin, s.handlePutReward)))
	mux.Handle("POST /v1/catalog/rewards", s.admit(s.authorize(admin, s.handleCreateReward)))
	mux.Handle("PATCH /v1/catalog/rewards/{id}", s.admit(s.authorize(admin, s.handlePatchReward)))
	mux.Handle("POST /v1/catalog/rewards/{id}/inventory", s.admit(s.authorize(admin, s.handleRewardInventory)))
	mux.Handle("POST /v1/catalog/rewards/{id}/coupons", s.admit(s.authorize(admin, s.handleAddCoupons)))
	mux.Handle("GET /v1/catalog/redemptions", s.admit(s.authorize(admin, s.handleAdminRedemptions)))
	mux.Handle("POST /v1/catalog/redemptions/{receipt_id}/retry", s.admit(s.authorize(admin, s.handleRetryRedemption)))
	mux.Handle("GET /v1/admin/reports/{name}", s.admit(s.authorize(admin, s.handleReport)))
	mux.Handle("POST /v1/admin/adjustments", s.admit(s.authorize(admin, s.handleAdjustment)))
	mux.Handle("POST /v1/admin/reversals", s.admit(s.authorize(admin, s.handleReversal)))
	mux.Handle("POST /v1/admin/clawbacks", s.admit(s.authorize(admin, s.handleClawback)))
	mux.Handle("POST /v1/admin/transactions/{seq}/activate", s.admit(s.authorize(admin, s.handleActivate)))
	mux.Handle("POST /v1/admin/expiry/run", s.admit(s.authorize(admin, s.handleExpiryRun)))

	mux.Handle("GET /v1/admin/rules", s.admit(s.authorize(admin, s.handleRules)))
	mux.Handle("POST /v1/admin/rules", s.admit(s.authorize(admin, s.handleCreateRule)))
	mux.Handle("POST /v1/admin/rules/test", s.admit(s.authorize(admin, s.handleTestRules)))
	mux.Handle("GET /v1/admin/rules/{name}", s.admit(s.authorize(admin, s.handleRule)))
	mux.Handle("PUT /v1/admin/rules/{name}", s.admit(s.authorize(admin, s.handlePutRule)))
	mux.Handle("DELETE /v1/admin/rules/{name}", s.admit(s.authorize(admin, s.handleDeleteRule)))
	mux.Handle("GET /v1/admin/customers/{customer}/tier", s.admit(s.authorize(admin, s.handleCustomerTier)))
	mux.Handle("POST /v1/admin/tiers/review", s.admit(s.authorize(admin, s.handleTierReview)))

	mux.Handle("GET /portal/", portalFiles(s.opts.CORSOrigins))
	mux.Handle("GET /v1/portal/me", s.admit(http.HandlerFunc(s.handlePortalMe)))
	mux.Handle("POST /v1/portal/session/refresh", s.limitPortal(s.admit(http.HandlerFunc(s.handleSessionRefresh))))
	mux.Handle("POST /v1/portal/session/verify", s.limitPortal(s.admit(http.HandlerFunc(s.handleSessionVerify))))
	mux.Handle("GET /v1/portal/catalog", s.admit(http.HandlerFunc(s.handlePortalCatalog)))
	mux.Handle("POST /v1/portal/redeem", s.admit(http.HandlerFunc(s.handlePortalRedeem)))
	mux.Handle("GET /v1/portal/receipts/{id}", s.admit(http.HandlerFunc(s.handlePortalReceipt)))

	mux.Handle("GET /metrics", s.metricsHandler())
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.HandleFunc("GET /openapi.json", s.handleOpenAPI)

	mux.Handle("GET /{$}", portalPage(s.opts.CORSOrigins))
	mux.HandleFunc("GET /widget/{version}/bundle.min.js", handleWidgetBundle)
	return routed(mux)
}

// routed serves mux, answering a request that no route takes with a problem: 405 and Allow when the path
// is routed for other methods, else 404. (A catch-all "/" route would take those requests too, and turn
// every wrong method into a 404.)
func routed(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		var allowed, literal []string
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			other := r.Clone(r.Context())
			other.Method = m
			if _, pattern := mux.Handler(other); pattern != "" {
				allowed = append(allowed, m)
				if !strings.Contains(pattern, "{") {
					literal = append(literal, m)
				}
			}
		}
		if len(literal) > 0 {
			// A path routed literally for some methods (/v1/admin/rules/test) is that route, not an
			// instance of a wildcard route of other methods (/v1/admin/rules/{name}).
			allowed = literal
		}
		if len(allowed) == 0 {
			writeError(w, r, tally.Errorf(tally.ENOTFOUND, "no such endpoint: %s %s", r.Method, r.URL.Path))
			return
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, r, tally.Errorf(codeMethod, "%s takes %s, not %s", r.URL.Path, strings.Join(allowed, ", "), r.Method))
	})
}

func (s *Server) metricsHandler() http.Handler {
	if s.metrics == nil {
		return http.NotFoundHandler()
	}
	return s.metrics.Handler()
}
