package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/student-mh-referrals/gateway/gateway/config"
)

// Env is a spawned gateway's configuration and processes: the gateway and
// the sandbox receiver, each its own process so that the gateway's memory
// is its own. Its files (configuration, SQLite store, logs) are in a
// temporary directory that Close removes.
type Env struct {
	binary  string // the gateway binary
	dir     string
	cfg     string
	API     string // http://127.0.0.1:port
	Sandbox string
	gw, sbx *proc
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
func NewEnv(binary string) (_ *Env, err error) {
	if binary == "" {
		return nil, errors.New("--gateway: the gateway binary to spawn is required (make bench builds build/bin/gateway)")
	}
	d, err := os.MkdirTemp("", "loadgen-")
	if err != nil {
		return nil, err
	}
	e := &Env{binary: binary, dir: d}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	api, err := freeAddr()
	if err != nil {
		return nil, err
	}
	sbx, err := freeAddr()
	if err != nil {
		return nil, err
	}
	e.API, e.Sandbox = "http://"+api, "http://"+sbx
	y := string(config.Example)
	y = strings.ReplaceAll(y, "listen: 127.0.0.1:8080", "listen: "+api)
	y = strings.ReplaceAll(y, "listen: 127.0.0.1:8081", "listen: "+sbx)
	y = strings.ReplaceAll(y, "http://127.0.0.1:8081/fhir", "http://"+sbx+"/fhir")
	y = strings.ReplaceAll(y, "http://127.0.0.1:8080/fhir", "http://"+api+"/fhir")
	// A retry after a timed-out attempt comes soon: the backlog scenario
	// freezes the receiver for a while.
	y = strings.ReplaceAll(y, "baseBackoff: 10s", "baseBackoff: 200ms")
	y = strings.ReplaceAll(y, "path: data/gateway.db", "path: "+filepath.Join(e.dir, "gateway.db"))
	if strings.Contains(y, "127.0.0.1:808") {
		return nil, errors.New("an address of the example configuration survived the rewrite")
	}
	e.cfg = filepath.Join(e.dir, "gateway.yaml")
	if err := os.WriteFile(e.cfg, []byte(y), 0o600); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Env) start(name string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(filepath.Join(e.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(e.binary, args...)
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

// PeakRSSMB is the gateway's peak resident set so far (VmHWM), in MB.
func (e *Env) PeakRSSMB() (float64, error) {
	if e.gw == nil {
		return 0, errors.New("no gateway running")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.gw.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return round2(kb / 1024), err
		}
	}
	return 0, errors.New("/proc/PID/status has no VmHWM")
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

// Close stops both processes and removes the directory.
func (e *Env) Close() {
	_ = stop(e.gw)
	_ = stop(e.sbx)
	e.gw, e.sbx = nil, nil
	_ = os.RemoveAll(e.dir)
}
