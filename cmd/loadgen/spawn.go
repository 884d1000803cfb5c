package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/student-mh-referrals/gateway/gateway/config"
)

// Env is a spawned gateway and sandbox receiver, each its own process so
// that the gateway's memory is its own. Their files (configuration, SQLite
// store, logs) are in a temporary directory that Close removes.
type Env struct {
	binary, dir, cfg string
	API              string // http://127.0.0.1:port
	Metrics          string // the gateway's metrics listener, http://127.0.0.1:port
	gw, sbx          *proc
}

// proc is a started process, reaped in the background so that its exit
// is seen at once.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// NewEnv writes the configuration (the example configuration with ports and
// a store of its own) and, with start, starts the sandbox receiver and the
// gateway.
func NewEnv(ctx context.Context, binary string, start bool) (_ *Env, err error) {
	var addrs [3]string // free loopback ports for the API, the sandbox and the metrics
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addrs[i] = ln.Addr().String()
		ln.Close()
	}
	dir, err := os.MkdirTemp("", "loadgen-")
	if err != nil {
		return nil, err
	}
	e := &Env{binary: binary, dir: dir, cfg: filepath.Join(dir, "gateway.yaml"), API: "http://" + addrs[0], Metrics: "http://" + addrs[2]}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	y := strings.NewReplacer("127.0.0.1:8080", addrs[0], "127.0.0.1:8081", addrs[1], "127.0.0.1:9090", addrs[2],
		// A retry after a timed-out attempt comes soon: the backlog
		// scenario freezes the receiver for a while.
		"baseBackoff: 10s", "baseBackoff: 200ms",
		"path: data/gateway.db", "path: "+filepath.Join(dir, "gateway.db"),
	).Replace(string(config.Example))
	if err := os.WriteFile(e.cfg, []byte(y), 0o600); err != nil || !start {
		return e, err
	}
	if e.sbx, _, err = e.start(ctx, "http://"+addrs[1]+"/healthz", "sandbox", "sandbox-receiver"); err != nil {
		return e, err
	}
	_, err = e.StartGateway(ctx)
	return e, err
}

// start starts the gateway binary with args and waits until url answers
// 200, returning how long that took from the start of the process.
func (e *Env) start(ctx context.Context, url, name string, args ...string) (*proc, time.Duration, error) {
	logf, err := os.OpenFile(filepath.Join(e.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, err
	}
	defer logf.Close()
	t0 := time.Now()
	cmd := exec.Command(e.binary, append(args, "--config", e.cfg)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	for time.Since(t0) < 30*time.Second {
		if _, err := get(ctx, hc, url, ""); err == nil {
			return p, time.Since(t0), nil
		}
		select {
		case <-p.done:
			log, _ := os.ReadFile(logf.Name())
			return nil, 0, fmt.Errorf("%s %s exited (%v) before it answered %s; log: %s", e.binary, name, p.err, url, bytes.TrimSpace(log[max(0, len(log)-2000):]))
		case <-ctx.Done():
			return p, 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return p, 0, fmt.Errorf("%s did not answer 200 within 30 s", url)
}

// StartGateway starts `gateway serve` and returns how long it took from the
// start of the process to its first 200 from /readyz.
func (e *Env) StartGateway(ctx context.Context) (d time.Duration, err error) {
	e.gw, d, err = e.start(ctx, e.API+"/readyz", "gateway", "serve")
	return d, err
}

// PeakRSSMB is the gateway's peak resident set so far (VmHWM), in MB.
func (e *Env) PeakRSSMB() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.gw.cmd.Process.Pid))
	_, v, ok := strings.Cut(string(b), "VmHWM:")
	var kb float64
	if err == nil && !ok {
		err = fmt.Errorf("/proc/%d/status has no VmHWM", e.gw.cmd.Process.Pid)
	} else if err == nil {
		_, err = fmt.Sscan(v, &kb)
	}
	return round2(kb / 1024), err
}

// stop ends p with SIGTERM (the gateway drains and stops) and waits; after
// 20 s it is killed. A stopped process stops again at once.
func (p *proc) stop() error {
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT) // a frozen sandbox cannot stop
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// Close stops both processes and removes the directory.
func (e *Env) Close() {
	_, _ = e.gw.stop(), e.sbx.stop()
	_ = os.RemoveAll(e.dir)
}
