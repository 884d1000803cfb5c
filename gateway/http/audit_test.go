package http

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/sqlite"
)

const (
	instA      = "10000001"
	instB      = "10000002"
	nhsA       = "9434765919" // the student of the fixture's records
	tokAuditA  = "token-ig-a"
	tokAuditB  = "token-ig-b"
	tokSubmitA = "token-cms-a"
)

var auditT0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

type auditFixture struct {
	srv   *httptest.Server
	path  string
	clock *clock
	logs  *lockedBuffer
	// ids of the seeded records, by role in the fixture.
	allowID, denyID, overrideID, otherID string
}

var fixtureRules = []gateway.PolicyRule{
	{ID: "C-01", Title: "Share only with the student's agreement", Description: "Share only with the student's agreement by default.", Source: "UUK & PAPYRUS 2022"},
	{ID: "C-02", Title: "Consent must be valid", Description: "Consent is valid only if explicit, current and given with capacity.", Source: "UK GDPR Art. 9(2)(a)"},
	{ID: "O-01", Title: "Overrides need grounds, a decider and an approver", Description: "Allowed only for a serious concern, decided by a named practitioner and approved by a senior role.", Source: "DHSC consensus statement 2021"},
}

// newAuditFixture serves the audit API and page over a SQLite store holding
// four decisions of institution A (an allow and a deny about student nhsA,
// an override refused without an approver, an allow about another student)
// and one of institution B.
func newAuditFixture(t *testing.T, tls bool) *auditFixture {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key := []byte("0123456789abcdef0123456789abcdef")
	f := &auditFixture{path: path, clock: &clock{t: auditT0.Add(time.Hour)}, logs: &lockedBuffer{}}
	student := func(nhs, sid string) string {
		return gateway.StudentPseudonym(key, &gateway.CaseRecord{Institution: gateway.Institution{UKPRN: instA}, Student: gateway.Student{NHSNumber: nhs, StudentID: sid}})
	}
	entries := []gateway.DecisionEntry{
		{DecisionID: "d-allow", Client: "cms-a", Institution: instA, CaseID: "CASE-1", Student: student(nhsA, ""), Outcome: "allow", Allow: true, Route: "consent",
			Rules:       []gateway.RuleResult{{ID: "C-01", Effect: "allow", Message: "consent given"}, {ID: "C-02", Effect: "allow", Message: "consent current"}},
			LawfulBases: gateway.LawfulBasis{Article6: "6(1)(a)", Article9: "9(2)(a)"}, DataCategories: []string{"demographics", "needs"},
			Recipient: gateway.Recipient{Service: "u-cope", ODSCode: "RW4", Name: "U-COPE"}, PolicyRevision: "sha256:test"},
		{DecisionID: "d-deny", Client: "cms-a", Institution: instA, CaseID: "CASE-1", Student: student(nhsA, ""), Outcome: "deny", Route: "consent",
			Rules:     []gateway.RuleResult{{ID: "C-02", Effect: "deny", Message: "consent.expiresAt has passed: record a fresh consent"}},
			Recipient: gateway.Recipient{Service: "u-cope", ODSCode: "RW4", Name: "U-COPE"}, PolicyRevision: "sha256:test"},
		{DecisionID: "d-override", Client: "cms-a", Institution: instA, CaseID: "CASE-2", Student: student("", "S-2"), Outcome: "deny", Route: "safeguarding", DryRun: true,
			Rules:     []gateway.RuleResult{{ID: "O-01", Effect: "deny", Message: "override.approvedBy is missing"}},
			Recipient: gateway.Recipient{Service: "bristol-awp", ODSCode: "RVN", Name: "AWP"}, PolicyRevision: "sha256:test",
			Override: &gateway.OverrideEntry{Ground: "safeguarding", DecidedBy: &gateway.Person{Name: "Sam Patel", Role: "mental-health-adviser"}, DecidedAt: "2026-11-22T16:30:00Z", StudentInformed: "will-inform"}},
		{DecisionID: "d-other", Client: "cms-a", Institution: instA, CaseID: "CASE-3", Student: student("9990000042", ""), Outcome: "allow", Allow: true, Route: "consent",
			Rules: []gateway.RuleResult{{ID: "C-01", Effect: "allow", Message: "consent given"}}, Recipient: gateway.Recipient{Service: "u-cope", ODSCode: "RW4", Name: "U-COPE"}},
		{DecisionID: "d-b", Client: "cms-b", Institution: instB, CaseID: "CASE-B", Student: "x", Outcome: "deny", Route: "consent",
			Rules: []gateway.RuleResult{{ID: "C-02", Effect: "deny", Message: "expired"}}},
	}
	for i, e := range entries {
		b, _ := json.Marshal(e)
		if _, err := db.AppendDecision(ctx, gateway.DecisionRecord{Institution: e.Institution, DecisionID: e.DecisionID, At: auditT0.Add(time.Duration(i) * time.Minute), Body: b}); err != nil {
			t.Fatal(err)
		}
	}
	f.allowID, f.denyID, f.overrideID, f.otherID = "d-allow", "d-deny", "d-override", "d-b"
	hash := func(s string) string { return hashHex([]byte(s)) }
	creds := []Credential{
		{Client: gateway.Client{ID: "ig-a", Institution: instA, Roles: []string{gateway.RoleAuditor}}, TokenSHA256: hash(tokAuditA)},
		{Client: gateway.Client{ID: "ig-b", Institution: instB, Roles: []string{gateway.RoleAuditor}}, TokenSHA256: hash(tokAuditB)},
		{Client: gateway.Client{ID: "cms-a", Institution: instA, Roles: []string{gateway.RoleSubmitter}}, TokenSHA256: hash(tokSubmitA)},
	}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(f.logs), zap.DebugLevel))
	s := &Server{
		Intake: &gateway.Intake{Store: db, PseudonymKey: key},
		Auth:   NewAuthenticator(creds, false),
		Rules:  func() []gateway.PolicyRule { return fixtureRules },
		Logger: log,
		Now:    f.clock.now,
	}
	if tls {
		f.srv = httptest.NewTLSServer(s.Handler())
	} else {
		f.srv = httptest.NewServer(s.Handler())
	}
	t.Cleanup(f.srv.Close)
	return f
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (f *auditFixture) do(t *testing.T, method, path, token, ctype, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// ids lists the record ids of a page.
func pageIDs(t *testing.T, body string) []string {
	t.Helper()
	var p gateway.Page
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("not a page: %s", body)
	}
	var out []string
	for _, r := range p.Records {
		out = append(out, r.ID)
	}
	return out
}

// issue returns the first issue's expression and code of an
// OperationOutcome.
func issue(t *testing.T, body string) (expr, code string) {
	t.Helper()
	var oo struct {
		Issue []struct {
			Code       string
			Expression []string
		}
	}
	if err := json.Unmarshal([]byte(body), &oo); err != nil || len(oo.Issue) == 0 {
		t.Fatalf("not an OperationOutcome: %s", body)
	}
	if len(oo.Issue[0].Expression) > 0 {
		expr = oo.Issue[0].Expression[0]
	}
	return expr, oo.Issue[0].Code
}

// forgedCursor is base64url("v1:desc:9223372036854775807"): a descending
// cursor at the largest seq, far beyond any chain's head.
const forgedCursor = "djE6ZGVzYzo5MjIzMzcyMDM2ODU0Nzc1ODA3"

func TestAuditSearchAPI(t *testing.T) {
	f := newAuditFixture(t, false)
	tests := []struct {
		name, path, token string
		status            int
		ids               string // comma-joined record ids, newest first
		expr, code        string // for errors
	}{
		{"everything, newest first", "/v1/audit/decisions", tokAuditA, 200, "d-other,d-override,d-deny,d-allow", "", ""},
		{"chain order", "/v1/audit/decisions?order=asc", tokAuditA, 200, "d-allow,d-deny,d-override,d-other", "", ""},
		{"refused", "/v1/audit/decisions?outcome=deny", tokAuditA, 200, "d-override,d-deny", "", ""},
		{"a rule that refused", "/v1/audit/decisions?ruleId=C-02&effect=deny", tokAuditA, 200, "d-deny", "", ""},
		{"a rule cited", "/v1/audit/decisions?ruleId=C-02", tokAuditA, 200, "d-deny,d-allow", "", ""},
		{"a route", "/v1/audit/decisions?route=safeguarding", tokAuditA, 200, "d-override", "", ""},
		{"a recipient's ODS code", "/v1/audit/decisions?recipient=RVN", tokAuditA, 200, "d-override", "", ""},
		{"a case", "/v1/audit/decisions?caseId=CASE-1", tokAuditA, 200, "d-deny,d-allow", "", ""},
		{"dry runs", "/v1/audit/decisions?kind=dry-run", tokAuditA, 200, "d-override", "", ""},
		{"a time range", "/v1/audit/decisions?from=2026-11-23T12:01:00Z&to=2026-11-23T12:03:00Z", tokAuditA, 200, "d-override,d-deny", "", ""},
		{"a day in Europe/London", "/v1/audit/decisions?from=2026-11-23&to=2026-11-23", tokAuditA, 200, "d-other,d-override,d-deny,d-allow", "", ""},
		{"a day with none", "/v1/audit/decisions?from=2026-11-24", tokAuditA, 200, "", "", ""},
		{"one a page", "/v1/audit/decisions?limit=1", tokAuditA, 200, "d-other", "", ""},
		{"the other institution's own", "/v1/audit/decisions", tokAuditB, 200, "d-b", "", ""},
		{"an NHS number in the URL", "/v1/audit/decisions?nhsNumber=" + nhsA, tokAuditA, 422, "", "nhsNumber", "security"},
		{"a student id in the URL", "/v1/audit/decisions?studentId=S-2", tokAuditA, 422, "", "studentId", "security"},
		{"a parameter twice", "/v1/audit/decisions?outcome=deny&outcome=allow", tokAuditA, 422, "", "outcome", "value"},
		{"an unknown parameter", "/v1/audit/decisions?colour=red", tokAuditA, 422, "", "colour", "value"},
		{"a bad date", "/v1/audit/decisions?from=yesterday", tokAuditA, 422, "", "from", "value"},
		{"a bad outcome", "/v1/audit/decisions?outcome=maybe", tokAuditA, 422, "", "outcome", "value"},
		{"a bad limit", "/v1/audit/decisions?limit=lots", tokAuditA, 422, "", "limit", "value"},
		{"a forged cursor", "/v1/audit/decisions?cursor=abc", tokAuditA, 422, "", "cursor", "value"},
		// The penetration test's cursor: "v1:desc:9223372036854775807".
		{"a cursor far beyond the chain", "/v1/audit/decisions?order=desc&cursor=" + forgedCursor, tokAuditA, 422, "", "cursor", "value"},
		{"a cursor just beyond the chain", "/v1/audit/decisions?order=asc&cursor=djE6YXNjOjU", tokAuditA, 422, "", "cursor", "value"}, // v1:asc:5
		{"a cursor at the chain's head", "/v1/audit/decisions?order=asc&cursor=djE6YXNjOjQ", tokAuditA, 200, "", "", ""},              // v1:asc:4
		{"a submitter", "/v1/audit/decisions", tokSubmitA, 403, "", "", "forbidden"},
		{"no token", "/v1/audit/decisions", "", 401, "", "", "login"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := f.do(t, "GET", tt.path, tt.token, "", "")
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.status, tt.status, a.body)
			}
			if tt.status == 200 {
				if got := strings.Join(pageIDs(t, a.body), ","); got != tt.ids {
					t.Fatalf("records %s, want %s", got, tt.ids)
				}
				if a.header.Get("Cache-Control") != "no-store" {
					t.Error("an audit answer without Cache-Control: no-store")
				}
				return
			}
			expr, code := issue(t, a.body)
			if expr != tt.expr || code != tt.code {
				t.Fatalf("issue %s/%s, want %s/%s: %s", expr, code, tt.expr, tt.code, a.body)
			}
		})
	}
}

func TestAuditSearchByStudent(t *testing.T) {
	f := newAuditFixture(t, false)
	tests := []struct {
		name, body string
		status     int
		ids, expr  string
	}{
		{"NHS number", `{"nhsNumber":"943 476 5919"}`, 200, "d-deny,d-allow", ""},
		{"NHS number and a filter", `{"nhsNumber":"9434765919","outcome":"deny"}`, 200, "d-deny", ""},
		{"student id", `{"studentId":"S-2"}`, 200, "d-override", ""},
		{"both", `{"nhsNumber":"9434765919","studentId":"S-2","order":"asc"}`, 200, "d-allow,d-deny,d-override", ""},
		{"nobody", `{"studentId":"S-404"}`, 200, "", ""},
		{"an invalid NHS number", `{"nhsNumber":"9434765918"}`, 422, "", "nhsNumber"},
		{"an unknown member", `{"nhs":"9434765919"}`, 400, "", ""},
		{"an export format", `{"nhsNumber":"9434765919","format":"csv"}`, 422, "", "format"},
		{"not JSON", `{"nhsNumber":`, 400, "", ""},
		{"null", `null`, 422, "", ""},
		{"null with white space", " null\n", 422, "", ""},
		{"an array", `[{"nhsNumber":"9434765919"}]`, 422, "", ""},
		{"a string", `"9434765919"`, 422, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := f.do(t, "POST", "/v1/audit/decisions/$search", tokAuditA, "application/json", tt.body)
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.status, tt.status, a.body)
			}
			if tt.status == 200 {
				if got := strings.Join(pageIDs(t, a.body), ","); got != tt.ids {
					t.Fatalf("records %s, want %s", got, tt.ids)
				}
				return
			}
			if strings.Contains(a.body, "943476591") {
				t.Fatalf("the error echoes the NHS number: %s", a.body)
			}
			if expr, _ := issue(t, a.body); tt.expr != "" && expr != tt.expr {
				t.Fatalf("issue on %s, want %s", expr, tt.expr)
			}
		})
	}
	t.Run("the other institution cannot find the student", func(t *testing.T) {
		a := f.do(t, "POST", "/v1/audit/decisions/$search", tokAuditB, "application/json", `{"nhsNumber":"9434765919"}`)
		if a.status != 200 || len(pageIDs(t, a.body)) != 0 {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
	})
	t.Run("the logs hold no NHS number", func(t *testing.T) {
		logs := f.logs.String()
		if !strings.Contains(logs, `"route":"/v1/audit/decisions/$search"`) {
			t.Fatalf("the searches were not logged; the check would prove nothing:\n%s", logs)
		}
		if strings.Contains(logs, "943476591") || strings.Contains(logs, "943 476") || strings.Contains(logs, "S-2") {
			t.Fatalf("the logs hold a student identifier:\n%s", logs)
		}
	})
}

func TestAuditRecordAPI(t *testing.T) {
	f := newAuditFixture(t, false)
	tests := []struct {
		name, path, token string
		status            int
	}{
		{"a record", "/v1/audit/decisions/d-deny", tokAuditA, 200},
		{"by position", "/v1/audit/decisions/d-deny?seq=2", tokAuditA, 200},
		{"a wrong position", "/v1/audit/decisions/d-deny?seq=3", tokAuditA, 404},
		{"a bad position", "/v1/audit/decisions/d-deny?seq=x", tokAuditA, 422},
		{"an unknown parameter", "/v1/audit/decisions/d-deny?nhsNumber=9434765919", tokAuditA, 422},
		{"another institution's", "/v1/audit/decisions/d-b", tokAuditA, 404},
		{"a submitter", "/v1/audit/decisions/d-deny", tokSubmitA, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := f.do(t, "GET", tt.path, tt.token, "", "")
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.status, tt.status, a.body)
			}
			if a.status != 200 {
				return
			}
			var v struct {
				Record gateway.AuditRecord
				Rules  []gateway.PolicyRule
			}
			if err := json.Unmarshal([]byte(a.body), &v); err != nil {
				t.Fatal(err)
			}
			if v.Record.ID != "d-deny" || v.Record.Seq != 2 || v.Record.Decision.Rules[0].ID != "C-02" || len(v.Rules) != 1 || v.Rules[0].Title != "Consent must be valid" {
				t.Fatalf("record view %s", a.body)
			}
		})
	}
}

func TestAuditExportAPI(t *testing.T) {
	f := newAuditFixture(t, false)
	readCSV := func(t *testing.T, a answer) [][]string {
		t.Helper()
		rows, err := csv.NewReader(strings.NewReader(a.body)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	t.Run("CSV", func(t *testing.T) {
		a := f.do(t, "GET", "/v1/audit/export?format=csv&outcome=deny", tokAuditA, "", "")
		if a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/csv") || !strings.HasPrefix(a.header.Get("Content-Disposition"), `attachment; filename="decisions-10000001-`) {
			t.Fatalf("status %d, headers %v", a.status, a.header)
		}
		rows := readCSV(t, a)
		if len(rows) != 3 || rows[1][3] != "d-deny" || rows[2][3] != "d-override" || a.header.Get("X-Record-Count") != "2" {
			t.Fatalf("rows %v", rows)
		}
	})
	t.Run("FHIR", func(t *testing.T) {
		a := f.do(t, "GET", "/v1/audit/export?format=fhir", tokAuditA, "", "")
		var b struct {
			ResourceType string
			Entry        []struct{ Resource struct{ ResourceType string } }
		}
		if a.status != 200 || json.Unmarshal([]byte(a.body), &b) != nil || b.ResourceType != "Bundle" || len(b.Entry) != 4 || b.Entry[0].Resource.ResourceType != "AuditEvent" {
			t.Fatalf("status %d: %.300s", a.status, a.body)
		}
	})
	t.Run("one student's, posted", func(t *testing.T) {
		a := f.do(t, "POST", "/v1/audit/export", tokAuditA, "application/json", `{"nhsNumber":"9434765919","format":"csv"}`)
		rows := readCSV(t, a)
		if a.status != 200 || len(rows) != 3 || rows[1][3] != "d-allow" || rows[2][3] != "d-deny" {
			t.Fatalf("status %d, rows %v", a.status, rows)
		}
	})
	for _, tt := range []struct{ name, path string }{
		{"no format", "/v1/audit/export"},
		{"an unknown format", "/v1/audit/export?format=xml"},
		{"a student in the URL", "/v1/audit/export?format=csv&nhsNumber=9434765919"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if a := f.do(t, "GET", tt.path, tokAuditA, "", ""); a.status != 422 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
		})
	}
}

// tamper runs SQL on the store's file behind its back, with the append-only
// triggers lifted, as someone with access to the database could.
func tamper(t *testing.T, path string, queries ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range append([]string{"DROP TRIGGER IF EXISTS decision_records_no_update", "DROP TRIGGER IF EXISTS decision_records_no_delete"}, queries...) {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestAuditVerifyAPI(t *testing.T) {
	f := newAuditFixture(t, false)
	verify := func(token string) ChainStatus {
		t.Helper()
		a := f.do(t, "GET", "/v1/audit/verify", token, "", "")
		var st ChainStatus
		if a.status != 200 || json.Unmarshal([]byte(a.body), &st) != nil {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		return st
	}
	if st := verify(tokAuditA); !st.OK || st.Records != 4 || st.HeadSeq != 4 {
		t.Fatalf("before tampering: %+v", st)
	}
	tamper(t, f.path, `UPDATE decision_records SET body = replace(body, '"outcome":"deny"', '"outcome":"allow"') WHERE institution = '10000001' AND seq = 2`)
	st := verify(tokAuditA)
	if st.OK || st.BadSeq != 2 || st.Problem != "altered" || st.Records != 1 {
		t.Fatalf("after tampering: %+v", st)
	}
	if st := verify(tokAuditB); !st.OK {
		t.Fatalf("the other institution's chain: %+v", st)
	}
	if a := f.do(t, "GET", "/v1/audit/verify", tokSubmitA, "", ""); a.status != 403 {
		t.Fatalf("a submitter: status %d", a.status)
	}
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t    *testing.T
	f    *auditFixture
	c    *http.Client
	base *url.URL
}

func newBrowser(t *testing.T, f *auditFixture) *browser {
	jar, _ := cookiejar.New(nil)
	c := *f.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	u, _ := url.Parse(f.srv.URL + "/ui/")
	return &browser{t: t, f: f, c: &c, base: u}
}

func (b *browser) get(path string) answer {
	b.t.Helper()
	resp, err := b.c.Get(b.f.srv.URL + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(body)}
}

func (b *browser) post(path string, form url.Values, header ...string) answer {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.f.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(body)}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the CSRF token of the page's forms.
func (b *browser) csrf(page answer) string {
	b.t.Helper()
	m := csrfField.FindStringSubmatch(page.body)
	if m == nil {
		b.t.Fatalf("no CSRF field on the page: %.400s", page.body)
	}
	return m[1]
}

func (b *browser) cookie(name string) *http.Cookie {
	for _, c := range b.c.Jar.Cookies(b.base) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// signIn signs in with token and returns the decisions page.
func (b *browser) signIn(token string) answer {
	b.t.Helper()
	a := b.post("/ui/login", url.Values{"token": {token}, "csrf": {b.csrf(b.get("/ui/"))}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/decisions" {
		b.t.Fatalf("sign-in: status %d: %.400s", a.status, a.body)
	}
	return b.get("/ui/decisions")
}

// setCookie returns the Set-Cookie header of name in a.
func setCookie(a answer, name string) string {
	for _, c := range a.header.Values("Set-Cookie") {
		if strings.HasPrefix(c, name+"=") {
			return c
		}
	}
	return ""
}

func TestUISecurityHeaders(t *testing.T) {
	f := newAuditFixture(t, false)
	b := newBrowser(t, f)
	for _, path := range []string{"/ui/", "/ui/static/style.css"} {
		a := b.get(path)
		if a.status != 200 {
			t.Fatalf("%s: status %d", path, a.status)
		}
		for h, want := range map[string]string{
			"Content-Security-Policy": "default-src 'self'",
			"X-Frame-Options":         "DENY",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
		} {
			if !strings.Contains(a.header.Get(h), want) {
				t.Errorf("%s: %s is %q, want it to hold %q", path, h, a.header.Get(h), want)
			}
		}
		csp := a.header.Get("Content-Security-Policy")
		for _, d := range []string{"frame-ancestors 'none'", "script-src 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("%s: CSP %q lacks %s", path, csp, d)
			}
		}
	}
	if a := b.get("/ui/"); a.header.Get("Cache-Control") != "no-store" || a.header.Get("Strict-Transport-Security") != "" {
		t.Errorf("plain HTTP page headers %v", a.header)
	}
	page := b.get("/ui/").body
	for _, forbidden := range []string{"<script", "style=", "http://", "https://"} {
		if strings.Contains(page, forbidden) {
			t.Errorf("the sign-in page holds %q: no script, inline style or external asset", forbidden)
		}
	}
}

func TestUISignIn(t *testing.T) {
	tests := []struct {
		name   string
		form   func(b *browser) url.Values
		header []string
		status int
		says   string
	}{
		{"no CSRF token", func(b *browser) url.Values { return url.Values{"token": {tokAuditA}} }, nil, 403, "expired"},
		{"a wrong CSRF token", func(b *browser) url.Values { b.get("/ui/"); return url.Values{"token": {tokAuditA}, "csrf": {"x"}} }, nil, 403, "expired"},
		{"another site's form", func(b *browser) url.Values {
			return url.Values{"token": {tokAuditA}, "csrf": {b.csrf(b.get("/ui/"))}}
		}, []string{"Origin", "https://evil.example"}, 403, "expired"},
		{"no token", func(b *browser) url.Values { return url.Values{"csrf": {b.csrf(b.get("/ui/"))}} }, nil, 401, "Enter your access token"},
		{"an unknown token", func(b *browser) url.Values { return url.Values{"token": {"nope"}, "csrf": {b.csrf(b.get("/ui/"))}} }, nil, 401, "not accepted"},
		{"a submitter's token", func(b *browser) url.Values { return url.Values{"token": {tokSubmitA}, "csrf": {b.csrf(b.get("/ui/"))}} }, nil, 403, "not an IG auditor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAuditFixture(t, false)
			b := newBrowser(t, f)
			a := b.post("/ui/login", tt.form(b), tt.header...)
			if a.status != tt.status || !strings.Contains(a.body, tt.says) {
				t.Fatalf("status %d, want %d saying %q: %.600s", a.status, tt.status, tt.says, a.body)
			}
			if b.cookie(sessionCookie) != nil {
				t.Fatal("a session cookie was set")
			}
			if strings.Contains(f.logs.String(), tokAuditA) || strings.Contains(f.logs.String(), tokSubmitA) {
				t.Fatal("a token reached the log")
			}
		})
	}
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("an IG auditor, TLS %v", tls), func(t *testing.T) {
			f := newAuditFixture(t, tls)
			b := newBrowser(t, f)
			login := b.get("/ui/")
			a := b.post("/ui/login", url.Values{"token": {tokAuditA}, "csrf": {b.csrf(login)}})
			sc := setCookie(a, sessionCookie)
			if a.status != 303 || sc == "" {
				t.Fatalf("status %d, Set-Cookie %v", a.status, a.header.Values("Set-Cookie"))
			}
			for _, attr := range []string{"HttpOnly", "SameSite=Strict", "Path=/ui/"} {
				if !strings.Contains(sc, attr) {
					t.Errorf("session cookie %q lacks %s", sc, attr)
				}
			}
			if strings.Contains(sc, "Secure") != tls {
				t.Errorf("session cookie %q: Secure must be set exactly over TLS", sc)
			}
			if strings.Contains(sc, tokAuditA) || len(b.cookie(sessionCookie).Value) < 40 {
				t.Errorf("the session cookie must be an opaque random id: %q", sc)
			}
			if tls && b.get("/ui/decisions").header.Get("Strict-Transport-Security") == "" {
				t.Error("no HSTS over TLS")
			}
			page := b.get("/ui/decisions")
			if page.status != 200 || !strings.Contains(page.body, "Signed in as <strong>ig-a</strong>") {
				t.Fatalf("decisions: status %d: %.400s", page.status, page.body)
			}
			// A forged cursor is refused by the search, so the page starts
			// again at the newest record.
			if page := b.get("/ui/decisions?cursor=" + forgedCursor); page.status != 200 || !strings.Contains(page.body, "/ui/decisions/d-other") {
				t.Fatalf("decisions with a forged cursor: status %d: %.400s", page.status, page.body)
			}
		})
	}
}

func TestUISession(t *testing.T) {
	f := newAuditFixture(t, false)
	b := newBrowser(t, f)
	t.Run("pages need a session", func(t *testing.T) {
		for _, p := range []string{"/ui/decisions", "/ui/decisions/d-deny", "/ui/rules", "/ui/verify", "/ui/export?format=csv"} {
			if a := b.get(p); a.status != 303 || a.header.Get("Location") != "/ui/" {
				t.Errorf("%s: status %d to %q", p, a.status, a.header.Get("Location"))
			}
		}
		if a := b.post("/ui/decisions", url.Values{"outcome": {"deny"}}); a.status != 401 {
			t.Errorf("a filter without a session: status %d", a.status)
		}
	})
	page := b.signIn(tokAuditA)
	csrf := b.csrf(page)
	t.Run("a filter needs the CSRF token", func(t *testing.T) {
		if a := b.post("/ui/decisions", url.Values{"outcome": {"deny"}}); a.status != 403 {
			t.Fatalf("status %d", a.status)
		}
		if a := b.post("/ui/decisions", url.Values{"outcome": {"deny"}, "csrf": {csrf}}, "Sec-Fetch-Site", "cross-site"); a.status != 403 {
			t.Fatalf("cross-site: status %d", a.status)
		}
	})
	t.Run("a student search stays out of the URL and the page", func(t *testing.T) {
		a := b.post("/ui/decisions", url.Values{"nhsNumber": {"943 476 5919"}, "outcome": {"deny"}, "csrf": {csrf}})
		loc := a.header.Get("Location")
		if a.status != 303 || !strings.HasPrefix(loc, "/ui/decisions?q=") || strings.Contains(loc, "943") {
			t.Fatalf("status %d to %q", a.status, loc)
		}
		res := b.get(loc)
		if res.status != 200 || strings.Contains(res.body, "943") || !strings.Contains(res.body, "student filter on") {
			t.Fatalf("status %d: %.600s", res.status, res.body)
		}
		if !strings.Contains(res.body, "/ui/decisions/d-deny?seq=2") || strings.Contains(res.body, "d-allow") || strings.Contains(res.body, "d-override") {
			t.Fatalf("the results are not the student's refusals: %s", res.body)
		}
		exp := b.get("/ui/export?format=csv&" + strings.TrimPrefix(loc, "/ui/decisions?"))
		rows, err := csv.NewReader(strings.NewReader(exp.body)).ReadAll()
		if exp.status != 200 || err != nil || len(rows) != 2 || rows[1][3] != "d-deny" {
			t.Fatalf("export: status %d, rows %v", exp.status, rows)
		}
	})
	t.Run("an invalid NHS number is shown without echo", func(t *testing.T) {
		a := b.post("/ui/decisions", url.Values{"nhsNumber": {"1234567890"}, "csrf": {csrf}})
		if a.status != 422 || strings.Contains(a.body, "1234567890") || !strings.Contains(a.body, "not a valid NHS number") {
			t.Fatalf("status %d: %.600s", a.status, a.body)
		}
	})
	t.Run("a decision in plain English", func(t *testing.T) {
		a := b.get("/ui/decisions/d-override")
		for _, want := range []string{
			"Sharing without consent: safeguarding", "The policies refused this override", "No approver recorded", "Sam Patel (mental health adviser)",
			"Overrides need grounds, a decider and an approver", "Allowed only for a serious concern", "DHSC consensus statement 2021",
			"override.approvedBy is missing", "telling the student is delayed", "dry run",
		} {
			if !strings.Contains(a.body, want) {
				t.Errorf("the page lacks %q", want)
			}
		}
		if a := b.get("/ui/decisions/d-b"); a.status != 404 {
			t.Errorf("another institution's decision: status %d", a.status)
		}
	})
	t.Run("the rules and the trail", func(t *testing.T) {
		if a := b.get("/ui/rules"); !strings.Contains(a.body, "Consent must be valid") {
			t.Errorf("rules page: %.300s", a.body)
		}
		if a := b.get("/ui/verify"); !strings.Contains(a.body, "The trail is intact") {
			t.Errorf("verify page: %.300s", a.body)
		}
	})
	t.Run("an idle session ends", func(t *testing.T) {
		f.clock.add(uiIdle + time.Minute)
		if a := b.get("/ui/decisions"); a.status != 303 {
			t.Fatalf("status %d", a.status)
		}
	})
	t.Run("sign out ends the session", func(t *testing.T) {
		page := b.signIn(tokAuditA)
		old := b.cookie(sessionCookie).Value
		if a := b.post("/ui/logout", url.Values{"csrf": {b.csrf(page)}}); a.status != 303 {
			t.Fatalf("status %d", a.status)
		}
		jar, _ := cookiejar.New(nil)
		jar.SetCookies(b.base, []*http.Cookie{{Name: sessionCookie, Value: old, Path: "/ui/"}})
		b.c.Jar = jar
		if a := b.get("/ui/decisions"); a.status != 303 {
			t.Fatalf("the old session still works: status %d", a.status)
		}
	})
}
