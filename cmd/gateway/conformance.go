package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/student-mh-referrals/gateway/conformance"
	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
	"github.com/student-mh-referrals/gateway/gateway/delivery"
)

const conformanceUsage = `usage:
  gateway conformance run [--target URL --token UKPRN=TOKEN ...] [--scenarios DIR] [--run REGEXP]
                          [--junit FILE] [--testreport FILE] [--config FILE]
  gateway conformance receiver [--endpoint URL] [--token TOKEN] [--service ID]
                          [--callback-listen HOST:PORT [--callback-wait D]]
                          [--junit FILE] [--testreport FILE] [--config FILE]
`

// cmdConformance runs the conformance suite (docs/conformance-suite.md):
// the scenarios against a gateway, or the BaRS checks against an NHS
// receiver. It exits 1 when any check fails.
func cmdConformance(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "run" && args[0] != "receiver") {
		fmt.Fprint(stderr, conformanceUsage)
		return &exitStatus{code: exitFailure}
	}
	if args[0] == "run" {
		return conformanceRun(ctx, args[1:], stdout, stderr)
	}
	return conformanceReceiver(ctx, args[1:], stdout, stderr)
}

// tokenFlag collects --token values: UKPRN=TOKEN for one institution, or a
// bare TOKEN for the scenarios of the one institution left without one.
type tokenFlag struct {
	def    string
	byInst map[string]string
}

func (f *tokenFlag) String() string { return "" }

func (f *tokenFlag) Set(v string) error {
	if inst, tok, ok := strings.Cut(v, "="); ok && gateway.ValidUKPRN(inst) {
		if f.byInst == nil {
			f.byInst = map[string]string{}
		}
		f.byInst[inst] = tok
		return nil
	}
	f.def = v
	return nil
}

func (f *tokenFlag) given() bool { return f.def != "" || len(f.byInst) > 0 }

// check refuses a bare TOKEN that would serve scenarios of several
// institutions: a submitter client belongs to one institution, so the
// token would be refused for every other one's scenarios.
func (f *tokenFlag) check(scenarios []conformance.Scenario) error {
	if f.def == "" {
		return nil
	}
	var insts []string
	for _, s := range scenarios {
		if _, ok := f.byInst[s.Institution]; !ok {
			insts = append(insts, s.Institution)
		}
	}
	slices.Sort(insts)
	if insts = slices.Compact(insts); len(insts) < 2 {
		return nil
	}
	return fmt.Errorf("--token TOKEN: a submitter's token belongs to one institution, and the scenarios it would serve are of %d institutions (%s); "+
		"give --token UKPRN=TOKEN for each institution (one without a token has its scenarios skipped), or narrow the scenarios to one institution with --run",
		len(insts), strings.Join(insts, ", "))
}

// lookup is the token of an institution's client, if one was given.
func (f *tokenFlag) lookup(inst string) (string, bool) {
	if t, ok := f.byInst[inst]; ok {
		return t, true
	}
	return f.def, f.def != ""
}

// reportFlags are the outputs both subcommands write.
type reportFlags struct {
	junit, testReport, scenarios string
}

func (r *reportFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.junit, "junit", "", "write JUnit XML to `file`")
	fs.StringVar(&r.testReport, "testreport", "", "write a FHIR R4 TestReport (JSON) to `file`")
	fs.StringVar(&r.scenarios, "scenarios", "", "read scenario files from `dir` (default: the scenarios built into the binary)")
}

func (r *reportFlags) load() ([]conformance.Scenario, error) {
	if r.scenarios == "" {
		return conformance.Builtin()
	}
	return conformance.LoadDir(r.scenarios)
}

// write writes the report files and returns the exit status.
func (r *reportFlags) write(rep *conformance.Report, stdout io.Writer) error {
	fmt.Fprintln(stdout, rep.Summary())
	if r.junit != "" {
		if err := writeFile(r.junit, rep.WriteJUnit); err != nil {
			return err
		}
	}
	if r.testReport != "" {
		if err := writeFile(r.testReport, rep.WriteTestReport); err != nil {
			return err
		}
	}
	if !rep.OK() {
		return &exitStatus{code: exitFailure}
	}
	return nil
}

func writeFile(name string, write func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	return f.Close()
}

// isTerminal reports whether w is a terminal, where progress lines get ✓
// and ✗ instead of PASS and FAIL.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func conformanceRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("conformance run", stderr)
	target := fs.String("target", "", "base `URL` of a running gateway (default: an in-process gateway with the configuration and a temporary store)")
	var tokens tokenFlag
	fs.Var(&tokens, "token", "bearer `token` of a submitter client, as UKPRN=TOKEN (repeat it for each institution; scenarios of an institution without a token are skipped), or bare when the scenarios are all of one institution (with --target)")
	cfgPath := fs.String("config", "", "configuration `file` of the in-process gateway (default: the embedded gateway.example.yaml)")
	only := fs.String("run", "", "run only the scenarios whose name matches `regexp`")
	timeout := fs.Duration("timeout", 30*time.Second, "time limit of each request")
	var out reportFlags
	out.register(fs)
	if err := parseNoArgs(fs, args, conformanceUsage, stderr); err != nil {
		return err
	}
	switch {
	case *target != "" && !tokens.given():
		return &exitStatus{code: exitFailure, err: fmt.Errorf("--target needs --token: a submitter token for every institution, or UKPRN=TOKEN for each")}
	case *target == "" && tokens.given():
		return &exitStatus{code: exitFailure, err: fmt.Errorf("--token goes with --target: the in-process gateway registers a client for each institution itself")}
	case *target != "" && *cfgPath != "":
		return &exitStatus{code: exitFailure, err: fmt.Errorf("--config configures the in-process gateway; with --target the running gateway has its own")}
	}
	scenarios, err := out.load()
	if err != nil {
		return err
	}
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			return &exitStatus{code: exitFailure, err: fmt.Errorf("--run: %w", err)}
		}
		scenarios = slices.DeleteFunc(scenarios, func(s conformance.Scenario) bool { return !re.MatchString(s.Name) })
		if len(scenarios) == 0 {
			return &exitStatus{code: exitFailure, err: fmt.Errorf("--run %q matches no scenario", *only)}
		}
	}
	if err := tokens.check(scenarios); err != nil {
		return &exitStatus{code: exitFailure, err: err}
	}
	t := conformance.Target{URL: *target, Client: &http.Client{Timeout: *timeout}, Token: tokens.lookup}
	if *target == "" {
		h, lookup, cleanup, err := inProcessGateway(ctx, *cfgPath, scenarios)
		if err != nil {
			return err
		}
		defer cleanup()
		t = conformance.Target{Handler: h, Token: lookup}
	}
	p := conformance.Printer{W: stdout, TTY: isTerminal(stdout)}
	rep := conformance.Run(ctx, scenarios, t, conformance.Options{Progress: p.Case})
	return out.write(rep, stdout)
}

// inProcessGateway serves the API as `gateway serve` does, over a
// temporary SQLite store, with a submitter client (and a random token) for
// each institution of the scenarios: $evaluate answers a client only for
// its own institution.
func inProcessGateway(ctx context.Context, cfgPath string, scenarios []conformance.Scenario) (http.Handler, func(string) (string, bool), func(), error) {
	a, err := newApp(ctx, cfgPath, io.Discard, "error")
	if err != nil {
		return nil, nil, nil, err
	}
	dir, err := os.MkdirTemp("", "gateway-conformance-")
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := openStore(ctx, config.Store{Driver: "sqlite", Path: filepath.Join(dir, "gateway.db")})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	cleanup := func() { store.Close(); os.RemoveAll(dir) }
	tokens := map[string]string{}
	for _, s := range scenarios {
		if _, ok := tokens[s.Institution]; ok {
			continue
		}
		tok := randomHex(32)
		tokens[s.Institution] = tok
		sum := sha256.Sum256([]byte(tok))
		a.cfg.Clients = append(a.cfg.Clients, config.Client{
			ID: "conformance-" + s.Institution, Institution: s.Institution,
			Roles: []string{gateway.RoleSubmitter}, TokenSHA256: hex.EncodeToString(sum[:]),
		})
	}
	// The store is thrown away: its decision records need no lasting key.
	api, _ := a.server(store, []byte(randomHex(32)))
	lookup := func(inst string) (string, bool) { t, ok := tokens[inst]; return t, ok }
	return api.Handler(), lookup, cleanup, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

func conformanceReceiver(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("conformance receiver", stderr)
	endpoint := fs.String("endpoint", "", "FHIR base `URL` of the receiver (messages go to URL/$process-message; default: the service's configured endpoint)")
	token := fs.String("token", "", "bearer `token` to send instead of the one the service's transport gets (oauth2 or signedJWT)")
	service := fs.String("service", "", "registry `id` of the service whose target identifier the message names (default: the first service)")
	cfgPath := fs.String("config", "", "configuration `file` (default: the embedded gateway.example.yaml)")
	timeout := fs.Duration("timeout", 30*time.Second, "time limit of each request")
	callbackListen := fs.String("callback-listen", "", "also check the receiver's response messages: listen on `host:port` for them "+
		"(configure the receiver to post its responses to http://host:port/fhir/$process-message)")
	callbackWait := fs.Duration("callback-wait", 30*time.Second, "how long to wait for the response message")
	var out reportFlags
	out.register(fs)
	if err := parseNoArgs(fs, args, conformanceUsage, stderr); err != nil {
		return err
	}
	a, err := newApp(ctx, *cfgPath, io.Discard, "error")
	if err != nil {
		return err
	}
	if *service == "" {
		*service = a.evaluator.Registry.IDs()[0]
	}
	svc, ok := a.evaluator.Registry.Lookup(*service)
	if !ok {
		return &exitStatus{code: exitFailure, err: fmt.Errorf("--service %q is not in the registry; use one of: %s", *service, strings.Join(a.evaluator.Registry.IDs(), ", "))}
	}
	if *endpoint == "" {
		*endpoint = svc.Endpoint
	}
	scenarios, err := out.load()
	if err != nil {
		return err
	}
	msg, err := conformance.ExampleMessage(ctx, a.evaluator, scenarios, svc.ID)
	if err != nil {
		return err
	}
	tr := deliveryTransport(a.cfg.Transports()[svc.ID])
	if *token != "" {
		// A token given is the one sent: the configured token endpoint
		// may belong to another environment than --endpoint.
		tr.OAuth2, tr.SignedJWT = nil, nil
	}
	client, err := delivery.NewClient(tr, *timeout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "message: scenario %s, addressed to %s (%s|%s)\n", msg.Scenario, svc.ID, svc.Target.System, svc.Target.Value)
	rc := conformance.Receiver{Endpoint: *endpoint, Token: *token, Client: client, Message: msg, CallbackWait: *callbackWait}
	if *callbackListen != "" {
		stop, err := listenCallbacks(ctx, *callbackListen, &rc, stdout)
		if err != nil {
			return err
		}
		defer stop()
	}
	p := conformance.Printer{W: stdout, TTY: isTerminal(stdout)}
	rep := conformance.CheckReceiver(ctx, rc, conformance.Options{Progress: p.Case})
	return out.write(rep, stdout)
}

// listenCallbacks serves the receiver's response messages on addr for the
// run, collected into rc.Callbacks; stop shuts the listener.
func listenCallbacks(ctx context.Context, addr string, rc *conformance.Receiver, stdout io.Writer) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &exitStatus{code: exitFailure, err: fmt.Errorf("--callback-listen: %w", err)}
	}
	rc.Callbacks = conformance.NewCallbacks()
	srv := &http.Server{Handler: rc.Callbacks.Handler(), ReadHeaderTimeout: 5 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() { _ = srv.Serve(ln) }()
	fmt.Fprintf(stdout, "response messages: listening on http://%s/fhir/$process-message\n", ln.Addr())
	return func() { _ = srv.Close() }, nil
}
