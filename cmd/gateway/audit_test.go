package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
	gwhttp "github.com/student-mh-referrals/gateway/gateway/http"
	"github.com/student-mh-referrals/gateway/gateway/logging"
)

// auditEnv is the fully wired API over a SQLite store, like apiServer, with
// a configuration file naming that store (for the CLI), a fixed clock
// (every decision a second after the last, from 23 November 2026 12:00 UTC,
// so that the example cases decide as in their golden documents) and the
// log kept.
type auditEnv struct {
	srv   *httptest.Server
	db    string
	cfg   string
	store gateway.Store
	logs  *syncBuffer
}

func newAuditEnv(t *testing.T) *auditEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	env := &auditEnv{db: filepath.Join(dir, "gateway.db"), cfg: filepath.Join(dir, "gateway.yaml"), logs: &syncBuffer{}}
	cfg := bytes.Replace(config.Example, []byte("path: data/gateway.db"), []byte("path: "+env.db), 1)
	if bytes.Equal(cfg, config.Example) {
		t.Fatal("the example configuration no longer names data/gateway.db")
	}
	if err := os.WriteFile(env.cfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := newApp(ctx, env.cfg, io.Discard, "error")
	if err != nil {
		t.Fatal(err)
	}
	if a.log, err = logging.New(env.logs, "debug"); err != nil {
		t.Fatal(err)
	}
	keys, err := a.cfg.ChainKeys()
	if err != nil {
		t.Fatal(err)
	}
	env.store, err = openStoreWith(ctx, a.cfg.Store, keys) // as gateway serve does
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.store.Close() })
	key, err := a.cfg.PseudonymKey()
	if err != nil {
		t.Fatal(err)
	}
	api, _ := a.server(env.store, key)
	var mu sync.Mutex
	tick := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		tick = tick.Add(time.Second)
		return tick
	}
	api.Now, api.Intake.Now = clock, clock
	env.srv = httptest.NewServer(api.Handler())
	t.Cleanup(env.srv.Close)
	return env
}

// cli runs the gateway command in-process.
func (env *auditEnv) cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, nil, &stdout, &stderr)
	return exitOf(err), stdout.String(), stderr.String()
}

const uweUKPRN = "10007164"

// afterSeed is a time after everything the fixed clock of auditEnv
// stamps in a test: when queued messages are due.
var afterSeed = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)

// uweSeed is what seed put in UWE's chain, by chain position.
type uweSeed struct {
	referral      string // id of the accepted Bristol referral (cancelled at seq 5)
	allow, deny   string // decision ids at seq 1 and 3
	override, dry string // decision ids at seq 2 and 4
	liverpool     string // a decision of another institution
}

// variant returns an example case with its text replaced.
func variant(t *testing.T, name string, pairs ...string) []byte {
	t.Helper()
	b := readCase(t, name)
	for i := 0; i+1 < len(pairs); i += 2 {
		c := bytes.Replace(b, []byte(pairs[i]), []byte(pairs[i+1]), 1)
		if bytes.Equal(c, b) {
			t.Fatalf("%s: %q not found", name, pairs[i])
		}
		b = c
	}
	return b
}

// seed makes, as UWE's case-management system: (1) an allowed referral to
// Bristol, (2) an allowed safeguarding override, (3) a refused emergency,
// (4) a refused dry run of an override without an approver, (5) the
// cancellation of the first referral; and, as Liverpool's, one allowed
// referral in Liverpool's own chain.
func seed(t *testing.T, env *auditEnv) uweSeed {
	t.Helper()
	var s uweSeed
	post := func(path, token string, body []byte, status int) apiAnswer {
		t.Helper()
		a := call(t, env.srv, apiCall{method: "POST", path: path, token: token, body: body})
		if a.status != status {
			t.Fatalf("POST %s: status %d, want %d: %s", path, a.status, status, a.body)
		}
		return a
	}
	a := post("/v1/referrals", uwe, readCase(t, "allow-uwe-bristol-awp-trusted-contact"), 202)
	s.referral, s.allow = a.json(t)["id"].(string), a.header.Get("X-Decision-Id")
	s.override = post("/v1/referrals", uwe, readCase(t, "allow-uwe-safeguarding-override"), 202).header.Get("X-Decision-Id")
	s.deny = post("/v1/referrals", uwe, variant(t, "allow-uwe-bristol-awp-trusted-contact", `"priority": "urgent"`, `"priority": "emergency"`), 403).header.Get("X-Decision-Id")
	dry := post("/v1/referrals/$evaluate", uwe, variant(t, "allow-uwe-safeguarding-override", `"approvedBy": { "name": "Jo Whitfield", "role": "safeguarding-lead" },`, ""), 200)
	s.dry = dry.json(t)["decision"].(map[string]any)["id"].(string)
	post("/v1/referrals/"+s.referral+"/$cancel", uwe, nil, 200)
	s.liverpool = post("/v1/referrals", liverpool, readCase(t, "allow-liverpool-u-cope"), 202).header.Get("X-Decision-Id")
	for _, id := range []string{s.referral, s.allow, s.override, s.deny, s.dry, s.liverpool} {
		if id == "" {
			t.Fatalf("seed: an id is missing: %+v", s)
		}
	}
	return s
}

func page(t *testing.T, a apiAnswer) gateway.Page {
	t.Helper()
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	var p gateway.Page
	if err := json.Unmarshal(a.body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func kindsAndIDs(p gateway.Page) string {
	var out []string
	for _, r := range p.Records {
		out = append(out, strconv.FormatInt(r.Seq, 10)+":"+r.Kind)
	}
	return strings.Join(out, " ")
}

// TestAuditTrailEndToEnd drives the audit API of the wired gateway over
// real decisions: every decision and action is on record with what R-01
// asks, each filter selects what it says, and an IG auditor sees only their
// own institution.
func TestAuditTrailEndToEnd(t *testing.T) {
	env := newAuditEnv(t)
	s := seed(t, env)
	get := func(path string) gateway.Page {
		t.Helper()
		return page(t, call(t, env.srv, apiCall{method: "GET", path: path, token: auditor}))
	}
	all := get("/v1/audit/decisions?order=asc")
	if got := kindsAndIDs(all); got != "1:referral 2:referral 3:referral 4:dry-run 5:action" {
		t.Fatalf("UWE's chain: %s", got)
	}
	t.Run("each record holds what R-01 asks", func(t *testing.T) {
		d := all.Records[1].Decision
		if d.DecisionID != s.override || d.Client != "uwe-cms" || d.Institution != uweUKPRN || d.CaseID != "UWE-WB-2026-00188" ||
			d.Outcome != "allow" || d.Route != "safeguarding" || d.LawfulBases.Article9 != "9(2)(g)" || d.LawfulBases.DPASchedule1 != "para-18" ||
			len(d.DataCategories) == 0 || d.Recipient.ODSCode != "RVN" || d.PolicyRevision == "" || d.Time == "" || len(d.Rules) == 0 || d.ReferralID == "" ||
			len(d.Student) != 64 || d.Override == nil || d.Override.DecidedBy.Name != "Sam Patel" || d.Override.ApprovedBy.Role != "safeguarding-lead" ||
			d.Override.StudentInformed != "informed" {
			t.Fatalf("the override's record: %+v %+v", d, d.Override)
		}
		for _, r := range d.Rules {
			if r.Message == "" {
				t.Fatalf("rule %s without its message", r.ID)
			}
		}
		c := all.Records[4].Action
		if c.Action != gateway.ActionReferralCancel || c.By != "uwe-cms" || c.ReferralID != s.referral || c.Reason != gateway.CancelRequested || c.Service != "bristol-awp" {
			t.Fatalf("the cancellation's record: %+v", c)
		}
	})
	tests := []struct {
		name, query, want string
	}{
		{"newest first by default", "", "5:action 4:dry-run 3:referral 2:referral 1:referral"},
		{"the refused", "?outcome=deny&order=asc", "3:referral 4:dry-run"},
		{"refused by E-01", "?ruleId=E-01&effect=deny", "3:referral"},
		{"the overrides", "?route=safeguarding&order=asc", "2:referral 4:dry-run"},
		{"the dry runs", "?kind=dry-run", "4:dry-run"},
		{"the actions", "?kind=action", "5:action"},
		{"a recipient", "?recipient=bristol-awp&order=asc", "1:referral 2:referral 3:referral 4:dry-run 5:action"},
		{"a case", "?caseId=UWE-WB-2026-00123&order=asc", "1:referral 3:referral 5:action"},
		{"a time range", "?order=asc&from=" + all.Records[1].RecordedAt.Format(time.RFC3339Nano) + "&to=" + all.Records[2].RecordedAt.Add(time.Microsecond).Format(time.RFC3339Nano), "2:referral 3:referral"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := kindsAndIDs(get("/v1/audit/decisions" + tt.query)); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
	t.Run("pages", func(t *testing.T) {
		var got []string
		path := "/v1/audit/decisions?limit=2"
		for range 5 {
			p := get(path)
			got = append(got, kindsAndIDs(p))
			if p.Next == "" {
				break
			}
			path = "/v1/audit/decisions?limit=2&cursor=" + p.Next
		}
		if strings.Join(got, " | ") != "5:action 4:dry-run | 3:referral 2:referral | 1:referral" {
			t.Fatalf("pages %q", got)
		}
	})
	t.Run("by student, posted", func(t *testing.T) {
		a := call(t, env.srv, apiCall{method: "POST", path: "/v1/audit/decisions/$search", token: auditor, body: []byte(`{"nhsNumber":"943 476 5919","order":"asc"}`)})
		if got := kindsAndIDs(page(t, a)); got != "1:referral 3:referral" {
			t.Fatalf("the Bristol student's decisions: %s", got)
		}
		if strings.Contains(env.logs.String(), "9434765919") || strings.Contains(env.logs.String(), "943 476 5919") {
			t.Fatal("the log holds the NHS number searched for")
		}
		if a := call(t, env.srv, apiCall{method: "GET", path: "/v1/audit/decisions?nhsNumber=9434765919", token: auditor}); a.status != 422 {
			t.Fatalf("an NHS number in the URL: status %d", a.status)
		}
	})
	t.Run("one record in full", func(t *testing.T) {
		a := call(t, env.srv, apiCall{method: "GET", path: "/v1/audit/decisions/" + s.deny, token: auditor})
		var v struct {
			Record gateway.AuditRecord
			Rules  []gateway.PolicyRule
		}
		if a.status != 200 || json.Unmarshal(a.body, &v) != nil || v.Record.Seq != 3 || len(v.Rules) != 1 || v.Rules[0].ID != "E-01" || v.Rules[0].Source == "" {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
	})
	t.Run("only the auditor's institution", func(t *testing.T) {
		if a := call(t, env.srv, apiCall{method: "GET", path: "/v1/audit/decisions/" + s.liverpool, token: auditor}); a.status != 404 {
			t.Fatalf("Liverpool's decision: status %d", a.status)
		}
		for _, tok := range []string{uwe, liverpool, receiver, "demo-admin"} {
			if a := call(t, env.srv, apiCall{method: "GET", path: "/v1/audit/decisions", token: tok}); a.status != 403 {
				t.Fatalf("%s: status %d", tok, a.status)
			}
		}
	})
	t.Run("exports", func(t *testing.T) {
		a := call(t, env.srv, apiCall{method: "GET", path: "/v1/audit/export?format=csv", token: auditor})
		rows, err := csv.NewReader(bytes.NewReader(a.body)).ReadAll()
		if a.status != 200 || err != nil || len(rows) != 6 || rows[0][0] != "seq" || rows[5][2] != "action" {
			t.Fatalf("CSV: status %d, %v rows %v", a.status, err, rows)
		}
		f := call(t, env.srv, apiCall{method: "GET", path: "/v1/audit/export?format=fhir", token: auditor})
		var b struct {
			Entry []struct {
				Resource struct{ ResourceType, Outcome string }
			}
		}
		if f.status != 200 || json.Unmarshal(f.body, &b) != nil || len(b.Entry) != 5 || b.Entry[2].Resource.Outcome != "8" {
			t.Fatalf("FHIR: status %d: %.300s", f.status, f.body)
		}
	})
	t.Run("the chain verifies", func(t *testing.T) {
		var st gwhttp.ChainStatus
		a := call(t, env.srv, apiCall{method: "GET", path: "/v1/audit/verify", token: auditor})
		if json.Unmarshal(a.body, &st) != nil || !st.OK || st.Records != 5 {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		code, out, _ := env.cli(t, "audit", "verify", "--config", env.cfg)
		if code != 0 || !strings.Contains(out, "10007164  5        ok") || !strings.Contains(out, "10006842  1        ok") {
			t.Fatalf("gateway audit verify: exit %d:\n%s", code, out)
		}
	})
}

// TestDecisionRecordsHoldNoPersonalData submits every example case of the
// demo institutions, dry run and for real, and searches every stored
// decision record for the cases' personal values and free text. Only the
// case id and the override's staff names are in a record by design.
func TestDecisionRecordsHoldNoPersonalData(t *testing.T) {
	env := newAuditEnv(t)
	tokens := map[string]string{"10006842": liverpool, uweUKPRN: uwe}
	byDesign := map[string]bool{}
	var secrets []string
	submitted := 0
	for _, c := range cases(t) {
		body, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		var rec gateway.CaseRecord
		if json.Unmarshal(body, &rec) != nil {
			continue
		}
		tok, ok := tokens[rec.Institution.UKPRN]
		if !ok {
			continue
		}
		byDesign[rec.CaseID] = true
		if o := rec.Override; o != nil {
			for _, p := range []*gateway.Person{o.DecidedBy, o.ApprovedBy} {
				if p != nil {
					byDesign[p.Name] = true
				}
			}
		}
		secrets = append(secrets, personalValues(t, body)...)
		for _, path := range []string{"/v1/referrals/$evaluate", "/v1/referrals"} {
			if a := call(t, env.srv, apiCall{method: "POST", path: path, token: tok, body: body}); a.status >= 500 {
				t.Fatalf("%s %s: status %d", c.name, path, a.status)
			}
		}
		submitted++
	}
	var bodies []string
	for _, inst := range []string{"10006842", uweUKPRN} {
		recs, err := env.store.Decisions(context.Background(), inst, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			bodies = append(bodies, string(r.Body))
		}
	}
	if submitted < 7 || len(bodies) < 2*submitted-2 || len(secrets) < 40 {
		t.Fatalf("%d cases, %d records, %d personal values: the test would prove little", submitted, len(bodies), len(secrets))
	}
	all := strings.Join(bodies, "\n")
	checked := 0
	for _, v := range secrets {
		// A value the configuration holds too (a city that names a
		// service) is not the student's to leak.
		if byDesign[v] || bytes.Contains(config.Example, []byte(v)) {
			continue
		}
		checked++
		if strings.Contains(all, v) {
			t.Errorf("a decision record holds %q", v)
		}
	}
	if checked < 40 {
		t.Fatalf("only %d personal values checked", checked)
	}
}

// chainTampering are the ways to break a chain behind the store's back,
// the record each must be caught at and how. UWE's chain has five records
// (seed).
var chainTampering = []struct {
	name    string
	sql     []string
	badSeq  int64
	problem string
}{
	{"alter a body", []string{`UPDATE decision_records SET body = replace(body, '"outcome":"deny"', '"outcome":"allow"') WHERE institution = '10007164' AND seq = 3`}, 3, "altered"},
	{"delete a record", []string{`DELETE FROM decision_records WHERE institution = '10007164' AND seq = 2`}, 2, "removed"},
	{"swap two records", []string{
		`UPDATE decision_records SET seq = -1 WHERE institution = '10007164' AND seq = 2`,
		`UPDATE decision_records SET seq = 2 WHERE institution = '10007164' AND seq = 3`,
		`UPDATE decision_records SET seq = 3 WHERE institution = '10007164' AND seq = -1`,
	}, 2, "reordered"},
	{"delete the last record", []string{`DELETE FROM decision_records WHERE institution = '10007164' AND seq = 5`}, 5, "removed"},
}

// tamperSQL runs statements on the SQLite file with the append-only
// triggers dropped, as someone with access to the database could.
func tamperSQL(t *testing.T, path string, queries []string) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range append([]string{`DROP TRIGGER IF EXISTS decision_records_no_update`, `DROP TRIGGER IF EXISTS decision_records_no_delete`}, queries...) {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestAuditTamperingIsCaught alters, deletes and reorders records in the
// SQLite file and proves that GET /v1/audit/verify and `gateway audit
// verify` both name the first record at fault and how, and that the web
// page says so.
func TestAuditTamperingIsCaught(t *testing.T) {
	for _, tt := range chainTampering {
		t.Run(tt.name, func(t *testing.T) {
			env := newAuditEnv(t)
			seed(t, env)
			if code, out, _ := env.cli(t, "audit", "verify", "--config", env.cfg, "--institution", uweUKPRN); code != 0 {
				t.Fatalf("before tampering: exit %d\n%s", code, out)
			}
			tamperSQL(t, env.db, tt.sql)

			var st gwhttp.ChainStatus
			a := call(t, env.srv, apiCall{method: "GET", path: "/v1/audit/verify", token: auditor})
			if a.status != 200 || json.Unmarshal(a.body, &st) != nil {
				t.Fatalf("API: status %d: %s", a.status, a.body)
			}
			if st.OK || st.BadSeq != tt.badSeq || st.Problem != tt.problem || st.Detail == "" {
				t.Fatalf("API: %+v, want record %d %s", st, tt.badSeq, tt.problem)
			}

			code, out, errOut := env.cli(t, "audit", "verify", "--config", env.cfg, "--institution", uweUKPRN, "--json")
			var doc struct{ Chains []gwhttp.ChainStatus }
			if code != exitTampered || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Chains) != 1 {
				t.Fatalf("CLI --json: exit %d\n%s\n%s", code, out, errOut)
			}
			if c := doc.Chains[0]; c.OK || c.BadSeq != tt.badSeq || c.Problem != tt.problem {
				t.Fatalf("CLI: %+v, want record %d %s", c, tt.badSeq, tt.problem)
			}
			code, out, _ = env.cli(t, "audit", "verify", "--config", env.cfg)
			line := ""
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, uweUKPRN) {
					line = strings.Join(strings.Fields(l), " ")
				}
			}
			if code != exitTampered || !strings.HasPrefix(line, "10007164 5 "+tt.problem+" "+strconv.FormatInt(tt.badSeq, 10)+" ") ||
				!strings.Contains(out, "10006842  1        ok") {
				t.Fatalf("CLI table: exit %d, UWE line %q:\n%s", code, line, out)
			}
		})
	}
}

// TestOperatorActionsAreRecorded drives `gateway outbox drop` and `retry`
// and expects an action record in the message's institution's chain, with
// the operator, and without the operator's free-text reason.
func TestOperatorActionsAreRecorded(t *testing.T) {
	env := newAuditEnv(t)
	ctx := context.Background()
	a := call(t, env.srv, apiCall{method: "POST", path: "/v1/referrals", token: uwe, body: readCase(t, "allow-uwe-bristol-awp-trusted-contact")})
	b := call(t, env.srv, apiCall{method: "POST", path: "/v1/referrals", token: uwe, body: readCase(t, "allow-uwe-safeguarding-override")})
	if a.status != 202 || b.status != 202 {
		t.Fatalf("submit: %d %d", a.status, b.status)
	}
	msgs, err := env.store.Messages(ctx, gateway.MessagePending, 10)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("%v: %d pending messages", err, len(msgs))
	}
	// The first fails at the receiver (and may be retried); the second is
	// dropped while pending.
	claimed, err := env.store.Claim(ctx, "test", 1, afterSeed, time.Minute)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %d", err, len(claimed))
	}
	if err := env.store.RecordAttempt(ctx, claimed[0].ID, claimed[0].LeaseID, gateway.Attempt{Result: gateway.AttemptFailed, At: afterSeed}); err != nil {
		t.Fatal(err)
	}
	other := msgs[0].ID
	if other == claimed[0].ID {
		other = msgs[1].ID
	}
	const reason = "Riley Carter asked us to stop"
	for _, c := range []struct{ verb, id string }{{"retry", claimed[0].ID}, {"drop", other}} {
		if code, out, errOut := env.cli(t, "outbox", c.verb, c.id, "--reason", reason, "--by", "alex.ops", "--config", env.cfg); code != 0 {
			t.Fatalf("outbox %s: exit %d\n%s%s", c.verb, code, out, errOut)
		}
	}
	p := page(t, call(t, env.srv, apiCall{method: "GET", path: "/v1/audit/decisions?kind=action&order=asc", token: auditor}))
	if len(p.Records) != 2 {
		t.Fatalf("actions: %s", kindsAndIDs(p))
	}
	for i, want := range []struct{ action, id string }{{gateway.ActionOutboxRetry, claimed[0].ID}, {gateway.ActionOutboxDrop, other}} {
		ac := p.Records[i].Action
		if ac.Action != want.action || ac.MessageID != want.id || ac.By != "alex.ops" || ac.Institution != uweUKPRN || ac.ReferralID == "" || ac.CaseID == "" {
			t.Errorf("action %d: %+v", i, ac)
		}
	}
	recs, err := env.store.Decisions(ctx, uweUKPRN, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if strings.Contains(string(r.Body), "Riley") {
			t.Fatalf("the operator's reason reached the chain: %s", r.Body)
		}
	}
	if v, err := env.store.Verify(ctx, uweUKPRN); err != nil || !v.OK || v.Records != 4 {
		t.Fatalf("the chain: %v %+v", err, v)
	}
}

// TestRetention deletes the content of delivered referrals once they are
// older than retention.contentDays, keeps their status and decision
// records, and records the run in the gateway chain: by the server's
// scheduled run (on a clock moved past the period) and by `gateway
// retention run`.
func TestRetention(t *testing.T) {
	env := newAuditEnv(t)
	ctx := context.Background()
	s := seed(t, env) // the Bristol referral is cancelled; the override's is queued
	for {
		ms, err := env.store.Claim(ctx, "test", 10, afterSeed, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			break
		}
		for _, m := range ms {
			if err := env.store.RecordAttempt(ctx, m.ID, m.LeaseID, gateway.Attempt{Result: gateway.AttemptDelivered, At: afterSeed}); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg, err := config.Load(env.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Retention.ContentDays != 180 || cfg.Retention.Interval.D() != 24*time.Hour {
		t.Fatalf("the example's retention: %+v", cfg.Retention)
	}

	t.Run("nothing is purged before its time", func(t *testing.T) {
		code, out, errOut := env.cli(t, "retention", "run", "--config", env.cfg)
		if code != 0 || !strings.Contains(out, "deleted the clinical content of 0 referrals") {
			t.Fatalf("exit %d: %s%s", code, out, errOut)
		}
		ref, err := env.store.Referral(ctx, uweUKPRN, s.referral)
		if err != nil || ref.Record == nil {
			t.Fatalf("%v: the content is gone too early", err)
		}
	})

	t.Run("the scheduled run purges old content", func(t *testing.T) {
		later := afterSeed.AddDate(0, 0, 181)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- runRetentionWith(runCtx, zap.NewNop(), env.store, config.Retention{ContentDays: 180, Interval: config.Duration(time.Hour)}, func() time.Time { return later })
		}()
		deadline := time.Now().Add(10 * time.Second)
		for {
			recs, err := env.store.Decisions(ctx, gateway.GatewayChain, 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) > 0 {
				r, _ := gateway.ParseAuditRecord(recs[0])
				if r.Action.Action != gateway.ActionRetentionPurge || r.Action.Count != 3 || r.Action.By != "gateway:retention" {
					t.Fatalf("the retention record: %+v", r.Action)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the scheduled run recorded nothing")
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		ref, err := env.store.Referral(ctx, uweUKPRN, s.referral)
		if err != nil || ref.Record != nil || ref.PurgedAt.IsZero() || ref.Status != gateway.StatusCancelled {
			t.Fatalf("%v: after the purge the referral is %+v", err, ref)
		}
		// The decision records stay, intact, and still say what was decided.
		p := page(t, call(t, env.srv, apiCall{method: "GET", path: "/v1/audit/decisions?order=asc", token: auditor}))
		if kindsAndIDs(p) != "1:referral 2:referral 3:referral 4:dry-run 5:action" || p.Records[0].Decision.DecisionID != s.allow {
			t.Fatalf("decision records after the purge: %s", kindsAndIDs(p))
		}
		if v, err := env.store.Verify(ctx, uweUKPRN); err != nil || !v.OK {
			t.Fatalf("%v %+v", err, v)
		}
		// A cancellation now needs the content: refused, with the reason.
		c := call(t, env.srv, apiCall{method: "POST", path: "/v1/referrals/" + p.Records[1].Decision.ReferralID + "/$cancel", token: uwe})
		if c.status != 409 || !strings.Contains(string(c.body), "retention") {
			t.Fatalf("cancel after purge: status %d: %s", c.status, c.body)
		}
	})

	t.Run("a bad retention setting is refused", func(t *testing.T) {
		for _, bad := range []string{"contentDays: 0\n  interval: 24h", "contentDays: 180\n  interval: 10s", "contentDays: -1\n  interval: 24h"} {
			cfg := bytes.Replace(config.Example, []byte("contentDays: 180\n  interval: 24h"), []byte(bad), 1)
			if bytes.Equal(cfg, config.Example) {
				t.Fatal("the example's retention block moved")
			}
			_, err := config.Parse(cfg)
			if bad == "contentDays: 0\n  interval: 24h" {
				if err != nil { // zero means the default
					t.Fatalf("%q: %v", bad, err)
				}
				continue
			}
			if err == nil || !strings.Contains(err.Error(), "retention.") {
				t.Fatalf("%q: err = %v", bad, err)
			}
		}
	})
}

// TestAuditUsage: the subcommands refuse what they do not know.
func TestAuditUsage(t *testing.T) {
	for _, args := range [][]string{{"audit"}, {"audit", "list"}, {"audit", "verify", "extra"}, {"retention"}, {"retention", "now"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := exitOf(run(context.Background(), args, nil, &stdout, &stderr)); code != exitFailure || !strings.Contains(stderr.String(), "usage") {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
		})
	}
}

// TestWithdrawnConsentCancelsAndIsRecorded: a later version of a case that
// withdraws consent is refused, cancels the referral already sent, and both
// the refusal and the cancellation are on record.
func TestWithdrawnConsentCancelsAndIsRecorded(t *testing.T) {
	env := newAuditEnv(t)
	first := call(t, env.srv, apiCall{method: "POST", path: "/v1/referrals", token: uwe, body: readCase(t, "allow-uwe-bristol-awp-trusted-contact")})
	if first.status != 202 {
		t.Fatalf("submit: status %d: %s", first.status, first.body)
	}
	id := first.json(t)["id"].(string)
	withdrawn := variant(t, "allow-uwe-bristol-awp-trusted-contact", `"decision": "given"`, `"decision": "withdrawn"`)
	if a := call(t, env.srv, apiCall{method: "POST", path: "/v1/referrals", token: uwe, body: withdrawn}); a.status != 403 {
		t.Fatalf("withdrawn: status %d: %s", a.status, a.body)
	}
	if got := call(t, env.srv, apiCall{method: "GET", path: "/v1/referrals/" + id, token: uwe}).json(t)["status"]; got != "cancelled" {
		t.Fatalf("the first referral is %v, want cancelled", got)
	}
	p := page(t, call(t, env.srv, apiCall{method: "GET", path: "/v1/audit/decisions?order=asc", token: auditor}))
	if got := kindsAndIDs(p); got != "1:referral 2:referral 3:action" {
		t.Fatalf("the chain: %s", got)
	}
	if d := p.Records[1].Decision; d.Outcome != "deny" || !slices.Contains(p.Records[1].DeniedBy(), "C-02") {
		t.Fatalf("the refusal: %+v", d)
	}
	if a := p.Records[2].Action; a.Action != gateway.ActionReferralCancel || a.Reason != gateway.CancelConsentWithdrawn || a.ReferralID != id || a.By != "uwe-cms" {
		t.Fatalf("the cancellation: %+v", a)
	}
}
