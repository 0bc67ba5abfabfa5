package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api"
	"github.com/tally-ledger/tally/auth"
	"github.com/tally-ledger/tally/balancecache"
	"github.com/tally-ledger/tally/breaker"
	"github.com/tally-ledger/tally/earning"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/metrics"
	"github.com/tally-ledger/tally/postgres"
	"github.com/tally-ledger/tally/ratelimit"
	"github.com/tally-ledger/tally/report"
)

// serveConfig is everything serve reads from flags and the environment.
type serveConfig struct {
	addr, db, programme, redisURL          string
	readDB                                 string
	readMaxStaleness                       time.Duration
	pprofAddr                              string
	issuer, audience                       string
	extIssuer, extAudience, extJWKS        string
	demo, logRequests, hsts                bool
	authFailures, clientRate, clientBurst  int
	gcPercent                              int
	portalRate, portalBurst                int
	trustedProxies                         []netip.Prefix
	forwardedHeader                        string
	authWindow, authLockout                time.Duration
	bodyLimit, maxInFlight                 int
	breakerFailures                        int
	batchMax, batchWorkers                 int
	admissionWait, lookupDeadline          time.Duration
	writeDeadline, breakerOpen, retention  time.Duration
	tokenTTL, sessionTTL, shutdownDeadline time.Duration
	checkpointEvery                        time.Duration
	tierReview                             time.Duration
	lotsEvery                              time.Duration
	expiryRate                             int
	checkpointFile                         string
	corsOrigins                            []string
	fulfillment                            fulfillmentConfig
	mirror                                 mirrorConfig
	spool                                  spoolConfig
	pointValue, currency                   string // the reports' money per point
}

func parseServe(args []string, stderr io.Writer) (*serveConfig, error) {
	fs := newFlagSet("serve", stderr)
	c := &serveConfig{}
	fs.StringVar(&c.addr, "addr", envDefault("TALLY_ADDR", "127.0.0.1:8080"), "listen address (env TALLY_ADDR)")
	db := dbFlag(fs)
	fs.BoolVar(&c.demo, "demo", false, "seed a demo catalog, customer and OAuth client, and print them")
	fs.StringVar(&c.programme, "programme", envDefault("TALLY_PROGRAMME", ""), "programme file with earning rules and tiers (env TALLY_PROGRAMME)")
	fs.StringVar(&c.readDB, "read-db", envDefault("TALLY_READ_DATABASE_URL", ""), "PostgreSQL standby that balance lookups may read while it lags by no more than --read-db-max-staleness (env TALLY_READ_DATABASE_URL; default: lookups read --db)")
	fs.StringVar(&c.redisURL, "redis", envDefault("TALLY_REDIS_URL", ""), "Redis URL for the shared balance cache (env TALLY_REDIS_URL)")
	fs.StringVar(&c.issuer, "issuer", envDefault("TALLY_ISSUER", ""), "issuer URL of Tally's tokens (env TALLY_ISSUER; default http://ADDR)")
	fs.StringVar(&c.audience, "audience", envDefault("TALLY_AUDIENCE", "tally"), "audience of Tally's access tokens (env TALLY_AUDIENCE)")
	fs.StringVar(&c.extIssuer, "external-issuer", envDefault("TALLY_EXTERNAL_ISSUER", ""), "also accept tokens of this issuer (env TALLY_EXTERNAL_ISSUER)")
	fs.StringVar(&c.extAudience, "external-audience", envDefault("TALLY_EXTERNAL_AUDIENCE", ""), "audience the external issuer's tokens carry (env TALLY_EXTERNAL_AUDIENCE)")
	fs.StringVar(&c.extJWKS, "external-jwks-url", envDefault("TALLY_EXTERNAL_JWKS_URL", ""), "https URL of the external issuer's JWKS (env TALLY_EXTERNAL_JWKS_URL)")
	fs.StringVar(&c.pprofAddr, "pprof-addr", envDefault("TALLY_PPROF_ADDR", ""), "serve Go's pprof profiles on this separate address, e.g. 127.0.0.1:6060 (env TALLY_PPROF_ADDR; off by default)")
	fs.StringVar(&c.checkpointFile, "checkpoint-file", envDefault("TALLY_CHECKPOINT_FILE", ""), "append signed checkpoints to this file, outside the database (env TALLY_CHECKPOINT_FILE; default DB.checkpoints beside an embedded database, tally-checkpoints.jsonl in the working directory with PostgreSQL)")
	fulfillmentConfig := fulfillmentFlags(fs)
	mirrorConfig := mirrorFlags(fs)
	spoolConfig := spoolFlags(fs)
	checkpointEvery := durationFlag(fs, "checkpoint-every", "TALLY_CHECKPOINT_EVERY", time.Minute, "how often to checkpoint the ledger head while it changes (0 turns it off)")
	lotsEvery := durationFlag(fs, "lots-every", "TALLY_LOTS_EVERY", time.Minute, "how often to activate due pending points and expire lapsed points (0 turns it off)")
	expiryRate := intFlag(fs, "expiry-rate", "TALLY_EXPIRY_RATE", ledger.DefaultExpiryRate, "lapsed lots the expiry job expires per second at most, so that live writes keep their rate (negative: unpaced)")
	corsOrigins := fs.String("cors-origins", envDefault("TALLY_CORS_ORIGINS", ""), "comma-separated exact origins (https://host[:port]) whose pages may embed the widget and call the portal API (env TALLY_CORS_ORIGINS; default none)")
	fs.StringVar(&c.pointValue, "point-value", envDefault("TALLY_POINT_VALUE", ""), "money per point in the reports, such as 0.01 (env TALLY_POINT_VALUE; default points only)")
	fs.StringVar(&c.currency, "currency", envDefault("TALLY_CURRENCY", ""), "ISO 4217 currency of --point-value, such as EUR (env TALLY_CURRENCY)")
	fs.BoolVar(&c.hsts, "hsts", envDefault("TALLY_HSTS", "") == "true", "send Strict-Transport-Security: clients reach the server over TLS (a proxy terminates it) (env TALLY_HSTS=true)")
	trustedProxies := fs.String("trusted-proxies", envDefault("TALLY_TRUSTED_PROXIES", ""), "comma-separated CIDRs of the proxies (load balancers) whose --trusted-proxy-header names the client: abuse limits and logs then use the client's address, not the proxy's (env TALLY_TRUSTED_PROXIES; default none: the TCP peer)")
	forwardedHeader := fs.String("trusted-proxy-header", envDefault("TALLY_TRUSTED_PROXY_HEADER", api.HeaderXForwardedFor), "the header the --trusted-proxies append the client's address to: X-Forwarded-For or Forwarded (RFC 7239) (env TALLY_TRUSTED_PROXY_HEADER)")
	fs.BoolVar(&c.logRequests, "log-requests", envDefault("TALLY_LOG_REQUESTS", "") == "true", "log every request (env TALLY_LOG_REQUESTS=true)")
	ints := []struct {
		p    *int
		name string
		env  string
		def  int
		use  string
	}{
		{&c.bodyLimit, "body-limit", "TALLY_BODY_LIMIT", 64 << 10, "largest request body in bytes"},
		{&c.maxInFlight, "max-in-flight", "TALLY_MAX_IN_FLIGHT", 256, "requests using the store at once before others wait"},
		{&c.breakerFailures, "breaker-failures", "TALLY_BREAKER_FAILURES", 5, "consecutive store failures that open the circuit"},
		{&c.batchMax, "batch-max", "TALLY_BATCH_MAX", 256, "most writes committed in one database transaction"},
		{&c.batchWorkers, "batch-workers", "TALLY_BATCH_WORKERS", 0, "batches in flight at once (default 1 on SQLite, 2 on PostgreSQL)"},
		{&c.authFailures, "auth-failures", "TALLY_AUTH_FAILURES", 10, "failed client authentications per client id, and per source address, within --auth-failure-window that lock /oauth/token out for them"},
		{&c.clientRate, "client-rate", "TALLY_CLIENT_RATE", 10000, "requests a second each OAuth client may make on this replica (0: no limit)"},
		{&c.clientBurst, "client-burst", "TALLY_CLIENT_BURST", 0, "requests an OAuth client may make at once above --client-rate (default twice the rate)"},
		{&c.gcPercent, "gc-percent", "TALLY_GC_PERCENT", defaultGCPercent, "Go's garbage collector target: the heap may grow by this percent of the live heap between collections (GOGC in the environment wins)"},
		{&c.portalRate, "portal-rate", "TALLY_PORTAL_RATE", 20, "requests a second each source address may make to the portal session routes, and each customer to all portal routes, on this replica (0: no limit)"},
		{&c.portalBurst, "portal-burst", "TALLY_PORTAL_BURST", 40, "requests a source address (or a customer) may make at once above --portal-rate (0: twice the rate)"},
	}
	var intGets []func() (int, error)
	for _, i := range ints {
		intGets = append(intGets, intFlag(fs, i.name, i.env, i.def, i.use))
	}
	durs := []struct {
		p    *time.Duration
		name string
		env  string
		def  time.Duration
		use  string
	}{
		{&c.admissionWait, "admission-wait", "TALLY_ADMISSION_WAIT", 100 * time.Millisecond, "how long a request may wait for a slot before 429"},
		{&c.lookupDeadline, "lookup-deadline", "TALLY_LOOKUP_DEADLINE", time.Second, "after this a balance lookup answers from the cache"},
		{&c.writeDeadline, "write-deadline", "TALLY_WRITE_DEADLINE", 10 * time.Second, "bound on a write's wait for its commit"},
		{&c.readMaxStaleness, "read-db-max-staleness", "TALLY_READ_DB_MAX_STALENESS", 5 * time.Second, "how far behind its primary the --read-db standby may be for lookups to read it; beyond it they read --db"},
		{&c.breakerOpen, "breaker-open", "TALLY_BREAKER_OPEN", 15 * time.Second, "how long the circuit stays open"},
		{&c.retention, "event-retention", "TALLY_EVENT_RETENTION", defaultEventRetention, "how long event outcomes are remembered (explicit transactions' outcomes are kept)"},
		{&c.tokenTTL, "token-ttl", "TALLY_TOKEN_TTL", auth.DefaultTTL, "lifetime of access tokens"},
		{&c.sessionTTL, "session-ttl", "TALLY_SESSION_TTL", 15 * time.Minute, "lifetime of portal session tokens"},
		{&c.authWindow, "auth-failure-window", "TALLY_AUTH_FAILURE_WINDOW", time.Minute, "the sliding window in which --auth-failures failed client authentications lock /oauth/token out"},
		{&c.authLockout, "auth-lockout", "TALLY_AUTH_LOCKOUT", time.Minute, "how long /oauth/token stays locked out for a client id or source address"},
		{&c.tierReview, "tier-review-interval", "TALLY_TIER_REVIEW_INTERVAL", time.Hour, "how often the end-of-period tier review runs (it is idempotent: a period is reviewed once)"},
		{&c.shutdownDeadline, "shutdown-deadline", "TALLY_SHUTDOWN_DEADLINE", 30 * time.Second, "how long in-flight requests may take to finish at shutdown"},
	}
	var durGets []func() (time.Duration, error)
	for _, d := range durs {
		durGets = append(durGets, durationFlag(fs, d.name, d.env, d.def, d.use))
	}
	if err := fs.Parse(args); err != nil {
		return nil, errUsageShown
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("serve takes no arguments, got %q", fs.Arg(0))
	}
	c.db = *db
	if c.pointValue == "" && c.currency == "" && c.programme != "" {
		var err error
		if c.pointValue, c.currency, err = report.ProgrammeValue(c.programme); err != nil {
			return nil, err
		}
	}
	if _, err := report.ParsePointValue(c.pointValue, c.currency); err != nil {
		return nil, fmt.Errorf("--point-value/--currency: %s", tally.ErrorMessage(err))
	}
	origins, err := api.ParseOrigins(*corsOrigins)
	if err != nil {
		return nil, fmt.Errorf("--cors-origins: %w", err)
	}
	c.corsOrigins = origins
	if c.trustedProxies, err = api.ParseTrustedProxies(*trustedProxies); err != nil {
		return nil, fmt.Errorf("--trusted-proxies: %w", err)
	}
	if c.forwardedHeader, err = api.ParseForwardedHeader(*forwardedHeader); err != nil {
		return nil, fmt.Errorf("--trusted-proxy-header: %w", err)
	}
	for n, get := range intGets {
		v, err := get()
		if err != nil {
			return nil, err
		}
		if v < 0 || v == 0 && !slices.Contains([]string{"batch-workers", "client-rate", "client-burst", "portal-rate", "portal-burst"}, ints[n].name) {
			return nil, fmt.Errorf("--%s must be positive", ints[n].name)
		}
		*ints[n].p = v
	}
	for n, get := range durGets {
		v, err := get()
		if err != nil {
			return nil, err
		}
		if v <= 0 {
			return nil, fmt.Errorf("--%s must be positive", durs[n].name)
		}
		*durs[n].p = v
	}
	if c.fulfillment, err = fulfillmentConfig(); err != nil {
		return nil, err
	}
	if c.mirror, err = mirrorConfig(); err != nil {
		return nil, err
	}
	if c.spool, err = spoolConfig(); err != nil {
		return nil, err
	}
	every, err := checkpointEvery()
	if err != nil {
		return nil, err
	}
	c.checkpointEvery = every
	if c.checkpointEvery < 0 {
		return nil, errors.New("--checkpoint-every must not be negative")
	}
	if c.lotsEvery, err = lotsEvery(); err != nil {
		return nil, err
	}
	if c.expiryRate, err = expiryRate(); err != nil {
		return nil, err
	}
	if c.gcPercent <= 0 {
		return nil, errors.New("--gc-percent must be positive")
	}
	if c.expiryRate == 0 {
		return nil, errors.New("--expiry-rate must not be 0 (a negative number runs the expiry job unpaced)")
	}
	if c.lotsEvery < 0 {
		return nil, errors.New("--lots-every must not be negative")
	}
	if (c.extIssuer != "") != (c.extJWKS != "") || c.extIssuer != "" && c.extAudience == "" {
		return nil, errors.New("an external issuer needs --external-issuer, --external-audience and --external-jwks-url together")
	}
	return c, nil
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseServe(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	setGCPercent(c.gcPercent, log)
	return serve(ctx, c, log, stdout, nil)
}

// serve runs the service until ctx ends. When ready is not nil it receives the bound address.
func serve(ctx context.Context, c *serveConfig, log *slog.Logger, stdout io.Writer, ready chan<- string) error {
	programme := earning.DefaultProgramme()
	if c.programme != "" {
		p, err := earning.LoadProgramme(c.programme)
		if err != nil {
			return err
		}
		programme = p
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.addr, err)
	}
	defer ln.Close()
	base := "http://" + ln.Addr().String()

	store, err := openMigrated(ctx, c.db)
	if err != nil {
		return err
	}
	defer store.Close()
	hasher, err := customerHasher(store, log)
	if err != nil {
		return err
	}
	key, err := ledgerKey(store, log)
	if err != nil {
		return err
	}
	// Seal the chains now (a new or upgraded ledger), and refuse to start with a key that is not the
	// ledger's rather than refuse every write later.
	if _, err := ledger.OpenChain(ctx, store.Store, key); err != nil {
		if errors.Is(err, ledger.ErrUnsealed) {
			return errors.New(tally.ErrorMessage(err))
		}
		if tally.ErrorCode(err) == tally.EINTERNAL {
			return errors.New("the ledger key does not match this database (its chain seal was made with another key): set the TALLY_LEDGER_KEY this ledger was written with")
		}
		return fmt.Errorf("seal the chains: %w", err)
	}
	// Opened before the background jobs, so that it is closed after the replayer has stopped.
	sp, err := openSpool(ctx, store, c.spool, log)
	if err != nil {
		return err
	}
	if sp != nil {
		defer sp.Close()
	}

	m := metrics.New()
	guarded := breaker.New(store.Store, breaker.Config{
		Failures: uint32(c.breakerFailures), OpenFor: c.breakerOpen,
		OnStateChange: func(from, to string) {
			m.CircuitTransitions.WithLabelValues(from, to).Inc()
			m.CircuitState.Set(map[string]float64{"closed": 0, "half-open": 1, "open": 2}[to])
			log.Warn("store circuit breaker", "from", from, "to", to)
		},
	})
	workers := c.batchWorkers
	if workers == 0 {
		workers = 1
		if store.kind == "postgres" {
			workers = 2
		}
	}
	engine, err := startEarning(ctx, store.Store, programme, log)
	if err != nil {
		return err
	}
	l := ledger.New(guarded, ledger.Options{
		Key: key, Tiers: programme, Earner: engine, Lots: programme.Lots, MaxBatch: c.batchMax, Workers: workers, Observe: m.ObserveWrite,
		ObserveBatch: func(n int) { m.BatchSize.Observe(float64(n)) },
	})
	defer l.Close()

	issuerURL := c.issuer
	if issuerURL == "" {
		issuerURL = base
	}
	issuer, err := auth.NewIssuer(ctx, store.creds, auth.IssuerConfig{Issuer: strings.TrimSuffix(issuerURL, "/"), Audience: c.audience, Key: key, TTL: c.tokenTTL, Logger: log})
	if err != nil {
		return fmt.Errorf("token issuer: %w", err)
	}
	// Background jobs outlive ctx until the server has drained, and are waited for before the ledger and
	// the store they use are closed (deferred calls run in reverse).
	runCtx, stopJobs := context.WithCancel(context.WithoutCancel(ctx))
	var jobs sync.WaitGroup
	defer func() {
		stopJobs()
		jobs.Wait()
	}()
	jobs.Go(func() { issuer.Run(runCtx) })
	vcfg := auth.VerifierConfig{Local: issuer, Logger: log}
	if c.extIssuer != "" {
		vcfg.External = []auth.ExternalIssuer{{Issuer: c.extIssuer, Audience: c.extAudience, JWKSURL: c.extJWKS}}
	}
	verifier, err := auth.NewVerifier(vcfg)
	if err != nil {
		return fmt.Errorf("token verifier: %w", err)
	}

	var cache balancecache.Cache = balancecache.NewMemory(100_000, 24*time.Hour)
	var rdb *redis.Client // also shares the Genesys mirror's token between replicas
	failCfg := ratelimit.FailureConfig{Limit: c.authFailures, Window: c.authWindow, Lockout: c.authLockout}
	var authFailures ratelimit.Failures = ratelimit.NewMemory(failCfg)
	if c.redisURL != "" {
		rc, err := balancecache.OpenRedis(ctx, c.redisURL)
		if err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		defer rc.Close()
		cache, rdb = balancecache.NewRedis(rc, "tally:balance:", 24*time.Hour), rc
		// Replicas share the failure counts: an attacker spreading guesses over them gets no more.
		authFailures = ratelimit.NewRedis(rc, ratelimit.DefaultPrefix, failCfg, log)
	}
	mirror, err := startMirror(runCtx, store, key, engine, rdb, c.mirror, log, jobs.Go)
	if err != nil {
		return err
	}

	readReplica, err := openReadReplica(ctx, c.readDB, c.readMaxStaleness, log)
	if err != nil {
		return err
	}
	if readReplica != nil {
		defer readReplica.Close()
	}
	subscriptions, err := startWebhooks(runCtx, store, guarded, key, m, log, jobs.Go)
	if err != nil {
		return err
	}
	srv := api.New(api.Deps{
		Ledger: l, Store: guarded, Hasher: hasher, Programme: programme, Earning: engine, Issuer: issuer, Verifier: verifier,
		Clients: store.creds, Cache: cache, Metrics: m, Logger: log, Mirror: mirror, Spool: sp, AuthFailures: authFailures,
		ReadReplica: readReplica.replica(), Webhooks: subscriptions,
	}, api.Options{
		BodyLimit: int64(c.bodyLimit), MaxInFlight: c.maxInFlight, AdmissionWait: c.admissionWait,
		LookupDeadline: c.lookupDeadline, WriteDeadline: c.writeDeadline, SessionTTL: c.sessionTTL, LogRequests: c.logRequests,
		CORSOrigins: c.corsOrigins, ReadMaxStaleness: c.readMaxStaleness, PointValue: c.pointValue, Currency: c.currency,
		ClientRate: float64(c.clientRate), ClientBurst: c.clientBurst, HSTS: c.hsts,
		PortalRate: float64(c.portalRate), PortalBurst: c.portalBurst,
		TrustedProxies: c.trustedProxies, ForwardedHeader: c.forwardedHeader,
	})

	if c.demo {
		if err := seedDemo(ctx, store, l, hasher, issuer, base, stdout); err != nil {
			return fmt.Errorf("demo data: %w", err)
		}
	}
	jobs.Go(func() { purgeLoop(runCtx, guarded, c.retention, log) })
	jobs.Go(func() { srv.RunSpool(runCtx, spoolReplayEvery) }) // replays what an earlier run left, at once
	jobs.Go(func() { tierReviewLoop(runCtx, l, programme, c.tierReview, log) })
	if c.lotsEvery > 0 {
		jobs.Go(func() { lotsLoop(runCtx, l, c.lotsEvery, c.expiryRate, log) })
	}
	if pg, ok := store.Store.(*postgres.DB); ok {
		// Plans made while the tables were small would otherwise outlive their growth (postgres/analyze.go).
		jobs.Go(func() { pg.KeepStatistics(runCtx, postgres.StatisticsInterval, log) })
	}
	var handler http.Handler = srv
	if c.demo && c.fulfillment.mailerURL == "" {
		c.fulfillment.mailerURL = base + demoMailerPath
		if handler, err = withDemoMailer(srv, key, c.fulfillment.mailerURL, log); err != nil {
			return err
		}
	}
	if err := startFulfillment(runCtx, store, l, key, c.fulfillment, m, log, jobs.Go); err != nil {
		return err
	}
	checkpointPathName := c.checkpointFile
	if checkpointPathName == "" {
		if checkpointPathName, err = checkpointPath(store, ""); err != nil {
			checkpointPathName = "tally-checkpoints.jsonl"
		}
	}
	var checkpoints *checkpointFile
	if c.checkpointEvery > 0 {
		// An unwritable file is found now, not a minute later in the log.
		if checkpoints, err = openCheckpointFile(checkpointPathName); err != nil {
			return err
		}
		log.Info("checkpoints", "file", checkpointPathName, "every", c.checkpointEvery.String(), "key_id", key.KeyID())
		jobs.Go(func() { checkpointLoop(runCtx, guarded, key, checkpoints, c.checkpointEvery, log) })
	}
	if c.pprofAddr != "" {
		stop, err := servePprof(c.pprofAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}

	hs := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("tally serving", "addr", base, "store", store.kind)
	logTrustedProxies(c, log)
	fmt.Fprintf(stdout, "tally: listening on %s (store: %s)\n", base, store.kind)
	if ready != nil {
		select {
		case ready <- ln.Addr().String():
		case <-ctx.Done():
		}
	}

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Stop taking connections, let in-flight requests finish (their writes commit before they are
	// answered), then drain the ledger's queue and close the store.
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownDeadline)
	defer cancel()
	var shutdownErr error
	if err := hs.Shutdown(sctx); err != nil {
		// Requests still running past the deadline lose their connections; their writes either commit
		// before the ledger closes or fail, and their callers retry with the same key.
		hs.Close()
		shutdownErr = fmt.Errorf("requests were still running %s after the shutdown began: %w", c.shutdownDeadline, err)
		log.Error("shutdown", "err", shutdownErr)
	}
	l.Close()
	if c.checkpointEvery > 0 {
		// A last checkpoint covers the writes since the previous one.
		finalCheckpoint(guarded, key, checkpoints, log)
	}
	log.Info("stopped")
	return shutdownErr
}

// logTrustedProxies says whose forwarding header the abuse limits believe, and warns of a range that
// takes in every address: any client could then name itself whatever address it likes.
func logTrustedProxies(c *serveConfig, log *slog.Logger) {
	if len(c.trustedProxies) == 0 {
		return
	}
	cidrs := make([]string, len(c.trustedProxies))
	for i, p := range c.trustedProxies {
		cidrs[i] = p.String()
		if p.Bits() == 0 {
			log.Warn("--trusted-proxies trusts every address: any client can choose the source address the abuse limits count", "cidr", p.String())
		}
	}
	log.Info("trusted proxies", "cidrs", strings.Join(cidrs, ","), "header", c.forwardedHeader)
}

// purgeLoop removes event outcomes older than the retention, hourly.
func purgeLoop(ctx context.Context, s interface {
	PurgeOutcomes(context.Context, time.Time) (int64, error)
}, retention time.Duration, log *slog.Logger) {
	purge := func() {
		n, err := s.PurgeOutcomes(ctx, time.Now().Add(-retention))
		if err != nil && ctx.Err() == nil {
			log.Warn("purge of old event outcomes failed", "err", err)
		} else if n > 0 {
			log.Info("purged old event outcomes", "count", n)
		}
	}
	purge()
	runEvery(ctx, time.Hour, purge)
}
