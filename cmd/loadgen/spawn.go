package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/student-mh-referrals/gateway/gateway/config"
)

// SpawnOptions say how to start a gateway of our own: which binary, which
// store, and where to keep its files.
type SpawnOptions struct {
	Gateway string // path of the gateway binary
	Driver  string // sqlite or postgres
	// DSN is the PostgreSQL database in which a fresh schema is made for
	// the run (and dropped after it).
	DSN string
	// Dir holds the configuration, the SQLite file and the logs; empty
	// makes a temporary directory that Close removes.
	Dir string
	// PprofListen, when set, is written as debug.pprofListen.
	PprofListen string
	// Config edits the generated configuration (YAML text) before it is
	// written.
	Config func(string) string
}

// Env is a spawned gateway's configuration and processes: the gateway and
// the sandbox receiver, each its own process so that the gateway's memory
// and CPU are its own.
type Env struct {
	opt        SpawnOptions
	dir        string
	tmp        bool
	cfg        string
	API        string // http://127.0.0.1:port
	Sandbox    string
	Metrics    string // the gateway's metrics listener, http://127.0.0.1:port
	gw, sbx    *proc
	dropSchema func()
}

// proc is a started process, reaped in the background so that its exit
// is seen at once.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// freeAddr asks the kernel for a free loopback port.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// NewEnv writes the configuration (the example configuration with its own
// ports and store) without starting anything.
func NewEnv(ctx context.Context, o SpawnOptions) (*Env, error) {
	if o.Gateway == "" {
		return nil, errors.New("--gateway: the gateway binary to spawn is required (make bench builds build/bin/gateway)")
	}
	e := &Env{opt: o, dir: o.Dir}
	if e.dir == "" {
		d, err := os.MkdirTemp("", "loadgen-")
		if err != nil {
			return nil, err
		}
		e.dir, e.tmp = d, true
	} else if err := os.MkdirAll(e.dir, 0o700); err != nil {
		return nil, err
	}
	api, err := freeAddr()
	if err != nil {
		return nil, err
	}
	sbx, err := freeAddr()
	if err != nil {
		return nil, err
	}
	met, err := freeAddr()
	if err != nil {
		return nil, err
	}
	e.API, e.Sandbox, e.Metrics = "http://"+api, "http://"+sbx, "http://"+met
	y := string(config.Example)
	y = strings.ReplaceAll(y, "listen: 127.0.0.1:8080", "listen: "+api)
	y = strings.ReplaceAll(y, "listen: 127.0.0.1:8081", "listen: "+sbx)
	y = strings.ReplaceAll(y, "listen: 127.0.0.1:9090", "listen: "+met)
	y = strings.ReplaceAll(y, "http://127.0.0.1:8081/fhir", "http://"+sbx+"/fhir")
	y = strings.ReplaceAll(y, "http://127.0.0.1:8080/fhir", "http://"+api+"/fhir")
	// A retry after a timed-out attempt comes soon: the drain scenario
	// freezes the receiver for a while.
	y = strings.ReplaceAll(y, "baseBackoff: 10s", "baseBackoff: 200ms")
	switch o.Driver {
	case "sqlite", "":
		y = strings.ReplaceAll(y, "path: data/gateway.db", "path: "+filepath.Join(e.dir, "gateway.db"))
	case "postgres":
		dsn, drop, err := freshSchema(ctx, o.DSN)
		if err != nil {
			return nil, err
		}
		e.dropSchema = drop
		y = strings.ReplaceAll(y, "driver: sqlite\n  path: data/gateway.db", "driver: postgres\n  dsn: \""+dsn+"\"")
	default:
		return nil, fmt.Errorf("--driver %q: use sqlite or postgres", o.Driver)
	}
	if o.PprofListen != "" {
		if err := checkLoopback("http://" + o.PprofListen); err != nil {
			return nil, fmt.Errorf("--pprof: %w", err)
		}
		if !strings.Contains(y, `pprofListen: ""`) {
			return nil, errors.New("--pprof: this gateway's example configuration has no debug.pprofListen")
		}
		y = strings.ReplaceAll(y, `pprofListen: ""`, "pprofListen: "+o.PprofListen)
	}
	if o.Config != nil {
		y = o.Config(y)
	}
	if strings.Contains(y, "127.0.0.1:808") {
		return nil, errors.New("an address of the example configuration survived the rewrite")
	}
	e.cfg = filepath.Join(e.dir, "gateway.yaml")
	if err := os.WriteFile(e.cfg, []byte(y), 0o600); err != nil {
		return nil, err
	}
	return e, nil
}

// pgReachable checks that the database dsn names answers, within 5 s.
func pgReachable(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// freshSchema makes a schema of its own in the database dsn names and
// returns a DSN whose search_path points at it, and how to drop it.
func freshSchema(ctx context.Context, dsn string) (string, func(), error) {
	if dsn == "" {
		return "", nil, errors.New("--dsn: the PostgreSQL database is required with --driver postgres")
	}
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, fmt.Errorf("--dsn: want a postgres:// URL")
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", nil, fmt.Errorf("--dsn: the database must be on this machine (127.0.0.1)")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "loadgen_" + hex.EncodeToString(b)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, dsn)
	if err != nil {
		return "", nil, fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(cctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("postgres: %w", err)
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

func (e *Env) start(name string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(filepath.Join(e.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(e.opt.Gateway, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// StartSandbox starts the sandbox receiver and waits until it answers.
func (e *Env) StartSandbox(ctx context.Context) error {
	cmd, err := e.start("sandbox", "sandbox-receiver", "--config", e.cfg)
	if err != nil {
		return err
	}
	e.sbx = cmd
	_, err = waitFor(ctx, e.Sandbox+"/healthz", cmd, time.Now())
	return err
}

// StartGateway starts `gateway serve` and returns how long it took from the
// start of the process to its first 200 from /readyz.
func (e *Env) StartGateway(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	cmd, err := e.start("gateway", "serve", "--config", e.cfg)
	if err != nil {
		return 0, err
	}
	e.gw = cmd
	d, err := waitFor(ctx, e.API+"/readyz", cmd, t0)
	if err != nil {
		return 0, fmt.Errorf("%w (log: %s)", err, e.logTail("gateway"))
	}
	return d, nil
}

// waitFor polls url every 2 ms until it answers 200, for at most 30 s.
func waitFor(ctx context.Context, url string, p *proc, t0 time.Time) (time.Duration, error) {
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	deadline := t0.Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := hc.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(t0), nil
			}
		}
		select {
		case <-p.done:
			return 0, fmt.Errorf("%s exited (%v) before it answered %s", p.cmd.Path, p.err, url)
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("%s did not answer 200 within 30 s", url)
}

// logTail is the end of a process's log, for error messages.
func (e *Env) logTail(name string) string {
	b, err := os.ReadFile(filepath.Join(e.dir, name+".log"))
	if err != nil {
		return err.Error()
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// FreezeSandbox stops (SIGSTOP) or resumes (SIGCONT) the sandbox process:
// while it is stopped the kernel still accepts connections, so the
// delivery worker's posts wait, unanswered, and the outbox fills.
func (e *Env) FreezeSandbox(freeze bool) error {
	if e.sbx == nil {
		return errors.New("no sandbox running")
	}
	sig := syscall.SIGCONT
	if freeze {
		sig = syscall.SIGSTOP
	}
	return e.sbx.cmd.Process.Signal(sig)
}

// ProcStats are a process's peak memory and CPU time so far.
type ProcStats struct {
	PeakRSSMB float64 // VmHWM
	CPU       time.Duration
}

// GatewayStats reads the gateway's VmHWM (peak resident set) and user+system
// CPU time from /proc.
func (e *Env) GatewayStats() (ProcStats, error) {
	if e.gw == nil {
		return ProcStats{}, errors.New("no gateway running")
	}
	return procStats(e.gw.cmd.Process.Pid)
}

// SandboxStats is GatewayStats for the sandbox receiver.
func (e *Env) SandboxStats() (ProcStats, error) {
	if e.sbx == nil {
		return ProcStats{}, errors.New("no sandbox running")
	}
	return procStats(e.sbx.cmd.Process.Pid)
}

func procStats(pid int) (ProcStats, error) {
	var st ProcStats
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			st.PeakRSSMB = round2(kb / 1024)
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// Fields after the command name (which may hold spaces) start at
	// field 3; utime and stime are fields 14 and 15, in clock ticks.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	fs := strings.Fields(rest)
	if len(fs) > 13 {
		ut, _ := strconv.ParseInt(fs[11], 10, 64)
		stt, _ := strconv.ParseInt(fs[12], 10, 64)
		st.CPU = time.Duration(ut+stt) * (time.Second / 100) // USER_HZ is 100 on Linux
	}
	return st, nil
}

// selfCPU is the load generator's own user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// StopGateway ends the gateway with SIGTERM (it drains and stops) and
// waits; after 20 s it is killed.
func (e *Env) StopGateway() error {
	err := stop(e.gw)
	e.gw = nil
	return err
}

func stop(p *proc) error {
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT) // a frozen sandbox cannot stop
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within 20 s of SIGTERM; killed", p.cmd.Path)
	}
}

// Close stops both processes, drops the PostgreSQL schema and removes a
// temporary directory.
func (e *Env) Close() {
	_ = stop(e.gw)
	_ = stop(e.sbx)
	e.gw, e.sbx = nil, nil
	if e.dropSchema != nil {
		e.dropSchema()
		e.dropSchema = nil
	}
	if e.tmp {
		_ = os.RemoveAll(e.dir)
	}
}

// metric reads one unlabelled gauge or counter from the gateway's /metrics
// (on its metrics listener, base).
func metric(ctx context.Context, hc *http.Client, base, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return 0, fmt.Errorf("/metrics has no %s", name)
}
