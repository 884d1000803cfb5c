package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/student-mh-referrals/gateway/fhirvalidator"
)

// Target is the gateway under test: a base URL, or a handler served
// in-process (no socket).
type Target struct {
	// URL is the gateway's base URL, e.g. http://127.0.0.1:8080.
	URL string
	// Handler, when URL is empty, is the API itself.
	Handler http.Handler
	// Client sends the requests; nil uses one with a 30 s timeout.
	Client *http.Client
	// Token returns the bearer token of a client of the institution
	// (UKPRN); false skips the scenario. $evaluate answers only for the
	// client's own institution.
	Token func(institution string) (string, bool)
}

// Options adjust a run or a receiver check.
type Options struct {
	// Validator checks every Bundle of an allowed answer; nil uses
	// fhirvalidator.Builtin().
	Validator *fhirvalidator.Validator
	// Progress is told of each case as it finishes (Printer.Case).
	Progress func(Case)
}

// maxAnswer bounds what is read of one answer.
const maxAnswer = 8 << 20

// Run posts each scenario to the target's POST /v1/referrals/$evaluate and
// checks the answer. It stops early only when ctx ends.
func Run(ctx context.Context, scenarios []Scenario, t Target, o Options) *Report {
	name := strings.TrimRight(t.URL, "/")
	client := t.Client
	if t.URL == "" {
		name = "in-process"
		client = &http.Client{Transport: handlerTransport{t.Handler}}
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Validator == nil {
		o.Validator = fhirvalidator.Builtin()
	}
	base := strings.TrimRight(t.URL, "/")
	if base == "" {
		base = "http://gateway.invalid"
	}
	r := newReport("run", name)
	for _, s := range scenarios {
		if ctx.Err() != nil {
			break
		}
		c := runScenario(ctx, client, base, t.Token, s, o.Validator)
		r.Cases = append(r.Cases, c)
		if o.Progress != nil {
			o.Progress(c)
		}
	}
	r.Duration = time.Since(r.Started)
	return r
}

// handlerTransport serves requests with a handler in-process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.h == nil {
		return nil, errors.New("no target: give a URL or a handler")
	}
	rec := httptest.NewRecorder()
	req = req.Clone(req.Context())
	req.RequestURI = req.URL.RequestURI()
	req.RemoteAddr = "127.0.0.1:0"
	if req.Body == nil {
		req.Body = http.NoBody
	}
	t.h.ServeHTTP(rec, req)
	return rec.Result(), nil
}

// answer is what $evaluate returns: the evaluation document, or an
// OperationOutcome for errors outside it (401, 403, 413, 415).
type answer struct {
	Outcome          string          `json:"outcome"`
	Decision         *decision       `json:"decision"`
	Bundle           json.RawMessage `json:"bundle"`
	OperationOutcome json.RawMessage `json:"operationOutcome"`
	ResourceType     string          `json:"resourceType"`
	Issue            []outcomeIssue  `json:"issue"`
}

// decision is what the suite reads of a decision.
type decision struct {
	ID    string `json:"id"`
	Allow *bool  `json:"allow"`
	Route string `json:"route"`
	Rules []struct {
		ID      string `json:"id"`
		Effect  string `json:"effect"`
		Message string `json:"message"`
	} `json:"rules"`
	Obligations []struct {
		Type       string   `json:"type"`
		Rule       string   `json:"rule"`
		Categories []string `json:"categories"`
		Fields     []string `json:"fields"`
	} `json:"obligations"`
	LawfulBases    map[string]string `json:"lawfulBases"`
	DataCategories []string          `json:"dataCategories"`
	Recipient      struct {
		Service string `json:"service"`
	} `json:"recipient"`
	Time string `json:"time"`
}

// outcomeIssue is what the suite reads of an OperationOutcome issue.
type outcomeIssue struct {
	Severity   string   `json:"severity"`
	Code       string   `json:"code"`
	Expression []string `json:"expression"`
	Details    *struct {
		Coding []struct {
			System string `json:"system"`
			Code   string `json:"code"`
		} `json:"coding"`
	} `json:"details"`
}

func runScenario(ctx context.Context, client *http.Client, base string, tokens func(string) (string, bool), s Scenario, v *fhirvalidator.Validator) (c Case) {
	start := time.Now()
	c = Case{Name: s.Name, Description: s.Description}
	defer func() { c.finish(start) }()
	token := ""
	if tokens != nil {
		t, ok := tokens(s.Institution)
		if !ok {
			c.Status, c.Reason = Skip, "no token for institution "+s.Institution
			return c
		}
		token = t
	}
	u := base + "/v1/referrals/$evaluate?at=" + url.QueryEscape(s.At)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(s.Request))
	if err != nil {
		c.Reason = err.Error()
		return c
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		c.Reason = "no answer: " + err.Error()
		return c
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		c.Reason = "reading the answer: " + err.Error()
		return c
	}
	c.Checks = checkAnswer(s, resp, body, v)
	return c
}

// checkAnswer turns the expectations into checks on one answer.
func checkAnswer(s Scenario, resp *http.Response, body []byte, v *fhirvalidator.Validator) []Check {
	var checks []Check
	add := func(name string, ok bool, msg string) {
		if ok {
			msg = ""
		}
		checks = append(checks, Check{Name: name, OK: ok, Message: msg})
	}
	e := s.Expect
	want := e.Status
	if want == 0 {
		want = http.StatusOK
		if e.Outcome == "invalid" {
			want = http.StatusUnprocessableEntity
		}
	}
	add(fmt.Sprintf("status %d", want), resp.StatusCode == want, fmt.Sprintf("got %d", resp.StatusCode))
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var a answer
	if err := json.Unmarshal(body, &a); err != nil || !strings.HasSuffix(mt, "json") {
		add("the answer is JSON", false, fmt.Sprintf("Content-Type %q, %d bytes", resp.Header.Get("Content-Type"), len(body)))
		return checks
	}
	if e.Outcome != "" {
		add("outcome "+e.Outcome, a.Outcome == e.Outcome, "got "+quoted(a.Outcome))
	}
	d := a.Decision
	needDecision := e.Allow != nil || e.Route != "" || e.Service != "" || e.Rules.Deny != nil ||
		len(e.Rules.Allow) > 0 || len(e.Rules.Obligation) > 0 || len(e.Oblige) > 0 ||
		e.DataCategories != nil || len(e.LawfulBases) > 0 || len(e.Messages) > 0 ||
		e.Outcome == "allow" || e.Outcome == "deny"
	if needDecision {
		add("the answer has a decision", d != nil, "no decision in the answer")
	}
	if d != nil && needDecision {
		checks = append(checks, checkDecision(s, d)...)
	}
	hasBundle := len(a.Bundle) > 0 && string(a.Bundle) != "null"
	switch e.Outcome {
	case "allow":
		add("an allowed answer carries the Bundle", hasBundle, "no bundle in the answer")
	case "deny", "invalid":
		add("no Bundle when not allowed", !hasBundle, "the answer carries a Bundle")
	}
	if hasBundle {
		// Every Bundle that comes back is validated, whatever the scenario
		// expected: it is what an NHS service would receive.
		checks = append(checks, checkBundle(s, a.Bundle, v)...)
	}
	if len(e.Issues) > 0 {
		checks = append(checks, checkIssues(e.Issues, a)...)
	}
	return checks
}

func checkDecision(s Scenario, d *decision) []Check {
	var checks []Check
	add := func(name string, ok bool, msg string) {
		if ok {
			msg = ""
		}
		checks = append(checks, Check{Name: name, OK: ok, Message: msg})
	}
	e := s.Expect
	at, _ := time.Parse(time.RFC3339, s.At)
	add("decision time is at", d.Time == at.UTC().Format(time.RFC3339), "got "+quoted(d.Time))
	allowed := d.Allow != nil && *d.Allow
	if e.Allow != nil {
		add(fmt.Sprintf("allow %t", *e.Allow), d.Allow != nil && allowed == *e.Allow, fmt.Sprintf("got %t", allowed))
	}
	if e.Outcome == "allow" || e.Outcome == "deny" {
		add("decision.allow agrees with the outcome", allowed == (e.Outcome == "allow"), fmt.Sprintf("allow is %t", allowed))
	}
	if e.Route != "" {
		add("route "+e.Route, d.Route == e.Route, "got "+quoted(d.Route))
	}
	if e.Service != "" {
		add("recipient "+e.Service, d.Recipient.Service == e.Service, "got "+quoted(d.Recipient.Service))
	}
	effects := map[string]string{}
	var denied []string
	for _, r := range d.Rules {
		effects[r.ID] = r.Effect
		if r.Effect == "deny" {
			denied = append(denied, r.ID)
		}
	}
	slices.Sort(denied)
	if e.Rules.Deny != nil {
		want := slices.Clone(e.Rules.Deny)
		slices.Sort(want)
		add("denied by exactly ["+strings.Join(want, ", ")+"]", slices.Equal(denied, want), "denied by ["+strings.Join(denied, ", ")+"]")
	}
	if e.Outcome == "allow" {
		add("no rule denies an allowed share", len(denied) == 0, "denied by ["+strings.Join(denied, ", ")+"]")
	}
	for _, id := range e.Rules.Allow {
		eff := effects[id]
		add(id+" checked and passed", eff == "allow" || eff == "obligation", effectText(eff))
	}
	for _, id := range e.Rules.Obligation {
		eff := effects[id]
		add(id+" imposed an obligation", eff == "obligation", effectText(eff))
	}
	for _, want := range e.Oblige {
		found := false
		for _, o := range d.Obligations {
			if o.Type == want.Type && o.Rule == want.Rule &&
				(want.Categories == nil || slices.Equal(o.Categories, want.Categories)) &&
				(want.Fields == nil || slices.Equal(o.Fields, want.Fields)) {
				found = true
			}
		}
		name := "obligation " + want.Type + " (" + want.Rule + ")"
		if want.Categories != nil {
			name += " [" + strings.Join(want.Categories, ", ") + "]"
		}
		if want.Fields != nil {
			name += " [" + strings.Join(want.Fields, ", ") + "]"
		}
		var have []string
		for _, o := range d.Obligations {
			have = append(have, o.Type+" ("+o.Rule+")")
		}
		add(name, found, "the decision's obligations: "+strings.Join(have, ", "))
	}
	if e.DataCategories != nil {
		add("data categories ["+strings.Join(e.DataCategories, ", ")+"]", slices.Equal(d.DataCategories, e.DataCategories),
			"got ["+strings.Join(d.DataCategories, ", ")+"]")
	}
	for _, k := range sortedKeys(e.LawfulBases) {
		add("lawful basis "+k+" "+e.LawfulBases[k], d.LawfulBases[k] == e.LawfulBases[k], "got "+quoted(d.LawfulBases[k]))
	}
	for _, id := range sortedKeys(e.Messages) {
		msg, found := "", false
		for _, r := range d.Rules {
			if r.ID == id {
				msg, found = r.Message, true
			}
		}
		add(fmt.Sprintf("%s message mentions %q", id, e.Messages[id]), found && strings.Contains(msg, e.Messages[id]),
			map[bool]string{true: "message: " + msg, false: id + " is not in the decision"}[found])
	}
	return checks
}

// checkBundle validates a Bundle and evaluates the scenario's assertions
// on it.
func checkBundle(s Scenario, raw json.RawMessage, v *fhirvalidator.Validator) []Check {
	var checks []Check
	res := v.Validate(raw)
	var errs []string
	for _, is := range res.Errors() {
		errs = append(errs, is.String())
	}
	msg := ""
	if len(errs) > 0 {
		if len(errs) > 5 {
			errs = append(errs[:5], fmt.Sprintf("and %d more", len(errs)-5))
		}
		msg = strings.Join(errs, "; ")
	}
	checks = append(checks, Check{Name: "the Bundle is valid FHIR R4 (built-in rules)", OK: res.OK(), Message: msg})
	var b any
	if err := decodeJSON(raw, &b); err != nil {
		return append(checks, Check{Name: "the Bundle is JSON", Message: err.Error()})
	}
	for _, a := range s.assertions {
		ok, msg := a.eval(b)
		if ok {
			msg = ""
		}
		checks = append(checks, Check{Name: "Bundle: " + a.src, OK: ok, Message: msg})
	}
	return checks
}

// checkIssues finds each expected issue in the answer's OperationOutcome
// (the document's operationOutcome, or the answer itself).
func checkIssues(want []string, a answer) []Check {
	issues := a.Issue
	if len(a.OperationOutcome) > 0 {
		var oo struct {
			Issue []outcomeIssue `json:"issue"`
		}
		_ = json.Unmarshal(a.OperationOutcome, &oo)
		issues = oo.Issue
	}
	var have []string
	for _, is := range issues {
		have = append(have, issueKeys(is)...)
	}
	var checks []Check
	for _, w := range want {
		ok := slices.Contains(have, w)
		msg := ""
		if !ok {
			msg = "the OperationOutcome names [" + strings.Join(have, ", ") + "]"
		}
		checks = append(checks, Check{Name: "OperationOutcome names " + w, OK: ok, Message: msg})
	}
	return checks
}

// issueKeys are what an expected issue may match: expressions, the issue
// code, details codes.
func issueKeys(is outcomeIssue) []string {
	keys := append([]string{is.Code}, is.Expression...)
	if is.Details != nil {
		for _, c := range is.Details.Coding {
			keys = append(keys, c.Code)
		}
	}
	return keys
}

func effectText(eff string) string {
	if eff == "" {
		return "not in the decision"
	}
	return "effect " + eff
}

func quoted(s string) string { return fmt.Sprintf("%q", s) }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
