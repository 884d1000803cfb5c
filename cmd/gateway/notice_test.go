package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/student-mh-referrals/gateway/gateway"
)

// deliver marks every queued message delivered, as a worker whose receiver
// answers 2xx would.
func deliver(t *testing.T, env *auditEnv) {
	t.Helper()
	ctx := context.Background()
	for {
		ms, err := env.store.Claim(ctx, "test", 10, afterSeed, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			return
		}
		for _, m := range ms {
			if err := env.store.RecordAttempt(ctx, m.ID, m.LeaseID, gateway.Attempt{Result: gateway.AttemptDelivered, At: afterSeed}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// noticeSeed is the shares of the notice tests.
type noticeSeed struct {
	consent, override, held, pending string // referral ids
	liverpool                        string // a delivered share of another institution
}

// seedNotices submits and delivers a consent share, an override whose
// student was told and one whose student must not yet be told (UWE), and a
// Liverpool share; then submits one more that stays queued.
func seedNotices(t *testing.T, env *auditEnv) noticeSeed {
	t.Helper()
	submit := func(token string, body []byte) string {
		t.Helper()
		a := call(t, env.srv, apiCall{method: "POST", path: "/v1/referrals", token: token, body: body})
		if a.status != 202 {
			t.Fatalf("submit: %d %s", a.status, a.body)
		}
		return a.json(t)["id"].(string)
	}
	var s noticeSeed
	s.consent = submit(uwe, readCase(t, "allow-uwe-bristol-awp-trusted-contact"))
	s.override = submit(uwe, readCase(t, "allow-uwe-safeguarding-override"))
	s.held = submit(uwe, variant(t, "allow-uwe-safeguarding-override",
		`"caseId": "UWE-WB-2026-00188"`, `"caseId": "UWE-WB-2026-00190"`,
		`"studentInformed": { "status": "informed" }`, `"studentInformed": { "status": "not-informed", "reasonDelayed": "Telling her now would put her at risk at home." }`))
	s.liverpool = submit(liverpool, readCase(t, "allow-liverpool-u-cope"))
	deliver(t, env)
	s.pending = submit(uwe, variant(t, "allow-uwe-bristol-awp-trusted-contact", `"caseId": "UWE-WB-2026-00123"`, `"caseId": "UWE-WB-2026-00199"`))
	return s
}

// TestStudentNoticeAPI drives T-01 over the wired API: the notice of a
// delivered share in JSON, text and HTML; the confirmation, on the referral
// and in the audit trail; and every refusal, each as an OperationOutcome.
func TestStudentNoticeAPI(t *testing.T) {
	env := newAuditEnv(t)
	s := seedNotices(t, env)
	get := func(token, id, accept string) apiAnswer {
		t.Helper()
		return call(t, env.srv, apiCall{method: "GET", path: "/v1/referrals/" + id + "/student-notice", token: token, accept: accept})
	}

	a := get(uwe, s.override, "")
	if a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
		t.Fatalf("the notice: %d %s", a.status, a.body)
	}
	var n gateway.StudentNotice
	if err := json.Unmarshal(a.body, &n); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Avon and Wiltshire Mental Health Partnership NHS Trust", "Article 6(1)(e)", "Article 21", "paragraph 18", "wellbeing@uwe.example.ac.uk", "without your agreement"} {
		if !strings.Contains(n.Text, want) || !strings.Contains(n.HTML, want) {
			t.Errorf("the notice's text and HTML should both say %q", want)
		}
	}
	if strings.Contains(n.Text, "Article 7(3)") || n.ReferralID != s.override || n.Route != "safeguarding" {
		t.Errorf("the override's notice: %+v", n)
	}
	if consent := get(uwe, s.consent, ""); consent.status != 200 || !strings.Contains(string(consent.body), "Article 7(3)") {
		t.Errorf("the consent share's notice: %d %s", consent.status, consent.body)
	}
	if txt := get(uwe, s.override, "text/plain"); txt.status != 200 || !strings.HasPrefix(txt.header.Get("Content-Type"), "text/plain") || string(txt.body) != n.Text {
		t.Errorf("text/plain: %d %q", txt.status, txt.header.Get("Content-Type"))
	}
	if html := get(uwe, s.override, "text/html;q=0.9, application/json;q=0.1"); html.status != 200 || !strings.Contains(string(html.body), n.HTML) || !strings.HasPrefix(html.header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("text/html: %d %s", html.status, html.body)
	}
	if aud := get(auditor, s.override, ""); aud.status != 200 {
		t.Errorf("the institution's IG auditor reads the notice: %d", aud.status)
	}

	// Another institution's referral is as unknown as one that never was.
	foreign, unknown := get(liverpool, s.override, ""), get(liverpool, "no-such-referral", "")
	if foreign.status != 404 || unknown.status != 404 || !sameOutcome(t, foreign.body, unknown.body) {
		t.Errorf("another institution's notice: %d %s; unknown: %d %s", foreign.status, foreign.body, unknown.status, unknown.body)
	}

	// Held back: said so, with the coded reason, never the record's words.
	held := get(uwe, s.held, "")
	if held.status != 409 || strings.Join(issueCodes(t, held.body), ",") != "not-informed,T-01" || strings.Contains(string(held.body), "at home") {
		t.Errorf("a held-back notice: %d %s", held.status, held.body)
	}
	if p := get(uwe, s.pending, ""); p.status != 409 || !strings.Contains(string(p.body), "not delivered") {
		t.Errorf("a share not yet delivered: %d %s", p.status, p.body)
	}

	// The referral document says where the notice stands.
	doc := func(id string) map[string]any {
		return call(t, env.srv, apiCall{method: "GET", path: "/v1/referrals/" + id, token: uwe}).json(t)
	}
	if d := doc(s.held); d["studentNotice"] != "held-back" || d["studentInformed"] != nil {
		t.Errorf("the held share's document: %v", d)
	}
	if d := doc(s.pending); d["studentNotice"] != nil {
		t.Errorf("a queued share's document: %v", d)
	}

	// Confirm: recorded on the referral and in the trail; the same again
	// answers the same; another time or method is a conflict.
	inform := func(token, id, ctype, body string) apiAnswer {
		return call(t, env.srv, apiCall{method: "POST", path: "/v1/referrals/" + id + "/$student-informed", token: token, ctype: ctype, body: []byte(body)})
	}
	ok := `{"at": "2026-11-23T12:00:59Z", "method": "letter"}`
	for range 2 {
		if a := inform(uwe, s.consent, "", ok); a.status != 200 {
			t.Fatalf("confirm: %d %s", a.status, a.body)
		}
	}
	d := doc(s.consent)
	if si, _ := d["studentInformed"].(map[string]any); si["method"] != "letter" || si["at"] != "2026-11-23T12:00:59Z" || d["studentNotice"] != "available" {
		t.Errorf("the document after confirming: %v", d)
	}
	if a := inform(uwe, s.consent, "", `{"at": "2026-11-23T12:00:58Z", "method": "letter"}`); a.status != 409 || !strings.Contains(string(a.body), "already recorded") {
		t.Errorf("a second, different confirmation: %d %s", a.status, a.body)
	}
	trail := call(t, env.srv, apiCall{method: "GET", path: "/v1/audit/decisions?kind=action", token: auditor})
	var p gateway.Page
	if err := json.Unmarshal(trail.body, &p); err != nil {
		t.Fatal(err)
	}
	told := 0
	for _, r := range p.Records {
		if r.Action != nil && r.Action.Action == gateway.ActionStudentInformed {
			told++
			if r.Action.ReferralID != s.consent || r.Action.Reason != "letter" || r.Action.InformedAt != "2026-11-23T12:00:59Z" || r.Action.By != "uwe-cms" {
				t.Errorf("the action record: %+v", r.Action)
			}
		}
	}
	if told != 1 {
		t.Errorf("%d student-informed actions in the trail, want 1 (the repeat records nothing)", told)
	}
	for format, want := range map[string]string{"csv": "letter 2026-11-23T12:00:59Z", "fhir": `"informed-at"`} {
		if e := call(t, env.srv, apiCall{method: "GET", path: "/v1/audit/export?format=" + format + "&kind=action", token: auditor}); e.status != 200 || !strings.Contains(string(e.body), want) {
			t.Errorf("the %s export does not show how and when the student was told (%q): %d %s", format, want, e.status, e.body)
		}
	}
	// Telling the student of a held-back share releases its notice.
	if a := inform(uwe, s.held, "", `{"at": "2026-11-23T12:00:59Z", "method": "in-person"}`); a.status != 200 {
		t.Errorf("confirm a held-back share: %d %s", a.status, a.body)
	}
	if a := get(uwe, s.held, ""); a.status != 200 {
		t.Errorf("the notice once the student was told: %d %s", a.status, a.body)
	}

	for _, tt := range []struct {
		name, token, id, ctype, body string
		status                       int
		expr                         string
	}{
		{"unknown method", uwe, s.override, "", `{"at": "2026-11-23T12:00:59Z", "method": "carrier-pigeon"}`, 422, "method"},
		{"a time in the future", uwe, s.override, "", `{"at": "2026-11-23T13:00:00Z", "method": "email"}`, 422, "at"},
		{"before the share", uwe, s.override, "", `{"at": "2026-11-22T12:00:00Z", "method": "email"}`, 422, "at"},
		{"not an instant", uwe, s.override, "", `{"at": "yesterday", "method": "email"}`, 422, "at"},
		{"a time without a zone", uwe, s.override, "", `{"at": "2026-11-23T12:00:59", "method": "email"}`, 422, "at"},
		{"missing fields", uwe, s.override, "", `{}`, 422, "at,method"},
		{"not an object", uwe, s.override, "", `["letter"]`, 422, ""},
		{"null", uwe, s.override, "", `null`, 422, ""},
		{"malformed JSON", uwe, s.override, "", `{"at": `, 400, ""},
		{"unknown member", uwe, s.override, "", `{"at": "2026-11-23T12:00:59Z", "method": "email", "note": "told her in the corridor"}`, 400, ""},
		{"two objects", uwe, s.override, "", ok + ok, 400, ""},
		{"wrong media type", uwe, s.override, "text/plain", ok, 415, ""},
		{"never delivered", uwe, s.pending, "", ok, 409, ""},
		{"unknown referral", uwe, "no-such-referral", "", ok, 404, ""},
		{"another institution's", liverpool, s.override, "", ok, 404, ""},
		{"an IG auditor", auditor, s.override, "", ok, 403, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := inform(tt.token, tt.id, tt.ctype, tt.body)
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.status, tt.status, a.body)
			}
			if exprs := issueExpressions(t, a.body); tt.expr != "" && strings.Join(exprs, ",") != tt.expr {
				t.Errorf("issues name %q, want %q", exprs, tt.expr)
			}
		})
	}
	if d := doc(s.override); d["studentInformed"] != nil {
		t.Errorf("a refused confirmation was recorded: %v", d)
	}
}

// sameOutcome says two OperationOutcomes carry the same issues.
func sameOutcome(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y struct{ Issue any }
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && fmt.Sprint(x) == fmt.Sprint(y)
}

func issueExpressions(t *testing.T, body []byte) []string {
	t.Helper()
	var oo struct {
		ResourceType string
		Issue        []struct{ Expression []string }
	}
	if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" {
		t.Fatalf("not an OperationOutcome: %s", body)
	}
	var out []string
	for _, is := range oo.Issue {
		out = append(out, is.Expression...)
	}
	return out
}

// sentinelPaths are the free-text fields of a case record: a notice must
// hold none of them (T-01 is built from the decision, the registry and the
// configuration).
var sentinelPaths = []string{
	"institution.name", "referrer.name", "referrer.email", "referrer.phone",
	"student.name.given.0", "student.name.family", "student.studentId", "student.contact.email", "student.contact.phone",
	"student.address.lines.0", "student.address.city", "student.address.postcode", "student.gpPractice.name",
	"student.trustedContact.name", "student.trustedContact.relationship", "student.trustedContact.phone",
	"student.safeContact.instructions",
	"referral.presentingNeeds.0.text", "referral.presentingNeeds.1.text", "referral.summary", "referral.riskFormulation",
	"referral.riskAssessment.reference", "referral.riskAssessment.tool", "referral.riskAssessment.level",
	"referral.currentSupport.0", "referral.studentWishes", "consent.recordedBy",
	"override.grounds", "override.consentSought.reason", "override.decidedBy.name", "override.approvedBy.name",
	"override.studentInformed.reasonDelayed",
}

// TestStudentNoticeHoldsNoFreeText posts a record with a sentinel in every
// free-text field and reads its notice in every form: no sentinel is there.
func TestStudentNoticeHoldsNoFreeText(t *testing.T) {
	env := newAuditEnv(t)
	var rec map[string]any
	if err := json.Unmarshal(readCase(t, "allow-uwe-safeguarding-override"), &rec); err != nil {
		t.Fatal(err)
	}
	student := rec["student"].(map[string]any)
	student["gpPractice"].(map[string]any)["name"] = ""
	student["safeContact"] = map[string]any{"instructions": ""}
	rec["override"].(map[string]any)["studentInformed"] = map[string]any{"status": "will-inform", "reasonDelayed": ""}
	for i, path := range sentinelPaths {
		setPath(t, rec, path, "Zqxsentinel "+strconv.Itoa(i))
	}
	body, _ := json.Marshal(rec)
	a := call(t, env.srv, apiCall{method: "POST", path: "/v1/referrals", token: uwe, body: body})
	if a.status != 202 {
		t.Fatalf("submit: %d %s", a.status, a.body)
	}
	id := a.json(t)["id"].(string)
	deliver(t, env)
	for _, accept := range []string{"", "text/plain", "text/html"} {
		n := call(t, env.srv, apiCall{method: "GET", path: "/v1/referrals/" + id + "/student-notice", token: uwe, accept: accept})
		if n.status != 200 {
			t.Fatalf("the notice (%s): %d %s", accept, n.status, n.body)
		}
		if i := strings.Index(strings.ToLower(string(n.body)), "zqxsentinel"); i >= 0 {
			t.Errorf("the notice (%s) holds free text from the record: …%s…", cmp.Or(accept, "JSON"), n.body[max(0, i-40):min(len(n.body), i+20)])
		}
		if !strings.Contains(string(n.body), "University of the West of England") {
			t.Errorf("the notice (%s) does not name the university as configured", accept)
		}
	}
}

// setPath sets a dotted path (numbers index arrays) of a decoded JSON
// document; the path must exist but for its last member.
func setPath(t *testing.T, doc map[string]any, path string, v string) {
	t.Helper()
	parts := strings.Split(path, ".")
	var cur any = doc
	for i, p := range parts {
		last := i == len(parts)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				c[p] = v
				return
			}
			cur = c[p]
		case []any:
			k, err := strconv.Atoi(p)
			if err != nil || k >= len(c) {
				t.Fatalf("%s: no element %s", path, p)
			}
			if last {
				c[k] = v
				return
			}
			cur = c[k]
		default:
			t.Fatalf("%s: %s is not in the record", path, p)
		}
	}
}

// TestNoticesInBrowser drives the page an IG lead reviews T-01 on: the
// delivered shares whose student is not yet told, oldest first, and apart
// from them the notices held back, with their coded reasons; and the
// decision page of each says where telling the student stands.
func TestNoticesInBrowser(t *testing.T) {
	ctx := browserContext(t)
	env := newAuditEnv(t)
	s := seedNotices(t, env)
	a := call(t, env.srv, apiCall{method: "POST", path: "/v1/referrals/" + s.consent + "/$student-informed", token: uwe, body: []byte(`{"at": "2026-11-23T12:00:59Z", "method": "letter"}`)})
	if a.status != 200 {
		t.Fatalf("confirm: %d %s", a.status, a.body)
	}
	must(t, ctx, "sign in",
		chromedp.Navigate(env.srv.URL+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SetValue(chromedp.ID("token"), auditor), chromedp.Click(chromedp.CSS(`form button[type="submit"]`)))
	waitFor(t, ctx, "the decisions page", `document.getElementById('filter-heading') !== null`)
	must(t, ctx, "open the notices page", chromedp.Click(chromedp.CSS(`nav a[href="/ui/notices"]`)))
	waitFor(t, ctx, "the notices page", `document.getElementById('held-heading') !== null`)

	rows := func(table int) []string {
		return eval[[]string](t, ctx, `Array.from(document.querySelectorAll('table.untold')[`+strconv.Itoa(table)+`].querySelectorAll('tbody tr')).map(r => r.innerText.replace(/\s+/g, ' '))`)
	}
	untold, held := rows(0), rows(1)
	if len(untold) != 1 || !strings.Contains(untold[0], "UWE-WB-2026-00188") || !strings.Contains(untold[0], "Override: safeguarding") {
		t.Errorf("not yet told: %q (want the override alone: the consent share is confirmed, the queued one not delivered, Liverpool's not ours)", untold)
	}
	if len(held) != 1 || !strings.Contains(held[0], "UWE-WB-2026-00190") || !strings.Contains(held[0], "not-informed") || !strings.Contains(held[0], "T-01") {
		t.Errorf("held back: %q", held)
	}
	if got := eval[string](t, ctx, `document.getElementById('untold-count').innerText + '/' + document.getElementById('held-count').innerText`); got != "1/1" {
		t.Errorf("the counts: %s", got)
	}
	if text := eval[string](t, ctx, `document.querySelector('main').innerText`); strings.Contains(text, "at home") {
		t.Error("the page shows the record's reason for the delay, which is free text")
	}
	checkAccessible(t, ctx, "notices page")
	screenshot(t, ctx, "ui-notices.png")

	must(t, ctx, "open the held-back share", chromedp.Click(chromedp.CSS(`section[aria-labelledby="held-heading"] table a`)))
	waitFor(t, ctx, "its decision", `document.getElementById('student-told') !== null`)
	if got := eval[string](t, ctx, `document.getElementById('student-told').innerText`); !strings.Contains(got, "held back") || !strings.Contains(got, "T-01") {
		t.Errorf("the held-back share's decision page says %q", got)
	}
	checkAccessible(t, ctx, "decision page of a held-back share")

	d := call(t, env.srv, apiCall{method: "GET", path: "/v1/referrals/" + s.consent, token: uwe}).json(t)
	must(t, ctx, "open the told share", chromedp.Navigate(env.srv.URL+"/ui/decisions/"+d["decisionId"].(string)), chromedp.WaitVisible(chromedp.ID("student-told")))
	if got := eval[string](t, ctx, `document.getElementById('student-told').innerText`); got != "Yes, at 23 Nov 2026 12:00:59, by letter" {
		t.Errorf("the told share's decision page says %q", got)
	}
}
