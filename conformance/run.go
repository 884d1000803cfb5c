package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

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
	base, name, client := strings.TrimRight(t.URL, "/"), strings.TrimRight(t.URL, "/"), t.Client
	if t.URL == "" {
		base, name = "http://gateway.invalid", "in-process"
		client = &http.Client{Transport: handlerTransport{t.Handler}}
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	v := o.validator()
	return runCases(ctx, "run", name, o, len(scenarios), func(i int) Case {
		return runScenario(ctx, client, base, t.Token, scenarios[i], v)
	})
}

// validator is the Validator option or the built-in rules.
func (o Options) validator() *fhirvalidator.Validator {
	if o.Validator == nil {
		return fhirvalidator.Builtin()
	}
	return o.Validator
}

// runCases runs n cases in order into a report, telling Progress of each;
// it stops early only when ctx ends.
func runCases(ctx context.Context, kind, target string, o Options, n int, run func(int) Case) *Report {
	r := &Report{ID: uuid.NewString(), Kind: kind, Target: target, Started: time.Now().UTC()}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		c := run(i)
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
	Obligations    []obligation      `json:"obligations"`
	LawfulBases    map[string]string `json:"lawfulBases"`
	DataCategories []string          `json:"dataCategories"`
	Recipient      struct {
		Service string `json:"service"`
	} `json:"recipient"`
	Time string `json:"time"`
}

// obligation is what the suite reads of an obligation.
type obligation struct {
	Type       string   `json:"type"`
	Rule       string   `json:"rule"`
	Categories []string `json:"categories"`
	Fields     []string `json:"fields"`
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

// checks are the checks of one case, in order.
type checks []Check

// add records a check; its message is kept only when it failed.
func (cs *checks) add(name string, ok bool, msg string) {
	if ok {
		msg = ""
	}
	*cs = append(*cs, Check{Name: name, OK: ok, Message: msg})
}

// checkAnswer turns the expectations into checks on one answer.
func checkAnswer(s Scenario, resp *http.Response, body []byte, v *fhirvalidator.Validator) []Check {
	var cs checks
	e := s.Expect
	want := e.Status
	if want == 0 {
		want = http.StatusOK
		if e.Outcome == "invalid" {
			want = http.StatusUnprocessableEntity
		}
	}
	cs.add(fmt.Sprintf("status %d", want), resp.StatusCode == want, fmt.Sprintf("got %d", resp.StatusCode))
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var a answer
	if err := json.Unmarshal(body, &a); err != nil || !strings.HasSuffix(mt, "json") {
		cs.add("the answer is JSON", false, fmt.Sprintf("Content-Type %q, %d bytes", resp.Header.Get("Content-Type"), len(body)))
		return cs
	}
	if e.Outcome != "" {
		cs.add("outcome "+e.Outcome, a.Outcome == e.Outcome, "got "+quoted(a.Outcome))
	}
	needDecision := e.Allow != nil || e.Route != "" || e.Service != "" || e.Rules.Deny != nil ||
		len(e.Rules.Allow) > 0 || len(e.Rules.Obligation) > 0 || len(e.Oblige) > 0 ||
		e.DataCategories != nil || len(e.LawfulBases) > 0 || len(e.Messages) > 0 ||
		e.Outcome == "allow" || e.Outcome == "deny"
	if needDecision {
		cs.add("the answer has a decision", a.Decision != nil, "no decision in the answer")
		if a.Decision != nil {
			checkDecision(&cs, s, a.Decision)
		}
	}
	hasBundle := len(a.Bundle) > 0 && string(a.Bundle) != "null"
	switch e.Outcome {
	case "allow":
		cs.add("an allowed answer carries the Bundle", hasBundle, "no bundle in the answer")
	case "deny", "invalid":
		cs.add("no Bundle when not allowed", !hasBundle, "the answer carries a Bundle")
	}
	if hasBundle {
		// Every Bundle that comes back is validated, whatever the scenario
		// expected: it is what an NHS service would receive.
		checkBundle(&cs, s, a.Bundle, v)
	}
	checkIssues(&cs, e.Issues, a)
	return cs
}

func checkDecision(cs *checks, s Scenario, d *decision) {
	e := s.Expect
	at, _ := time.Parse(time.RFC3339, s.At)
	cs.add("decision time is at", d.Time == at.UTC().Format(time.RFC3339), "got "+quoted(d.Time))
	allowed := d.Allow != nil && *d.Allow
	if e.Allow != nil {
		cs.add(fmt.Sprintf("allow %t", *e.Allow), d.Allow != nil && allowed == *e.Allow, fmt.Sprintf("got %t", allowed))
	}
	if e.Outcome == "allow" || e.Outcome == "deny" {
		cs.add("decision.allow agrees with the outcome", allowed == (e.Outcome == "allow"), fmt.Sprintf("allow is %t", allowed))
	}
	if e.Route != "" {
		cs.add("route "+e.Route, d.Route == e.Route, "got "+quoted(d.Route))
	}
	if e.Service != "" {
		cs.add("recipient "+e.Service, d.Recipient.Service == e.Service, "got "+quoted(d.Recipient.Service))
	}
	effects := map[string]string{}
	messages := map[string]string{}
	var denied []string
	for _, r := range d.Rules {
		effects[r.ID], messages[r.ID] = r.Effect, r.Message
		if r.Effect == "deny" {
			denied = append(denied, r.ID)
		}
	}
	slices.Sort(denied)
	if e.Rules.Deny != nil {
		want := slices.Sorted(slices.Values(e.Rules.Deny))
		cs.add("denied by exactly ["+strings.Join(want, ", ")+"]", slices.Equal(denied, want), "denied by ["+strings.Join(denied, ", ")+"]")
	}
	if e.Outcome == "allow" {
		cs.add("no rule denies an allowed share", len(denied) == 0, "denied by ["+strings.Join(denied, ", ")+"]")
	}
	for _, id := range e.Rules.Allow {
		cs.add(id+" checked and passed", effects[id] == "allow" || effects[id] == "obligation", effectText(effects[id]))
	}
	for _, id := range e.Rules.Obligation {
		cs.add(id+" imposed an obligation", effects[id] == "obligation", effectText(effects[id]))
	}
	var have []string
	for _, o := range d.Obligations {
		have = append(have, o.Type+" ("+o.Rule+")")
	}
	for _, want := range e.Oblige {
		found := slices.ContainsFunc(d.Obligations, func(o obligation) bool {
			return o.Type == want.Type && o.Rule == want.Rule &&
				(want.Categories == nil || slices.Equal(o.Categories, want.Categories)) &&
				(want.Fields == nil || slices.Equal(o.Fields, want.Fields))
		})
		name := "obligation " + want.Type + " (" + want.Rule + ")"
		for _, list := range [][]string{want.Categories, want.Fields} {
			if list != nil {
				name += " [" + strings.Join(list, ", ") + "]"
			}
		}
		cs.add(name, found, "the decision's obligations: "+strings.Join(have, ", "))
	}
	if e.DataCategories != nil {
		cs.add("data categories ["+strings.Join(e.DataCategories, ", ")+"]", slices.Equal(d.DataCategories, e.DataCategories),
			"got ["+strings.Join(d.DataCategories, ", ")+"]")
	}
	for _, k := range slices.Sorted(maps.Keys(e.LawfulBases)) {
		cs.add("lawful basis "+k+" "+e.LawfulBases[k], d.LawfulBases[k] == e.LawfulBases[k], "got "+quoted(d.LawfulBases[k]))
	}
	for _, id := range slices.Sorted(maps.Keys(e.Messages)) {
		msg, found := messages[id]
		cs.add(fmt.Sprintf("%s message mentions %q", id, e.Messages[id]), found && strings.Contains(msg, e.Messages[id]),
			map[bool]string{true: "message: " + msg, false: id + " is not in the decision"}[found])
	}
}

// checkBundle validates a Bundle and evaluates the scenario's assertions
// on it.
func checkBundle(cs *checks, s Scenario, raw json.RawMessage, v *fhirvalidator.Validator) {
	res := v.Validate(raw)
	cs.add("the Bundle is valid FHIR R4 (built-in rules)", res.OK(), errorsText(res))
	var b any
	if err := decodeJSON(raw, &b); err != nil {
		cs.add("the Bundle is JSON", false, err.Error())
		return
	}
	for _, a := range s.assertions {
		ok, msg := a.eval(b)
		cs.add("Bundle: "+a.src, ok, msg)
	}
}

// errorsText lists the first five errors of a validation.
func errorsText(res fhirvalidator.Result) string {
	var errs []string
	for _, is := range res.Errors() {
		errs = append(errs, is.String())
	}
	if len(errs) > 5 {
		errs = append(errs[:5], fmt.Sprintf("and %d more", len(errs)-5))
	}
	return strings.Join(errs, "; ")
}

// checkIssues finds each expected issue in the answer's OperationOutcome
// (the document's operationOutcome, or the answer itself).
func checkIssues(cs *checks, want []string, a answer) {
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
	for _, w := range want {
		cs.add("OperationOutcome names "+w, slices.Contains(have, w), "the OperationOutcome names ["+strings.Join(have, ", ")+"]")
	}
}

// issueKeys are what an expected issue may match: expressions, the issue
// code, details codes.
func issueKeys(is outcomeIssue) []string {
	return slices.Concat([]string{is.Code}, is.Expression, is.codes(""))
}

// codes are the issue's details codes in system, or in any system when
// system is "".
func (is outcomeIssue) codes(system string) []string {
	var out []string
	if is.Details != nil {
		for _, c := range is.Details.Coding {
			if system == "" || c.System == system && c.Code != "" {
				out = append(out, c.Code)
			}
		}
	}
	return out
}

func effectText(eff string) string {
	if eff == "" {
		return "not in the decision"
	}
	return "effect " + eff
}

func quoted(s string) string { return fmt.Sprintf("%q", s) }
