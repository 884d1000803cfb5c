package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway/config"
)

// buildBinary builds the gateway command once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gateway")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// processConfig writes a configuration for gateway processes: the example
// with its own ports, a store in dir, and every service pointed at the
// sandbox.
func processConfig(t *testing.T, dir string, store config.Store) (path, api, sandbox string) {
	t.Helper()
	api, sandbox = freePort(t), freePort(t)
	y := string(config.Example)
	y = strings.ReplaceAll(y, "listen: 127.0.0.1:8080", "listen: "+api)
	y = strings.ReplaceAll(y, "listen: 127.0.0.1:8081", "listen: "+sandbox)
	y = strings.ReplaceAll(y, "listen: 127.0.0.1:9090", "listen: "+freePort(t))
	y = strings.ReplaceAll(y, "http://127.0.0.1:8081/", "http://"+sandbox+"/") // the FHIR base and the token endpoint
	y = strings.ReplaceAll(y, "http://127.0.0.1:8080/fhir", "http://"+api+"/fhir")
	if store.Driver == "postgres" {
		y = strings.ReplaceAll(y, "driver: sqlite\n  path: data/gateway.db", "driver: postgres\n  dsn: \""+store.DSN+"\"")
	} else {
		y = strings.ReplaceAll(y, "path: data/gateway.db", "path: "+store.Path)
	}
	y = strings.ReplaceAll(y, "pollInterval: 2s", "pollInterval: 100ms")
	y = strings.ReplaceAll(y, "baseBackoff: 10s", "baseBackoff: 200ms")
	// A message leased by a killed process is claimable again when its
	// lease runs out: a short lease (longer than the post timeout) keeps
	// the crash test's recovery within seconds.
	y = strings.ReplaceAll(y, "timeout: 30s\n  lease: 2m", "timeout: 2s\n  lease: 4s")
	if !strings.Contains(y, "lease: 4s") {
		t.Fatalf("the lease of the example survived the rewrite")
	}
	if strings.Contains(y, "127.0.0.1:808") {
		t.Fatalf("an address of the example survived the rewrite")
	}
	path = filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, api, sandbox
}

// startProcess runs the binary and waits until addr answers /healthz.
func startProcess(t *testing.T, bin, addr string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	up := eventually(20*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	if !up {
		t.Fatalf("%v did not come up on %s", args, addr)
	}
	return cmd
}

// caseWithID is the Liverpool example under another case id.
func caseWithID(t *testing.T, id string) []byte {
	return bytes.Replace(readCase(t, "allow-liverpool-u-cope"), []byte("UOL-SS-2026-04417"), []byte(id), 1)
}

// stream posts referrals to a gateway from several goroutines until it is
// stopped or the gateway stops answering, counting the 202s as they come.
type stream struct {
	stop     chan struct{}
	done     chan []string
	accepted atomic.Int64
}

// startStream starts workers goroutines posting referrals to api.
func startStream(t *testing.T, api, prefix string, workers int) *stream {
	s := &stream{stop: make(chan struct{}), done: make(chan []string, 1)}
	go func() { s.done <- s.submit(t, api, prefix, workers) }()
	return s
}

// waitAccepted waits until the gateway has accepted at least n referrals,
// failing the test if that takes more than 30 s.
func (s *stream) waitAccepted(t *testing.T, n int64) {
	t.Helper()
	if !eventually(30*time.Second, func() bool { return s.accepted.Load() >= n }) {
		t.Fatalf("only %d referrals accepted in 30 s, %d wanted", s.accepted.Load(), n)
	}
}

// end stops the stream and returns the ids that got a 202.
func (s *stream) end() []string {
	close(s.stop)
	return <-s.done
}

func (s *stream) submit(t *testing.T, api, prefix string, workers int) []string {
	var mu sync.Mutex
	var accepted []string
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-s.stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", "http://"+api+"/v1/referrals", bytes.NewReader(caseWithID(t, fmt.Sprintf("%s-%d-%05d", prefix, w, i))))
				req.Header.Set("Authorization", "Bearer "+liverpool)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					return // the gateway is gone
				}
				var ans struct{ ID string }
				derr := json.NewDecoder(resp.Body).Decode(&ans)
				resp.Body.Close()
				// A 202 counts once its answer arrived whole: the kill can
				// cut the body after the status line, and then the client
				// has no referral id, as when the connection drops before
				// any answer.
				if resp.StatusCode == http.StatusAccepted && derr == nil && ans.ID != "" {
					mu.Lock()
					accepted = append(accepted, ans.ID)
					mu.Unlock()
					s.accepted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return accepted
}

// eventually polls cond every 50 ms until it holds (true) or timeout
// passes (false).
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// delivered reports whether every referral of ids is delivered (or
// accepted by the service), keeping in *pending those that are not yet.
func delivered(t *testing.T, api string, pending *[]string) bool {
	var still []string
	for _, id := range *pending {
		switch referralStatus(t, api, id) {
		case "delivered", "accepted":
		default:
			still = append(still, id)
		}
	}
	*pending = still
	return len(still) == 0
}

func referralStatus(t *testing.T, api, id string) string {
	req, _ := http.NewRequest("GET", "http://"+api+"/v1/referrals/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+liverpool)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "unreachable"
	}
	defer resp.Body.Close()
	var v struct{ Status string }
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return v.Status
}

// TestCrashSafety kills the gateway with SIGKILL in the middle of a stream
// of referrals, restarts it, and proves that every referral that got a 202
// is delivered, and that the receiver (a separate process that lives through
// the crash) processed each X-Request-Id once.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes; skipped with -short")
	}
	bin := buildBinary(t)
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) { testCrashSafety(t, bin, driver) })
	}
}

func testCrashSafety(t *testing.T, bin, driver string) {
	dir := t.TempDir()
	cfg, api, sbx := processConfig(t, dir, testStore(t, driver))
	startProcess(t, bin, sbx, "sandbox-receiver", "--config", cfg)
	gw := startProcess(t, bin, api, "serve", "--config", cfg)

	// The kill comes while referrals are being posted and delivered, once
	// enough are in for the test to prove something.
	st := startStream(t, api, "CRASH", 4)
	st.waitAccepted(t, 50)
	if !eventually(30*time.Second, func() bool { return len(receivedOnce(t, sbx)) > 0 }) {
		t.Fatal("the receiver got nothing in 30 s")
	}
	if err := gw.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = gw.Process.Wait()
	accepted := st.end()

	startProcess(t, bin, api, "serve", "--config", cfg)
	pending := accepted
	if !eventually(90*time.Second, func() bool { return delivered(t, api, &pending) }) {
		t.Fatalf("%d of %d accepted referrals were not delivered after the restart, e.g. %s is %s",
			len(pending), len(accepted), pending[0], referralStatus(t, api, pending[0]))
	}

	seen := receivedOnce(t, sbx)
	// Requests in flight at the kill may have been committed without their
	// 202 reaching us: the receiver may hold a few more than we counted,
	// never fewer.
	if len(seen) < len(accepted) {
		t.Fatalf("the receiver processed %d messages for %d accepted referrals", len(seen), len(accepted))
	}
	t.Logf("%d referrals accepted before SIGKILL, all delivered after restart; receiver processed %d distinct request ids", len(accepted), len(seen))
}

// TestGracefulStop sends SIGTERM while referrals are being posted: requests
// in flight finish with their answer, and the process exits cleanly.
func TestGracefulStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes; skipped with -short")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg, api, _ := processConfig(t, dir, testStore(t, "sqlite"))
	gw := startProcess(t, bin, api, "serve", "--sandbox", "--config", cfg)
	st := startStream(t, api, "TERM", 4)
	st.waitAccepted(t, 20)
	if err := gw.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- gw.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("gateway exited with %v after SIGTERM", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("gateway did not stop within 20 s of SIGTERM")
	}
	accepted := st.end()
	// Every 202 the clients saw is in the store: restart and read them back.
	startProcess(t, bin, api, "serve", "--config", cfg)
	for _, id := range accepted {
		if s := referralStatus(t, api, id); s == "" || s == "unreachable" {
			t.Fatalf("referral %s, accepted before SIGTERM, is missing after restart", id)
		}
	}
}

// TestTwoGatewaysOnePostgres runs two gateway processes on one PostgreSQL
// database: referrals posted to both are delivered, each message once (the
// queue's row leases with SKIP LOCKED), to a receiver that counts what it
// processed.
func TestTwoGatewaysOnePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes; skipped with -short")
	}
	store := testStore(t, "postgres")
	bin := buildBinary(t)
	dir := t.TempDir()
	cfgA, apiA, sbx := processConfig(t, dir, store)
	startProcess(t, bin, sbx, "sandbox-receiver", "--config", cfgA)
	startProcess(t, bin, apiA, "serve", "--config", cfgA)
	// The second process: same database and receiver, its own API port.
	apiB := freePort(t)
	b, err := os.ReadFile(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	cfgB := filepath.Join(dir, "gateway-b.yaml")
	b = bytes.Replace(b, []byte("listen: "+apiA), []byte("listen: "+apiB), 1)
	// and its own metrics listener
	b = regexp.MustCompile(`(?m)^(metrics:\n\s+listen: )\S+`).ReplaceAll(b, []byte("${1}"+freePort(t)))
	if err := os.WriteFile(cfgB, b, 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, bin, apiB, "serve", "--config", cfgB)

	var streams []*stream
	for _, api := range []string{apiA, apiB} {
		streams = append(streams, startStream(t, api, "TWO-"+api[strings.LastIndex(api, ":")+1:], 2))
	}
	var accepted []string
	for _, st := range streams {
		st.waitAccepted(t, 20)
	}
	for _, st := range streams {
		accepted = append(accepted, st.end()...)
	}
	pending := accepted
	if !eventually(60*time.Second, func() bool { return delivered(t, apiA, &pending) }) {
		t.Fatalf("%d of %d referrals were not delivered, e.g. %s is %s", len(pending), len(accepted), pending[0], referralStatus(t, apiA, pending[0]))
	}
	seen := receivedOnce(t, sbx)
	if len(seen) != len(accepted) {
		t.Fatalf("the receiver processed %d messages for %d accepted referrals", len(seen), len(accepted))
	}
	t.Logf("two gateways on one PostgreSQL: %d referrals, each delivered once", len(accepted))
}

// receivedOnce reads what the sandbox receiver at addr processed and fails
// the test if it processed any X-Request-Id twice; it returns the ids.
func receivedOnce(t *testing.T, addr string) map[string]bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/sandbox/messages")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct{ Messages []struct{ RequestID string } }
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range got.Messages {
		if seen[m.RequestID] {
			t.Fatalf("the receiver processed request %s twice", m.RequestID)
		}
		seen[m.RequestID] = true
	}
	return seen
}
