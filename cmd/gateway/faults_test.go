package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
	"github.com/student-mh-referrals/gateway/gateway/delivery"
	"github.com/student-mh-referrals/gateway/gateway/postgres/pgtest"
	"github.com/student-mh-referrals/gateway/gateway/sqlite"
	"github.com/student-mh-referrals/gateway/sandbox"
)

// The fault tests run the fully wired API (as apiServerOn does) over a store
// that the test breaks: PostgreSQL behind a TCP proxy that the test takes
// down, or that cuts a connection at its COMMIT; SQLite with a capped page
// count, or on a small filesystem that the test fills. docs/faults.md lists
// them.

// liverpoolUKPRN is the institution of the Liverpool example case.
const liverpoolUKPRN = "10006842"

// unavailableText is what a client is told when the store is down, and
// readyzText what /readyz says then.
const (
	unavailableText = "the store is unavailable; try again shortly"
	readyzText      = "the gateway is not ready (store or policies unavailable); try again shortly"
)

// tcpProxy forwards connections from its address to a target: the test's
// stand-in for the network between the gateway and PostgreSQL.
type tcpProxy struct {
	t      *testing.T
	addr   string // the same across down and up
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	// cut, when set, is what the next client message to cut at starts
	// with; loseAnswer forwards that message and loses the answer instead
	// of dropping it.
	cut        []byte
	loseAnswer bool
	cuts       int
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{t: t, addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]bool{}}
	go p.serve(ln)
	t.Cleanup(p.down)
	return p
}

// down stops accepting and cuts every open connection, as a database that
// crashed or a network that failed would.
func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// up listens again on the same address.
func (p *tcpProxy) up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Errorf("proxy up: %v", err)
		return
	}
	p.ln = ln
	go p.serve(ln)
}

// cutAtCommit arms the proxy: the next COMMIT a client sends cuts its
// connection, before the server sees it or, with loseAnswer, after the
// server has it but before its answer reaches the client.
func (p *tcpProxy) cutAtCommit(loseAnswer bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// pgx sends COMMIT as a simple query: 'Q', its length, the text.
	p.cut = append([]byte{'Q', 0, 0, 0, 11}, "commit\x00"...)
	p.loseAnswer = loseAnswer
}

// cutsDone is how many armed cuts have happened.
func (p *tcpProxy) cutsDone() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

func (p *tcpProxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.ln != ln { // went down meanwhile
			p.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		p.conns[c], p.conns[s] = true, true
		p.mu.Unlock()
		var mute sync.Once
		muted := make(chan struct{})
		go p.pump(c, s, func(b []byte) bool { // client to server
			p.mu.Lock()
			hit := p.cut != nil && bytes.HasPrefix(b, p.cut)
			lose := p.loseAnswer
			if hit {
				p.cut = nil
				p.cuts++
			}
			p.mu.Unlock()
			if !hit {
				return true
			}
			if lose {
				// Forward it; the other pump cuts at the answer.
				mute.Do(func() { close(muted) })
				return true
			}
			return false // the pump closes both sides
		})
		go p.pump(s, c, func([]byte) bool { // server to client
			select {
			case <-muted:
				// The server has answered, so the commit is done; the
				// client never learns it.
				return false
			default:
				return true
			}
		})
	}
}

// pump copies from src to dst while forward says so, and closes both when
// either side ends.
func (p *tcpProxy) pump(src, dst net.Conn, forward func([]byte) bool) {
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !forward(buf[:n]) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// proxiedPostgres is a fresh PostgreSQL schema reached directly (dsn) and
// through a proxy the test controls (proxied).
func proxiedPostgres(t *testing.T) (dsn, proxied string, p *tcpProxy) {
	t.Helper()
	dsn = pgtest.FreshSchema(t)
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Fatalf("%s must be a postgres:// URL for the proxy tests", pgtest.DSNEnv)
	}
	p = newTCPProxy(t, u.Host)
	u.Host = p.addr
	return dsn, u.String(), p
}

// faultAPI is the fully wired API over store, as apiServerOn builds it, with
// its log kept for the test.
func faultAPI(t *testing.T, store gateway.Store) (*httptest.Server, *app, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	a, err := newApp(context.Background(), "", logs, "warn")
	if err != nil {
		t.Fatal(err)
	}
	key, err := a.cfg.PseudonymKey()
	if err != nil {
		t.Fatal(err)
	}
	api, _ := a.server(store, key)
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return srv, a, logs
}

// boundedClient fails a request that hangs instead of answering.
var boundedClient = &http.Client{Timeout: 20 * time.Second}

// postCase submits the Liverpool case under caseID; a hang is a failure.
func postCase(t *testing.T, srv *httptest.Server, caseID string) apiAnswer {
	t.Helper()
	return boundedCall(t, srv, "POST", "/v1/referrals", caseWithID(t, caseID))
}

func boundedCall(t *testing.T, srv *httptest.Server, method, path string, body []byte) apiAnswer {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+liverpool)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := boundedClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s did not answer: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("%s %s took %s to answer", method, path, d)
	}
	return apiAnswer{resp.StatusCode, resp.Header, b}
}

// assertUnavailable checks a 503 OperationOutcome that tells the client to
// try again (saying says) and nothing of the cause.
func assertUnavailable(t *testing.T, a apiAnswer, says, notes string) {
	t.Helper()
	if a.status != http.StatusServiceUnavailable {
		t.Fatalf("%s: status %d, want 503: %s", notes, a.status, a.body)
	}
	var oo struct {
		ResourceType string
		Issue        []struct{ Code, Diagnostics string }
	}
	if err := json.Unmarshal(a.body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 || oo.Issue[0].Code != "transient" ||
		oo.Issue[0].Diagnostics != says {
		t.Fatalf("%s: not a transient OperationOutcome saying %q: %s", notes, says, a.body)
	}
	for _, leak := range []string{"127.0.0.1", "postgres", "sqlite", "SQLITE", "refused", "EOF", "disk", "full"} {
		if bytes.Contains(a.body, []byte(leak)) {
			t.Errorf("%s: the answer echoes the cause (%q): %s", notes, leak, a.body)
		}
	}
}

// assertCauseLogged checks that the API logged a 503's cause (which must
// mention has) for the operator.
func assertCauseLogged(t *testing.T, logs *syncBuffer, has string) {
	t.Helper()
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"unavailable"`) && strings.Contains(line, `"error":`) && strings.Contains(line, has) {
			return
		}
	}
	t.Errorf("no log line gives the cause of the 503 (mentioning %q):\n%s", has, logs.String())
}

// holding is what a store holds of one case.
type holding struct {
	versions, decisions, messages int
	referralID                    string
}

var allStates = []gateway.MessageState{gateway.MessagePending, gateway.MessageLeased, gateway.MessageDelivered,
	gateway.MessageFailed, gateway.MessageDead, gateway.MessageDropped}

func holdingOf(t *testing.T, store gateway.Store, caseID string) holding {
	t.Helper()
	ctx := context.Background()
	var h holding
	ref, err := store.LatestReferral(ctx, liverpoolUKPRN, caseID)
	switch gateway.ErrorCode(err) {
	case "":
		h.versions, h.referralID = ref.Version, ref.ID
	case gateway.ENOTFOUND:
	default:
		t.Fatal(err)
	}
	for _, e := range decisionEntries(t, store) {
		if e.CaseID == caseID {
			h.decisions++
		}
	}
	for _, m := range allMessages(t, store) {
		if m.CaseID == caseID {
			h.messages++
		}
	}
	return h
}

func decisionEntries(t *testing.T, store gateway.Store) []gateway.DecisionEntry {
	t.Helper()
	var out []gateway.DecisionEntry
	for after := int64(0); ; {
		recs, err := store.Decisions(context.Background(), liverpoolUKPRN, after, 500)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			var e gateway.DecisionEntry
			if err := json.Unmarshal(r.Body, &e); err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
			after = r.Seq
		}
		if len(recs) < 500 {
			return out
		}
	}
}

func allMessages(t *testing.T, store gateway.Store) []gateway.OutboxMessage {
	t.Helper()
	var out []gateway.OutboxMessage
	for _, s := range allStates {
		ms, err := store.Messages(context.Background(), s, 100000)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ms...)
	}
	return out
}

// assertWhole checks that the store holds nothing half-written: the
// decision chain verifies with one record per decision, every allow
// decision has its referral, and every message its referral.
func assertWhole(t *testing.T, store gateway.Store, decisions int) {
	t.Helper()
	ctx := context.Background()
	v, err := store.Verify(ctx, liverpoolUKPRN)
	if err != nil || !v.OK || v.Records != int64(decisions) {
		t.Fatalf("decision chain %+v, %v; want it intact with %d records", v, err, decisions)
	}
	for _, e := range decisionEntries(t, store) {
		if e.Allow && !e.DryRun {
			if _, err := store.Referral(ctx, liverpoolUKPRN, e.ReferralID); err != nil {
				t.Errorf("decision %s has no referral %s: %v", e.DecisionID, e.ReferralID, err)
			}
		}
	}
	for _, m := range allMessages(t, store) {
		if _, err := store.Referral(ctx, m.Institution, m.ReferralID); err != nil {
			t.Errorf("message %s has no referral %s: %v", m.ID, m.ReferralID, err)
		}
	}
}

func assertHolding(t *testing.T, store gateway.Store, caseID string, want holding) holding {
	t.Helper()
	got := holdingOf(t, store, caseID)
	want.referralID = got.referralID
	if got != want {
		t.Fatalf("the store holds %d versions, %d decision records and %d messages of %s; want %d, %d, %d",
			got.versions, got.decisions, got.messages, caseID, want.versions, want.decisions, want.messages)
	}
	return got
}

// heldNothing and heldOnce are a case the store holds nothing of, and one
// accepted once: one version, one decision record, one message.
var (
	heldNothing = holding{}
	heldOnce    = holding{versions: 1, decisions: 1, messages: 1}
)

// waitReady polls /readyz until it answers 200.
func waitReady(t *testing.T, srv *httptest.Server) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if boundedCall(t, srv, "GET", "/readyz", nil).status == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not answer 200 within 15 s of the store coming back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPostgresDownAtAcceptance: with PostgreSQL unreachable, or its
// connection cut in the middle of an accept, POST /v1/referrals answers 503
// with an OperationOutcome (never 500, never a hang) and writes nothing; once
// the database is back the same POST is accepted, once.
func TestPostgresDownAtAcceptance(t *testing.T) {
	dsn, proxied, proxy := proxiedPostgres(t)
	ctx := context.Background()
	store, err := openStore(ctx, config.Store{Driver: "postgres", DSN: proxied})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	direct, err := openStore(ctx, config.Store{Driver: "postgres", DSN: dsn}) // the test's own view, around the proxy
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	srv, _, logs := faultAPI(t, store)

	if a := postCase(t, srv, "FAULT-BEFORE"); a.status != http.StatusAccepted {
		t.Fatalf("accept with the database up: %d %s", a.status, a.body)
	}
	decisions := 1

	t.Run("database unreachable", func(t *testing.T) {
		proxy.down()
		defer proxy.up() // for the next subtests, should this one fail
		assertUnavailable(t, postCase(t, srv, "FAULT-DOWN"), unavailableText, "POST while the database is down")
		assertUnavailable(t, boundedCall(t, srv, "GET", "/readyz", nil), readyzText, "/readyz while the database is down")
		assertCauseLogged(t, logs, "")
		assertHolding(t, direct, "FAULT-DOWN", heldNothing)
		proxy.up()
		waitReady(t, srv)
		if a := postCase(t, srv, "FAULT-DOWN"); a.status != http.StatusAccepted {
			t.Fatalf("the same POST once the database is back: %d %s", a.status, a.body)
		}
		decisions++
		assertHolding(t, direct, "FAULT-DOWN", heldOnce)
		assertWhole(t, direct, decisions)
	})

	t.Run("connection cut before COMMIT", func(t *testing.T) {
		proxy.cutAtCommit(false)
		assertUnavailable(t, postCase(t, srv, "FAULT-CUT"), unavailableText, "POST whose connection was cut")
		if proxy.cutsDone() != 1 {
			t.Fatal("the accept never reached its COMMIT")
		}
		// The server rolled the transaction back: no referral, no
		// decision record, no message.
		assertHolding(t, direct, "FAULT-CUT", heldNothing)
		assertWhole(t, direct, decisions)
		if a := postCase(t, srv, "FAULT-CUT"); a.status != http.StatusAccepted {
			t.Fatalf("the same POST again: %d %s", a.status, a.body)
		}
		decisions++
		assertHolding(t, direct, "FAULT-CUT", heldOnce)
		assertWhole(t, direct, decisions)
	})

	t.Run("answer to COMMIT lost", func(t *testing.T) {
		// The accept committed but the gateway cannot know: it answers
		// 503, and the client's retry finds the referral by its
		// idempotency key instead of writing it twice.
		proxy.cutAtCommit(true)
		assertUnavailable(t, postCase(t, srv, "FAULT-LOST"), unavailableText, "POST whose COMMIT answer was lost")
		if proxy.cutsDone() != 2 {
			t.Fatal("the accept never reached its COMMIT")
		}
		decisions++
		stored := assertHolding(t, direct, "FAULT-LOST", heldOnce)
		a := postCase(t, srv, "FAULT-LOST")
		if a.status != http.StatusOK || a.json(t)["id"] != stored.referralID {
			t.Fatalf("the retry: %d %s; want 200 with referral %s", a.status, a.body, stored.referralID)
		}
		assertHolding(t, direct, "FAULT-LOST", heldOnce)
		assertWhole(t, direct, decisions)
	})
}

// faultReceiver is the sandbox receiver behind an httptest server;
// onFirstPost, when set, runs once, at the first post.
func faultReceiver(t *testing.T, onFirstPost func()) (*sandbox.Receiver, *httptest.Server) {
	t.Helper()
	rc := sandbox.NewReceiver(sandbox.Options{})
	t.Cleanup(rc.Close)
	h := rc.Handler()
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if onFirstPost != nil && r.Method == http.MethodPost {
			once.Do(onFirstPost)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return rc, srv
}

// deliverAll runs a delivery worker over store (as `gateway serve` does,
// with fast settings) until every message of the given cases is delivered,
// then checks that the receiver processed each X-Request-Id once, from one
// post. during, when set, runs once the worker has started. It returns the
// worker's log.
func deliverAll(t *testing.T, a *app, store, view gateway.Store, rc *sandbox.Receiver, rcURL string, cases []string,
	during func(*observer.ObservedLogs)) *observer.ObservedLogs {
	t.Helper()
	services := deliveryServices(a.cfg.Services)
	for i := range services {
		services[i].Endpoint = rcURL + "/fhir"
		services[i].Transport = delivery.Transport{} // the test receiver asks for no token
	}
	core, logs := observer.New(zap.InfoLevel)
	w, err := delivery.New(delivery.Options{
		Outbox: store, Services: services, Source: a.evaluator.Source, Logger: zap.New(core),
		Settings: delivery.Settings{
			Workers: 4, MaxAttempts: 50, MaxAge: time.Hour, BaseBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
			Timeout: 2 * time.Second, Lease: 10 * time.Second, PollInterval: 20 * time.Millisecond,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	if during != nil {
		during(logs)
	}
	want := map[string]bool{}
	for _, c := range cases {
		want[c] = true
	}
	deadline := time.Now().Add(60 * time.Second)
	var requestIDs []string
	for {
		requestIDs = requestIDs[:0]
		for _, m := range allMessages(t, view) {
			if want[m.CaseID] && m.State == gateway.MessageDelivered {
				requestIDs = append(requestIDs, m.RequestID)
			}
		}
		if len(requestIDs) == len(cases) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d referrals delivered after 60 s", len(requestIDs), len(cases))
		}
		time.Sleep(50 * time.Millisecond)
	}
	received, posts := map[string]int{}, map[string]int{}
	for _, r := range rc.Received() {
		received[r.RequestID]++
		posts[r.RequestID] += r.Posts
	}
	for _, id := range requestIDs {
		if received[id] != 1 || posts[id] != 1 {
			t.Errorf("X-Request-Id %s: processed %d times from %d posts; want once from one post", id, received[id], posts[id])
		}
	}
	for _, c := range cases {
		ref, err := view.LatestReferral(context.Background(), liverpoolUKPRN, c)
		if err != nil || ref.Status != gateway.StatusDelivered {
			t.Errorf("referral of %s: %s, %v; want delivered", c, ref.Status, err)
		}
	}
	return logs
}

// TestPostgresDownDuringDelivery takes PostgreSQL away from the delivery
// worker twice: when it starts (its claims fail; it keeps polling) and at the
// receiver's first post, for 1.5 s (posts are in flight; their outcomes
// cannot be recorded). Every referral is delivered, and the receiver sees
// each X-Request-Id once, from one post.
func TestPostgresDownDuringDelivery(t *testing.T) {
	dsn, proxied, proxy := proxiedPostgres(t)
	ctx := context.Background()
	store, err := openStore(ctx, config.Store{Driver: "postgres", DSN: proxied})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	direct, err := openStore(ctx, config.Store{Driver: "postgres", DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	srv, a, _ := faultAPI(t, store)
	var cases []string
	for i := range 12 {
		c := fmt.Sprintf("FAULT-DELIVER-%02d", i)
		if ans := postCase(t, srv, c); ans.status != http.StatusAccepted {
			t.Fatalf("accept %s: %d %s", c, ans.status, ans.body)
		}
		cases = append(cases, c)
	}
	rc, rcSrv := faultReceiver(t, func() {
		proxy.down()
		time.AfterFunc(1500*time.Millisecond, proxy.up)
	})
	failedClaims := func(logs *observer.ObservedLogs) int {
		n := 0
		for _, e := range logs.FilterMessage("outbox claim failed").All() {
			if e.ContextMap()["error_code"] == gateway.EUNAVAILABLE {
				n++
			}
		}
		return n
	}
	proxy.down()
	logs := deliverAll(t, a, store, direct, rc, rcSrv.URL, cases, func(logs *observer.ObservedLogs) {
		deadline := time.Now().Add(10 * time.Second)
		for failedClaims(logs) < 3 {
			if time.Now().After(deadline) {
				t.Fatal("the worker did not try to claim while the database was down")
			}
			time.Sleep(10 * time.Millisecond)
		}
		proxy.up()
	})
	records := logs.FilterMessage("the store is unavailable; recording the attempt again shortly").Len()
	if records == 0 {
		t.Error("no outcome was recorded again: the outage at the first post went unnoticed, so the test proved nothing")
	}
	t.Logf("%d claims failed as unavailable, %d recordings retried", failedClaims(logs), records)
	assertWhole(t, direct, len(cases))
}

// TestSQLiteDiskFull fills the SQLite store (PRAGMA max_page_count, the real
// SQLITE_FULL path) until an accept fails: 503, nothing of it written, the
// earlier referrals intact. With room again the same POST is accepted and
// every referral is delivered.
func TestSQLiteDiskFull(t *testing.T) {
	ctx := context.Background()
	st, err := openStore(ctx, testStore(t, "sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	db := st.(*sqlite.DB)
	testDiskFull(t, st, func() {
		if _, err := db.SetMaxPageCount(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}, func() {
		if _, err := db.SetMaxPageCount(ctx, 1<<30); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSQLiteRealDiskFull is TestSQLiteDiskFull on a 2 MiB tmpfs that a
// filler file fills to the last byte; freeing the filler frees the space.
// It needs to mount a filesystem (root on Linux) and skips where it cannot.
func TestSQLiteRealDiskFull(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs (%v: %s); TestSQLiteDiskFull covers SQLITE_FULL through max_page_count", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { // after the store is closed
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	ctx := context.Background()
	st, err := openStore(ctx, config.Store{Driver: "sqlite", Path: filepath.Join(dir, "gateway.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	filler := filepath.Join(dir, "filler")
	testDiskFull(t, st, func() {
		f, err := os.Create(filler)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		chunk := make([]byte, 4096)
		for {
			if _, err := f.Write(chunk); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				return
			}
		}
	}, func() {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	})
}

// testDiskFull accepts two referrals, fills the disk, posts until an
// accept is refused, frees space and checks the recovery.
func testDiskFull(t *testing.T, store gateway.Store, fill, free func()) {
	srv, a, logs := faultAPI(t, store)
	var accepted []string
	for i := range 2 {
		c := fmt.Sprintf("FULL-BEFORE-%d", i)
		if ans := postCase(t, srv, c); ans.status != http.StatusAccepted {
			t.Fatalf("accept %s: %d %s", c, ans.status, ans.body)
		}
		accepted = append(accepted, c)
	}
	fill()
	refused := ""
	for i := 0; refused == "" && i < 200; i++ {
		c := fmt.Sprintf("FULL-%03d", i)
		switch ans := postCase(t, srv, c); ans.status {
		case http.StatusAccepted:
			accepted = append(accepted, c)
		default:
			assertUnavailable(t, ans, unavailableText, "POST to a full store")
			refused = c
		}
	}
	if refused == "" {
		t.Fatal("200 referrals accepted and the store never filled up")
	}
	assertCauseLogged(t, logs, "full")
	t.Logf("the store filled up after %d referrals", len(accepted))
	// Reads still work on a full store.
	if a := boundedCall(t, srv, "GET", "/readyz", nil); a.status != http.StatusOK {
		t.Errorf("/readyz on a full store: %d %s", a.status, a.body)
	}
	if a := boundedCall(t, srv, "GET", "/v1/referrals/"+holdingOf(t, store, accepted[0]).referralID, nil); a.status != http.StatusOK {
		t.Errorf("reading a referral on a full store: %d %s", a.status, a.body)
	}
	assertHolding(t, store, refused, heldNothing)
	for _, c := range accepted {
		assertHolding(t, store, c, heldOnce)
	}
	assertWhole(t, store, len(accepted))

	free()
	if ans := postCase(t, srv, refused); ans.status != http.StatusAccepted {
		t.Fatalf("the same POST once there is room: %d %s", ans.status, ans.body)
	}
	accepted = append(accepted, refused)
	assertHolding(t, store, refused, heldOnce)
	assertWhole(t, store, len(accepted))
	rc, rcSrv := faultReceiver(t, nil)
	deliverAll(t, a, store, store, rc, rcSrv.URL, accepted, nil)
}
