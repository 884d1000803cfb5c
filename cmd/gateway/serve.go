package main

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
	"github.com/student-mh-referrals/gateway/gateway/delivery"
	gwhttp "github.com/student-mh-referrals/gateway/gateway/http"
	"github.com/student-mh-referrals/gateway/gateway/logging"
	"github.com/student-mh-referrals/gateway/gateway/prometheus"
	"github.com/student-mh-referrals/gateway/mappings"
	"github.com/student-mh-referrals/gateway/sandbox"
)

// serveGCPercent is the garbage collector's target for `gateway serve`
// unless the operator sets GOGC. A referral allocates a few hundred KB that
// die at once, so Go's default (100) collects very often: 200 cut the CPU
// per accepted referral by 10-20 % under load, and 400 by about 8 % more
// (alternating flat-out runs: 1.08x accepted/s); serveMemoryLimit keeps the
// peak within the 150 MB budget (docs/performance.md).
const serveGCPercent = 400

// serveMemoryLimit is the soft memory limit of `gateway serve` unless the
// operator sets GOMEMLIMIT: near it the collector runs more often, so that
// GOGC 400 buys CPU when the heap is small without taking the process past
// the 150 MB budget under a burst.
const serveMemoryLimit = 110 << 20

// tuneGC sets serveGCPercent and serveMemoryLimit unless GOGC or GOMEMLIMIT
// is set, which always wins.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(serveMemoryLimit)
	}
}

// cmdServe runs the API until ctx is cancelled (SIGINT, SIGTERM), then drains
// in-flight requests and stops. With --sandbox it also serves the sandbox
// NHS receiver, as `make run` does.
func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	cfgPath := fs.String("config", "", "configuration `file` (default: the embedded gateway.example.yaml)")
	withSandbox := fs.Bool("sandbox", false, "also serve the sandbox NHS receiver on sandbox.listen")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	tuneGC(os.Getenv)
	a, err := newApp(ctx, *cfgPath, stdout, "")
	if err != nil {
		return err
	}
	defer func() { _ = a.log.Sync() }()
	startWarnings(a.log, a.cfg)
	signing, err := a.cfg.SigningKeys()
	if err != nil {
		return err
	}
	key, store, err := a.openKeyed(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	api, metrics := a.server(store, key)
	a.audit = &gateway.Audit{Log: store, PseudonymKey: key}
	g, ctx := errgroup.WithContext(ctx)
	tlsCfg, err := serverTLS(a.cfg.TLS)
	if err != nil {
		return err
	}
	worker, err := delivery.New(delivery.Options{
		Outbox:   store,
		Services: deliveryServices(a.cfg.Services),
		Settings: deliverySettings(a.cfg.Delivery),
		Source:   a.evaluator.Source,
		Logger:   a.log.With(zap.String("component", "delivery")),
		Metrics:  metrics,
	})
	if err != nil {
		return err
	}
	api.Intake.Queued = worker.Notify
	// Each receiver's MessageDefinition is resolved at intake (cached, and
	// asked for once now so that the first referral does not wait).
	defs := worker.Definitions()
	a.evaluator.Definitions = defs
	g.Go(func() error {
		for id, err := range defs.Prefetch(ctx) {
			a.log.Warn("MessageDefinition not had at start; asked again at the first referral", zap.String("service", id), zap.Error(err))
		}
		return nil
	})
	g.Go(func() error { return listenAndServe(ctx, a.log, "api", a.cfg.Listen, api.Handler(), tlsCfg) })
	g.Go(func() error {
		return listenAndServe(ctx, a.log, "metrics", a.cfg.Metrics.Listen, metricsHandler(metrics))
	})
	if dir := a.cfg.Policies.Dir; dir != "" {
		// Edits to the policy directory are compiled, tested and swapped
		// in while the gateway serves; a broken set is refused.
		g.Go(func() error {
			if err := a.decider.Watch(ctx, os.DirFS(dir), 2*time.Second); err != nil && ctx.Err() == nil {
				return err
			}
			return nil
		})
	}
	g.Go(func() error { return worker.Run(ctx) })
	if err := startWebhooks(ctx, g, a, store, metrics); err != nil {
		return err
	}
	g.Go(func() error {
		return runRetention(ctx, a.log.With(zap.String("component", "retention")), store, a.cfg.Retention)
	})
	if dir := a.cfg.Audit.CheckpointDir; dir != "" {
		g.Go(func() error {
			return runCheckpoints(ctx, a.log.With(zap.String("component", "checkpoint")), store, dir, signing, a.cfg.Audit.CheckpointInterval.D())
		})
	}
	if addr := a.cfg.Debug.PprofListen; addr != "" {
		a.log.Warn("pprof profiles are served", zap.String("addr", addr))
		g.Go(func() error { return listenAndServe(ctx, a.log, "pprof", addr, pprofHandler()) })
	}
	if *withSandbox {
		rc := newSandbox(a.cfg, a.log.With(zap.String("component", "sandbox-receiver")))
		defer rc.Close()
		g.Go(func() error {
			return listenAndServe(ctx, a.log, "sandbox-receiver", a.cfg.Sandbox.Listen, rc.Handler())
		})
	}
	a.log.Info("gateway started",
		zap.String("version", version),
		zap.String("policy_revision", a.decider.Revision()),
		zap.Int("services", len(a.cfg.Services)))
	return g.Wait()
}

// startWarnings logs, at every start, what the configuration allows but an
// operator must know: demo mode, plain HTTP behind a TLS proxy, metrics on
// a non-loopback address, settings that are ignored.
func startWarnings(log *zap.Logger, cfg *config.Config) {
	if cfg.Demo {
		log.Warn("DEMO MODE: the published demo tokens and demo JWT signing key are accepted, plain http to loopback receivers is allowed, and the pseudonym, chain and checkpoint signing keys are public; never run a real deployment with demo: true")
	}
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
}

// metricsHandler serves /metrics alone, on the metrics listener: anything
// else there is a 404.
func metricsHandler(m *prometheus.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	return mux
}

// cmdSandbox runs the sandbox NHS receiver alone.
func cmdSandbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sandbox-receiver", stderr)
	cfgPath := fs.String("config", "", "configuration `file`")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	log, err := logging.New(stdout, cfg.Log.Level)
	if err != nil {
		return err
	}
	rc := newSandbox(cfg, log)
	defer rc.Close()
	return listenAndServe(ctx, log, "sandbox-receiver", cfg.Sandbox.Listen, rc.Handler())
}

// serverLimits are the HTTP server's timeouts and header limit: they cut
// off slow senders (slowloris headers, trickled or endless chunked bodies),
// clients that never read, and idle connections, so that no client can hold
// a connection or a goroutine for long. docs/security.md documents them.
type serverLimits struct {
	// ReadHeaderTimeout bounds the request line and headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds the time from the end of the headers to the end
	// of the response.
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a kept-alive connection may wait for its
	// next request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers (431 beyond).
	MaxHeaderBytes int
}

// productionLimits are the limits `gateway serve` runs with. A case record is
// at most limits.maxBodyBytes (256 KiB by default): 30 s to send it allows
// about 9 KB/s, far below any real client's rate.
var productionLimits = serverLimits{
	ReadHeaderTimeout: 5 * time.Second,
	ReadTimeout:       30 * time.Second,
	WriteTimeout:      30 * time.Second,
	IdleTimeout:       120 * time.Second,
	MaxHeaderBytes:    64 << 10,
}

// newHTTPServer builds the http.Server that serves h with the given limits;
// listenAndServe uses it with productionLimits, and the hostile-input tests
// use it with shorter timeouts, so that they prove the production settings.
// The server-wide OPTIONS * answer is off: the API answers every request
// itself.
func newHTTPServer(h http.Handler, log *zap.Logger, lim serverLimits) *http.Server {
	return &http.Server{
		Handler:                      requestDeadline(h, lim.WriteTimeout),
		ReadHeaderTimeout:            lim.ReadHeaderTimeout,
		ReadTimeout:                  lim.ReadTimeout,
		WriteTimeout:                 lim.WriteTimeout,
		IdleTimeout:                  lim.IdleTimeout,
		MaxHeaderBytes:               lim.MaxHeaderBytes,
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     zap.NewStdLog(log),
	}
}

// requestDeadline ends each request's context when the server's write
// timeout does: past it the answer can no longer be sent, so a handler (an
// audit search over a long chain) stops its work rather than run on.
func requestDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// tlsCipherSuites are the TLS 1.2 suites the API offers: ECDHE with an AEAD
// cipher only (AES-GCM, ChaCha20-Poly1305), never CBC, whose MAC-then-encrypt
// construction has a history of padding-oracle attacks. TLS 1.3's suites are
// all AEAD and not configurable.
var tlsCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// serverTLS is the API's TLS configuration: nil without a certificate; with
// a client CA, clients may authenticate by certificate (mTLS), checked
// against that CA and then looked up by fingerprint.
func serverTLS(c config.TLS) (*tls.Config, error) {
	if c.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: tlsCipherSuites, Certificates: []tls.Certificate{cert}}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.clientCAFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.clientCAFile: no PEM certificate in %s", c.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// newSandbox builds the sandbox receiver, posting its response messages to
// the configured callback (the gateway's own $process-message) a second after
// it accepts a message, so the delivery worker has recorded the delivery.
func newSandbox(cfg *config.Config, log *zap.Logger) *sandbox.Receiver {
	return sandbox.NewReceiver(sandbox.Options{
		Logger:        log,
		CallbackURL:   cfg.Sandbox.Callback.URL,
		CallbackToken: cfg.Sandbox.Callback.Token,
		CallbackDelay: time.Second,
		TokenClients:  sandboxTokenClients(cfg, log),
	})
}

// sandboxTokenClients registers with the sandbox's token endpoint the
// public key of every signed JWT transport of the configuration, as an
// application registers its public key with the NHS API platform. The
// sandbox gets the public key alone.
func sandboxTokenClients(cfg *config.Config, log *zap.Logger) []sandbox.TokenClient {
	var out []sandbox.TokenClient
	seen := map[string]bool{}
	for _, s := range cfg.Services {
		j := s.Transport.SignedJWT
		if j == nil || seen[j.ClientID+"|"+j.KeyID+"|"+j.TokenURL] {
			continue
		}
		seen[j.ClientID+"|"+j.KeyID+"|"+j.TokenURL] = true
		pemKey, err := j.KeyPEM()
		var key *rsa.PrivateKey
		if err == nil {
			key, err = delivery.ParseRSAPrivateKey(pemKey)
		}
		if err != nil {
			log.Warn("sandbox: signing key not readable; its client gets no token", zap.String("service", s.ID), zap.Error(err))
			continue
		}
		out = append(out, sandbox.TokenClient{ClientID: j.ClientID, KeyID: j.KeyID, PublicKey: &key.PublicKey, Audience: j.TokenURL})
	}
	return out
}

// listenAndServe serves h on addr with the server's timeouts and limits, and
// shuts down gracefully when ctx ends: in-flight requests get up to 15 s.
func listenAndServe(ctx context.Context, log *zap.Logger, name, addr string, h http.Handler, tlsCfg ...*tls.Config) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if len(tlsCfg) > 0 && tlsCfg[0] != nil {
		ln = tls.NewListener(ln, tlsCfg[0])
	}
	srv := newHTTPServer(h, log.With(zap.String("component", name)), productionLimits)
	log.Info("listening", zap.String("component", name), zap.String("addr", ln.Addr().String()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s: %w", name, err)
	case <-ctx.Done():
	}
	log.Info("shutting down", zap.String("component", name))
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("%s: shutdown: %w", name, err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// credentials turns the configured clients into what the authenticator
// indexes.
func credentials(clients []config.Client) []gwhttp.Credential {
	out := make([]gwhttp.Credential, 0, len(clients))
	for _, c := range clients {
		out = append(out, gwhttp.Credential{
			Client:      gateway.Client{ID: c.ID, Institution: c.Institution, Roles: c.Roles, Services: c.Services, Partnership: c.Partnership},
			TokenSHA256: c.TokenSHA256,
			CertSHA256:  c.CertSHA256,
		})
	}
	return out
}

// server wires the API over a store: Intake, authentication, metrics,
// readiness. Tests build the same server over a temporary store.
func (a *app) server(store gateway.Store, key []byte) (*gwhttp.Server, *prometheus.Metrics) {
	metrics := prometheus.New(func(ctx context.Context) (int, time.Duration, error) {
		st, err := store.QueueStats(ctx)
		if err != nil {
			return 0, 0, err
		}
		depth := st.Counts[gateway.MessagePending] + st.Counts[gateway.MessageLeased]
		var age time.Duration
		if !st.OldestPending.IsZero() {
			age = time.Since(st.OldestPending)
		}
		return depth, age, nil
	})
	a.evaluator.OnInvalidMessage = metrics.ObserveInvalidMessage
	cps, _ := checkpointDir(a.cfg) // serve has refused a configuration where this fails
	// The configuration was checked when loaded, institutions included.
	insts, _ := a.cfg.InstitutionRegistry()
	return &gwhttp.Server{
		Checkpoints:         cps,
		Evaluator:           a.evaluator,
		Intake:              &gateway.Intake{Evaluator: a.evaluator, Store: store, PseudonymKey: key, Institutions: insts},
		ParseResponse:       mappings.ParseResponse,
		Auth:                gwhttp.NewAuthenticator(credentials(a.cfg.Clients), a.cfg.Demo),
		Logger:              a.log,
		Observer:            metrics,
		MaxBodyBytes:        a.cfg.Limits.MaxBodyBytes,
		MaxInFlight:         a.cfg.Limits.MaxInFlight,
		Schema:              gateway.CaseRecordSchema,
		Rules:               a.rules,
		CapabilityStatement: mappings.CapabilityStatement(version),
		Ready:               store.Ping,
		Evaluations:         evaluations(a.cfg, store),
		Replayer:            a.replayer(store),
	}, metrics
}

// deliveryServices are the configured services as the delivery worker
// takes them.
func deliveryServices(cs []config.Service) []delivery.Service {
	out := make([]delivery.Service, len(cs))
	for i, s := range cs {
		out[i] = delivery.Service{Service: s.Service, Transport: deliveryTransport(s.Transport)}
	}
	return out
}

// deliveryTransport is one configured transport as the delivery worker
// takes it.
func deliveryTransport(t config.Transport) delivery.Transport {
	out := delivery.Transport{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile}
	if o := t.OAuth2; o != nil {
		out.OAuth2 = &delivery.OAuth2{TokenURL: o.TokenURL, ClientID: o.ClientID, ClientSecretFile: o.ClientSecretFile, Scopes: o.Scopes}
	}
	if j := t.SignedJWT; j != nil {
		out.SignedJWT = &delivery.SignedJWT{TokenURL: j.TokenURL, ClientID: j.ClientID, KeyID: j.KeyID, PrivateKeyFile: j.PrivateKeyFile}
		if j.PrivateKeyFile == "" {
			// Demo mode without a key file (the configuration allows it
			// nowhere else): the published demo key.
			out.SignedJWT.PrivateKeyPEM = config.DemoJWTKey
		}
	}
	return out
}

// deliverySettings are the configured delivery settings (with their
// defaults) as the delivery worker takes them.
func deliverySettings(d config.Delivery) delivery.Settings {
	d = d.WithDefaults()
	return delivery.Settings{
		Workers: d.Workers, MaxAttempts: d.MaxAttempts, MaxAge: d.MaxAge.D(),
		BaseBackoff: d.BaseBackoff.D(), MaxBackoff: d.MaxBackoff.D(),
		Timeout: d.Timeout.D(), Lease: d.Lease.D(), PollInterval: d.PollInterval.D(),
	}
}
