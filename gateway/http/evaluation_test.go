package http

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

const (
	tokEvaluator = "token-evaluator"
	secretPseudo = "pseudonym-never-shown"
)

// factsSource is a store's evaluation facts, fixed.
type factsSource gateway.EvaluationFacts

func (f factsSource) EvaluationFacts(_ context.Context, institutions []string, from, to time.Time) (gateway.EvaluationFacts, error) {
	out := gateway.EvaluationFacts{ReturnPath: true}
	for _, c := range f.Cases {
		if strings.Contains(strings.Join(institutions, ","), c.Institution) && !c.ReferredAt.Before(from) && c.ReferredAt.Before(to) {
			out.Cases = append(out.Cases, c)
		}
	}
	return out, nil
}

// newEvaluationFixture serves the figures of 20 accepted referrals of
// institution A to u-cope in October 2026 and 9 refusals of institution B
// to bristol-awp in November, to A's IG auditor and to the evaluator of a
// partnership of both.
func newEvaluationFixture(t *testing.T) *auditFixture {
	var facts factsSource
	for i := range 29 {
		c := gateway.CaseFacts{Institution: instA, Service: "u-cope", Student: secretPseudo, ReferredAt: time.Date(2026, 10, 1+i, 10, 0, 0, 0, time.UTC),
			Allowed: true, Route: "consent", Categories: []string{"demographics"}, Outcome: gateway.OutcomeAccepted}
		c.AcknowledgedAt = c.ReferredAt.Add(time.Duration(i) * time.Hour)
		c.AcceptedAt = c.AcknowledgedAt
		if i >= 20 {
			c = gateway.CaseFacts{Institution: instB, Service: "bristol-awp", ReferredAt: time.Date(2026, 11, i-18, 10, 0, 0, 0, time.UTC),
				Route: "consent", RefusedBy: []string{"C-02"}, Outcome: gateway.OutcomeRefused}
		}
		facts.Cases = append(facts.Cases, c)
	}
	hash := func(s string) string { return hashHex([]byte(s)) }
	creds := []Credential{
		{Client: gateway.Client{ID: "ig-a", Institution: instA, Roles: []string{gateway.RoleAuditor}}, TokenSHA256: hash(tokAuditA)},
		{Client: gateway.Client{ID: "cms-a", Institution: instA, Roles: []string{gateway.RoleSubmitter}}, TokenSHA256: hash(tokSubmitA)},
		{Client: gateway.Client{ID: "eval", Partnership: "p", Roles: []string{gateway.RolePartnershipEvaluator}}, TokenSHA256: hash(tokEvaluator)},
	}
	s := &Server{
		Intake: &gateway.Intake{},
		Auth:   NewAuthenticator(creds, false),
		Evaluations: &gateway.Evaluations{Source: facts, Services: []string{"u-cope", "bristol-awp", "icope-camden"},
			Partnerships: []gateway.Partnership{{ID: "p", Name: "Partnership P", Institutions: []string{instA, instB}, Services: []string{"u-cope", "bristol-awp"}}}},
		Now: func() time.Time { return auditT0 },
	}
	f := &auditFixture{srv: httptest.NewServer(s.Handler())}
	t.Cleanup(f.srv.Close)
	return f
}

func TestEvaluationAPI(t *testing.T) {
	f := newEvaluationFixture(t)
	tests := []struct {
		name, token, query, accept string
		status                     int
		contains, absent           []string
	}{
		{"auditor: own institution only", tokAuditA, "?from=2026-10-01&to=2026-12-01", "", 200,
			[]string{`"institutions": [` + "\n" + `      "10000001"`, `"period": "2026-10"`, `"display": "20"`}, []string{instB, secretPseudo, `"unavailable"`}},
		{"evaluator: the partnership", tokEvaluator, "?from=2026-10-01&to=2026-12-01&groupBy=quarter", "", 200,
			[]string{`"partnership": "p"`, `"institution": "10000002"`, `"period": "2026-Q4"`, `"name": "C-02"`}, []string{secretPseudo, "icope-camden"}},
		{"CSV on request", tokEvaluator, "?from=2026-10-01&to=2026-12-01", "text/csv", 200,
			[]string{"period,institution,service,figure,breakdown,value,display\n", "2026-11,10000002,all,refused,,10,10\n"}, []string{secretPseudo}},
		{"a submitter is refused", tokSubmitA, "", "", 403, nil, nil},
		{"no token", "", "", "", 401, nil, nil},
		{"a service outside the scope", tokEvaluator, "?service=icope-camden", "", 422, []string{"service"}, nil},
		{"a bad grouping", tokAuditA, "?groupBy=week", "", 422, []string{"groupBy"}, nil},
		{"a bad date", tokAuditA, "?from=1%2F10%2F2026", "", 422, []string{"from"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", f.srv.URL+"/v1/evaluation"+tc.query, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			body := string(raw)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, tc.status, body)
			}
			for _, s := range tc.contains {
				if !strings.Contains(body, s) {
					t.Errorf("no %q in %.600s", s, body)
				}
			}
			for _, s := range tc.absent {
				if strings.Contains(body, s) {
					t.Errorf("%q in the answer", s)
				}
			}
			if tc.status == 200 && tc.accept == "" && !json.Valid([]byte(body)) {
				t.Error("not JSON")
			}
		})
	}
}

// TestEvaluationPage: an evaluator signs in to the figures (and nothing
// else); the page draws its charts as SVG with text alternatives beside
// tables of the same numbers, under the page's CSP.
func TestEvaluationPage(t *testing.T) {
	f := newEvaluationFixture(t)
	b := newBrowser(t, f)
	a := b.post("/ui/login", url.Values{"token": {tokEvaluator}, "csrf": {b.csrf(b.get("/ui/"))}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/evaluation" {
		t.Fatalf("evaluator sign-in: %d to %q", a.status, a.header.Get("Location"))
	}
	page := b.get("/ui/evaluation?from=2026-10-01&to=2026-12-01&groupBy=month")
	if page.status != 200 || !strings.Contains(page.header.Get("Content-Security-Policy"), "script-src 'none'") {
		t.Fatalf("page %d, CSP %q", page.status, page.header.Get("Content-Security-Policy"))
	}
	for _, s := range []string{
		`<svg class="chart" id="outcome-chart"`, `role="img" aria-labelledby="route-chart-t route-chart-d"`, `id="rule-chart"`, `id="wait-chart"`,
		`<table class="figures" id="outcomes">`, `<th scope="row">2026-10</th>`, "partnership p", "Partnership P",
		"url(#p-diag)", ">C-02<", `<th scope="col">accepted</th>`, ">accepted</text>",
	} {
		if !strings.Contains(page.body, s) {
			t.Errorf("page lacks %q", s)
		}
	}
	// Outcomes no case reached have no column and no legend.
	for _, s := range []string{`href="/ui/decisions"`, "<script", secretPseudo, `style="`, `<th scope="col">discharged</th>`, ">awaiting-delivery</text>", "Not available"} {
		if strings.Contains(page.body, s) {
			t.Errorf("page holds %q", s)
		}
	}
	for _, page := range []string{"/ui/decisions", "/ui/notices"} {
		if d := b.get(page); d.status != http.StatusForbidden {
			t.Errorf("an evaluator reads %s: %d", page, d.status)
		}
	}
	csv := b.get("/ui/evaluation?from=2026-10-01&to=2026-12-01&format=csv")
	if csv.status != 200 || !strings.HasPrefix(csv.header.Get("Content-Disposition"), "attachment;") || !strings.HasPrefix(csv.body, "period,") {
		t.Errorf("CSV download: %d %q %.80s", csv.status, csv.header.Get("Content-Disposition"), csv.body)
	}
	// An IG auditor still starts on the decisions, with the new tab.
	auditor := newBrowser(t, f)
	a = auditor.post("/ui/login", url.Values{"token": {tokAuditA}, "csrf": {auditor.csrf(auditor.get("/ui/"))}})
	if a.header.Get("Location") != "/ui/decisions" {
		t.Fatalf("auditor sign-in to %q", a.header.Get("Location"))
	}
	if p := auditor.get("/ui/evaluation"); p.status != 200 || !strings.Contains(p.body, `href="/ui/decisions"`) || !strings.Contains(p.body, "UKPRN 10000001; services: u-cope, bristol-awp, icope-camden") {
		t.Errorf("auditor's page: %d %.300s", p.status, p.body)
	}
}
