package http

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// replaySource serves two retained decisions of institution A, one to each
// service, and checks that the page asks only for the lead's institution.
type replaySource struct{ t *testing.T }

func (s replaySource) ReplayDecisions(_ context.Context, f gateway.ReplayFilter, fn func(gateway.DecisionRecord) error) error {
	if f.Institution != instA {
		s.t.Errorf("the page replayed institution %q, not the lead's", f.Institution)
	}
	for i, svc := range []string{"u-cope", "bristol-awp"} {
		entry, _ := json.Marshal(gateway.DecisionEntry{DecisionID: "d-" + svc, Institution: instA, Outcome: "allow", Allow: true, Route: "consent",
			DataCategories: []string{"needs"}, PolicyRevision: "sha256:old"})
		err := fn(gateway.DecisionRecord{Institution: instA, Seq: int64(i + 1), DecisionID: "d-" + svc, Body: entry, Input: &gateway.RetainedInput{
			DecidedAt: auditT0, Record: json.RawMessage(`{}`), Service: gateway.ServiceSnapshot{JSON: json.RawMessage(`{"id":"` + svc + `"}`)},
		}})
		if err != nil {
			return err
		}
	}
	return nil
}

// tighter is a candidate that refuses what goes to bristol-awp (E-01).
type tighter struct{}

func (tighter) Revisions() (string, string) { return "sha256:in-force", "sha256:candidate" }
func (tighter) Tests() int                  { return 3 }
func (c tighter) DecideCandidate(ctx context.Context, in gateway.ReplayInput) (*gateway.Decision, error) {
	_, d, err := c.DecideBoth(ctx, in)
	return d, err
}
func (tighter) DecideBoth(_ context.Context, in gateway.ReplayInput) (*gateway.Decision, *gateway.Decision, error) {
	allow := &gateway.Decision{Allow: true, Route: "consent", DataCategories: []string{"needs"}}
	if in.ServiceID != "bristol-awp" {
		return allow, allow, nil
	}
	return allow, &gateway.Decision{Route: "consent", Rules: []gateway.RuleResult{{ID: "E-01", Effect: gateway.EffectDeny}}}, nil
}

// actionLog keeps the actions the page records.
type actionLog struct {
	gateway.AuditTrail
	mu      sync.Mutex
	actions []gateway.ActionEntry
}

func (l *actionLog) AppendDecision(_ context.Context, r gateway.DecisionRecord) (gateway.DecisionRecord, error) {
	var a gateway.ActionEntry
	if err := json.Unmarshal(r.Body, &a); err != nil {
		return r, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.actions = append(l.actions, a)
	return r, nil
}

// TestUIReplay drives the replay page: it lists the candidate sets, runs a
// replay only from its own form, shows the report with links to the
// changed decisions, shows why a candidate is refused, and records who ran
// it.
func TestUIReplay(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"tighter", "broken"} {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "broken", "broken"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	log := &actionLog{}
	s := &Server{
		Intake: &gateway.Intake{}, // the web page is served with the store
		Auth:   NewAuthenticator([]Credential{{Client: gateway.Client{ID: "ig-a", Institution: instA, Roles: []string{gateway.RoleAuditor}}, TokenSHA256: hashHex([]byte(tokAuditA))}}, false),
		Now:    func() time.Time { return auditT0 },
		Replayer: &gateway.Replayer{Source: replaySource{t}, Log: log, CandidatesDir: dir,
			Compare: func(_ context.Context, fsys fs.FS) (gateway.PolicyComparison, error) {
				if _, err := fs.Stat(fsys, "broken"); err == nil {
					return nil, &gateway.Error{Code: gateway.EINVALID, Message: "1 of 3 policy tests fail", Err: errString("failing: referral.test_e01_allows_urgent")}
				}
				return tighter{}, nil
			}},
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	b := newBrowser(t, &auditFixture{srv: srv})
	if a := b.get("/ui/replay"); a.status != http.StatusSeeOther {
		t.Fatalf("signed out: status %d", a.status)
	}
	b.signIn(tokAuditA)
	pg := b.get("/ui/replay")
	if pg.status != 200 || !strings.Contains(pg.body, `<option value="broken"`) || !strings.Contains(pg.body, `<option value="tighter"`) ||
		!strings.Contains(pg.body, `href="/ui/replay" aria-current="page"`) {
		t.Fatalf("status %d: %s", pg.status, pg.body)
	}
	csrf := b.csrf(pg)

	if a := b.post("/ui/replay", url.Values{"candidate": {"tighter"}}); a.status != http.StatusForbidden || len(log.actions) != 0 {
		t.Fatalf("without the form's token: status %d, %d replays", a.status, len(log.actions))
	}
	a := b.post("/ui/replay", url.Values{"csrf": {csrf}, "candidate": {"tighter"}, "from": {"2026-11-01"}})
	for _, want := range []string{
		`<a href="/ui/decisions/d-bristol-awp"><code>d-bristol-awp</code></a>`, `<a href="/ui/rules#rule-E-01" class="rule-id">E-01</a>`,
		"<dt>Decisions replayed</dt><dd>2</dd>", "<dt>Allowed now, refused by the candidate</dt><dd>1</dd>",
		"1 decision would change", "<td>Refused by E-01</td>", "<td>Allowed</td>", "sha256:candidate",
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if a.status != 200 || strings.Contains(a.body, "d-u-cope") {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if len(log.actions) != 1 || log.actions[0].By != "ig-a" || log.actions[0].Action != gateway.ActionPolicyReplay ||
		log.actions[0].Replay == nil || log.actions[0].Replay.AllowToDeny != 1 || log.actions[0].PolicyRevision != "sha256:candidate" {
		t.Fatalf("recorded %+v", log.actions)
	}

	for _, c := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"candidate": {"broken"}}, "referral.test_e01_allows_urgent"},
		{url.Values{"candidate": {"../tighter"}}, "no candidate policy set is called"},
		{url.Values{"candidate": {"tighter"}, "to": {"yesterday"}}, "to must be a date"},
	} {
		c.form.Set("csrf", csrf)
		a := b.post("/ui/replay", c.form)
		if a.status == 200 || !strings.Contains(a.body, c.want) || strings.Contains(a.body, "d-bristol-awp") {
			t.Errorf("%v: status %d: %s", c.form, a.status, a.body)
		}
	}
	if len(log.actions) != 1 {
		t.Fatalf("%d replays recorded; refused ones must not be", len(log.actions))
	}
}

type errString string

func (e errString) Error() string { return string(e) }
