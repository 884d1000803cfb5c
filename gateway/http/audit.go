package http

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // Europe/London for date-only bounds, whatever the host has

	"github.com/gorilla/mux"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/mappings"
)

// MaxExport bounds how many records one export holds; beyond it the IG lead
// is asked to narrow the time range rather than given a silently cut file.
const MaxExport = 20000

// auditRoutes adds the IG auditors' API and web page. They need the store
// (through Intake), so they are off without it.
func (s *Server) auditRoutes(r *mux.Router) {
	if s.Intake == nil {
		return
	}
	aud := func(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
		return s.require(api(h), gateway.RoleAuditor)
	}
	r.HandleFunc("/v1/audit/decisions", aud(s.handleAuditSearch)).Methods(http.MethodGet)
	r.HandleFunc("/v1/audit/decisions/$search", aud(s.handleAuditSearchPost)).Methods(http.MethodPost)
	r.HandleFunc("/v1/audit/decisions/{id}", aud(s.handleAuditRecord)).Methods(http.MethodGet)
	r.HandleFunc("/v1/audit/export", aud(s.handleAuditExport)).Methods(http.MethodGet)
	r.HandleFunc("/v1/audit/export", aud(s.handleAuditExportPost)).Methods(http.MethodPost)
	r.HandleFunc("/v1/audit/verify", aud(s.handleAuditVerify)).Methods(http.MethodGet)
	s.uiRoutes(r)
}

// audit is the domain service over the Intake's store and pseudonym key.
func (s *Server) audit() *gateway.Audit {
	a := &gateway.Audit{PseudonymKey: s.Intake.PseudonymKey, Checkpoints: s.Checkpoints}
	if s.Intake.Store != nil {
		a.Log = s.Intake.Store
	}
	return a
}

// london is where date-only bounds are read: an IG lead's "1 December"
// starts at midnight UK time. With time/tzdata it loads on any host.
var london, _ = time.LoadLocation("Europe/London")

// parseBound reads a time bound: an RFC 3339 instant, or a date (the start
// of that day in Europe/London; with end, the start of the next day, so
// that "to=2026-11-30" includes the 30th). A bad bound adds an issue.
func parseBound(field, v string, end bool, issues *[]gateway.Issue) time.Time {
	if v == "" {
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t
	}
	if d, err := time.ParseInLocation("2006-01-02", v, london); err == nil {
		if end {
			d = d.AddDate(0, 0, 1)
		}
		return d
	}
	*issues = append(*issues, gateway.Issue{Severity: "error", Type: "value", Expression: field,
		Message: field + " must be a date (2026-11-23) or an RFC 3339 instant (2026-11-23T12:00:00Z)"})
	return time.Time{}
}

// auditFilters are the search filters as a client sends them, in a query
// string or a JSON body.
type auditFilters struct {
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	Kind      string `json:"kind,omitempty"`
	Outcome   string `json:"outcome,omitempty"`
	RuleID    string `json:"ruleId,omitempty"`
	Effect    string `json:"effect,omitempty"`
	Route     string `json:"route,omitempty"`
	Recipient string `json:"recipient,omitempty"`
	CaseID    string `json:"caseId,omitempty"`
	Order     string `json:"order,omitempty"`
	Cursor    string `json:"cursor,omitempty"`
	Limit     int    `json:"limit,omitempty"`
}

// studentSearch is the body of the POST searches: the filters, and the
// student by NHS number or student id, which never appear in a URL.
type studentSearch struct {
	auditFilters
	NHSNumber string `json:"nhsNumber,omitempty"`
	StudentID string `json:"studentId,omitempty"`
	// Format is the export format (POST /v1/audit/export only).
	Format string `json:"format,omitempty"`
}

// query turns filters into a domain query.
func (f auditFilters) query() (gateway.Query, error) {
	q := gateway.Query{Kind: f.Kind, Outcome: f.Outcome, RuleID: strings.TrimSpace(f.RuleID), Effect: f.Effect,
		Route: f.Route, Recipient: strings.TrimSpace(f.Recipient), CaseID: strings.TrimSpace(f.CaseID),
		Order: f.Order, Cursor: f.Cursor, Limit: f.Limit}
	var issues []gateway.Issue
	q.From = parseBound("from", f.From, false, &issues)
	q.To = parseBound("to", f.To, true, &issues)
	if len(issues) > 0 {
		return q, &gateway.Error{Code: gateway.EINVALID, Message: "bad search", Issues: issues}
	}
	return q, nil
}

// identifyingParams may not be sent in a query string: a URL ends up in
// access logs, proxies and browser history.
var identifyingParams = []string{"nhsNumber", "studentId", "student", "nhs"}

var filterParams = []string{"from", "to", "kind", "outcome", "ruleId", "effect", "route", "recipient", "caseId", "order", "cursor", "limit"}

// queryFromURL reads the filters from a query string, refusing a parameter
// given twice, an unknown one, and above all a student identifier.
func queryFromURL(r *http.Request, extra ...string) (gateway.Query, url.Values, error) {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return gateway.Query{}, nil, malformedQuery()
	}
	allowed := append(append([]string{}, filterParams...), extra...)
	var issues []gateway.Issue
	for k, vs := range vals {
		switch {
		case slices.ContainsFunc(identifyingParams, func(p string) bool { return strings.EqualFold(p, k) }):
			issues = append(issues, gateway.Issue{Severity: "error", Type: "security", Expression: k,
				Message: "a student identifier must never be sent in a URL; search by student with POST /v1/audit/decisions/$search (or POST /v1/audit/export) and a JSON body"})
		case !slices.Contains(allowed, k):
			issues = append(issues, gateway.Issue{Severity: "error", Type: "value", Expression: k,
				Message: "unknown parameter; use " + strings.Join(allowed, ", ")})
		case len(vs) > 1:
			issues = append(issues, gateway.Issue{Severity: "error", Type: "value", Expression: k, Message: k + " is given more than once"})
		}
	}
	if len(issues) > 0 {
		slices.SortFunc(issues, func(a, b gateway.Issue) int { return strings.Compare(a.Expression, b.Expression) })
		return gateway.Query{}, nil, &gateway.Error{Code: gateway.EINVALID, Message: "bad search", Issues: issues}
	}
	f := auditFilters{From: vals.Get("from"), To: vals.Get("to"), Kind: vals.Get("kind"), Outcome: vals.Get("outcome"),
		RuleID: vals.Get("ruleId"), Effect: vals.Get("effect"), Route: vals.Get("route"), Recipient: vals.Get("recipient"),
		CaseID: vals.Get("caseId"), Order: vals.Get("order"), Cursor: vals.Get("cursor")}
	if l := vals.Get("limit"); l != "" {
		if f.Limit, err = strconv.Atoi(l); err != nil {
			return gateway.Query{}, nil, issueError(gateway.EINVALID, "bad search", "value", "limit", "limit must be a whole number")
		}
	}
	q, err := f.query()
	return q, vals, err
}

func malformedQuery() error {
	return issueError(gateway.EMALFORMED, "bad query string", "structure", "", "the query string is malformed")
}

// studentQuery reads a POST search body and turns it into a domain query
// with the student's pseudonyms; it returns the export format too, which
// only an export may name. The body is never logged or echoed: it may hold
// an NHS number.
func (s *Server) studentQuery(w http.ResponseWriter, r *http.Request, export bool) (gateway.Query, string, error) {
	var body studentSearch
	b, err := s.readBody(w, r, MediaJSON)
	if err != nil {
		return gateway.Query{}, "", err
	}
	// JSON that is not an object (null above all, which would decode as
	// "no filters") breaks the contract: 422, as for a case record.
	if t := bytes.TrimSpace(b); json.Valid(t) && t[0] != '{' {
		return gateway.Query{}, "", issueError(gateway.EINVALID, "bad search", "structure", "", "the body must be a JSON object with the search's members")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || dec.More() {
		return gateway.Query{}, "", issueError(gateway.EMALFORMED, "malformed search", "structure", "",
			"the body must be one JSON object with the members nhsNumber, studentId, format and the filters ("+strings.Join(filterParams, ", ")+")")
	}
	if !export && body.Format != "" {
		return gateway.Query{}, "", issueError(gateway.EINVALID, "bad search", "value", "format", "format is for POST /v1/audit/export")
	}
	q, err := body.query()
	if err == nil && (body.NHSNumber != "" || body.StudentID != "") {
		q.Students, err = s.audit().StudentPseudonyms(gateway.ClientFrom(r.Context()), body.NHSNumber, body.StudentID)
	}
	return q, body.Format, err
}

// handleAuditSearch is GET /v1/audit/decisions: a page of the institution's
// records, filtered, newest first unless order=asc.
func (s *Server) handleAuditSearch(w http.ResponseWriter, r *http.Request) error {
	q, _, err := queryFromURL(r)
	if err != nil {
		return err
	}
	return s.writePage(w, r, q)
}

// handleAuditSearchPost is POST /v1/audit/decisions/$search: the same search
// with the student named by NHS number or student id in the body.
func (s *Server) handleAuditSearchPost(w http.ResponseWriter, r *http.Request) error {
	q, _, err := s.studentQuery(w, r, false)
	if err != nil {
		return err
	}
	return s.writePage(w, r, q)
}

func (s *Server) writePage(w http.ResponseWriter, r *http.Request, q gateway.Query) error {
	page, err := s.audit().Search(r.Context(), gateway.ClientFrom(r.Context()), q)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, MediaJSON, page)
	return nil
}

// recordView is one record in full, with the metadata of every rule it
// cites, so that a reader can go from a rule id to the principle behind it.
type recordView struct {
	Record gateway.AuditRecord `json:"record"`
	// OtherRecords are the chain positions of other records of the same
	// decision id (a repeated dry run); ?seq= picks one.
	OtherRecords []int64              `json:"otherRecords,omitempty"`
	Rules        []gateway.PolicyRule `json:"rules,omitempty"`
}

// handleAuditRecord is GET /v1/audit/decisions/{id}[?seq=N].
func (s *Server) handleAuditRecord(w http.ResponseWriter, r *http.Request) error {
	seq, err := seqParam(r)
	if err != nil {
		return err
	}
	rec, others, err := s.audit().Record(r.Context(), gateway.ClientFrom(r.Context()), mux.Vars(r)["id"], seq)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, MediaJSON, recordView{Record: rec, OtherRecords: others, Rules: s.citedRules(rec)})
	return nil
}

func seqParam(r *http.Request) (int64, error) {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return 0, malformedQuery()
	}
	for k := range vals {
		if k != "seq" {
			return 0, issueError(gateway.EINVALID, "bad request", "value", k, "unknown parameter; only seq is accepted")
		}
	}
	v := vals.Get("seq")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || len(vals["seq"]) > 1 {
		return 0, issueError(gateway.EINVALID, "bad request", "value", "seq", "seq must be one chain position (1, 2, …)")
	}
	return n, nil
}

// rulesByID indexes the policy rules in force.
func (s *Server) rulesByID() map[string]gateway.PolicyRule {
	byID := map[string]gateway.PolicyRule{}
	if s.Rules != nil {
		for _, pr := range s.Rules() {
			byID[pr.ID] = pr
		}
	}
	return byID
}

// citedRules is the policy metadata of the rules a record cites, in the
// record's order.
func (s *Server) citedRules(rec gateway.AuditRecord) []gateway.PolicyRule {
	if rec.Decision == nil {
		return nil
	}
	byID := s.rulesByID()
	var out []gateway.PolicyRule
	for _, rr := range rec.Decision.Rules {
		if pr, ok := byID[rr.ID]; ok && !slices.ContainsFunc(out, func(p gateway.PolicyRule) bool { return p.ID == rr.ID }) {
			out = append(out, pr)
		}
	}
	return out
}

// handleAuditExport is GET /v1/audit/export?format=csv|fhir&filters.
func (s *Server) handleAuditExport(w http.ResponseWriter, r *http.Request) error {
	q, vals, err := queryFromURL(r, "format")
	if err != nil {
		return err
	}
	return s.export(w, r, vals.Get("format"), q)
}

// handleAuditExportPost is POST /v1/audit/export with a JSON body: the
// export of one student's records.
func (s *Server) handleAuditExportPost(w http.ResponseWriter, r *http.Request) error {
	q, format, err := s.studentQuery(w, r, true)
	if err != nil {
		return err
	}
	return s.export(w, r, format, q)
}

// export writes the records matching q, in chain order, as a CSV or FHIR
// download, refusing more than MaxExport. An error is returned before
// anything is written.
func (s *Server) export(w http.ResponseWriter, r *http.Request, format string, q gateway.Query) error {
	if format != "csv" && format != "fhir" {
		return issueError(gateway.EINVALID, "bad export", "value", "format", "format must be csv or fhir")
	}
	c := gateway.ClientFrom(r.Context())
	var recs []gateway.AuditRecord
	err := s.audit().Each(r.Context(), c, q, func(rec gateway.AuditRecord) error {
		if len(recs) == MaxExport {
			return issueError(gateway.EINVALID, "export too large", "too-costly", "",
				"more than "+strconv.Itoa(MaxExport)+" records match; narrow the time range (from, to)")
		}
		recs = append(recs, rec)
		return nil
	})
	if err != nil {
		return err
	}
	name := "decisions-" + c.Institution + "-" + s.now().UTC().Format("20060102T150405Z")
	var body []byte
	var ctype string
	if format == "csv" {
		var buf bytes.Buffer
		out := gateway.NewAuditCSV(&buf)
		for _, rec := range recs {
			if err := out.Write(rec); err != nil {
				return gateway.Internal(err)
			}
		}
		if err := out.Close(); err != nil {
			return gateway.Internal(err)
		}
		body, ctype, name = buf.Bytes(), MediaCSV+"; charset=utf-8", name+".csv"
	} else {
		var src gateway.Source
		if s.Evaluator != nil {
			src = s.Evaluator.Source
		}
		if body, err = mappings.AuditEventBundle(recs, mappings.AuditExport{Source: src, At: s.now()}); err != nil {
			return err
		}
		ctype, name = MediaFHIRJSON+"; charset=utf-8", name+".fhir.json"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Record-Count", strconv.Itoa(len(recs)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}

// ChainStatus is a chain verification as the API and the CLI show it.
type ChainStatus struct {
	Institution string `json:"institution"`
	OK          bool   `json:"ok"`
	// Records is how many records were checked before the walk stopped.
	Records  int64  `json:"records"`
	HeadSeq  int64  `json:"headSeq"`
	HeadHash string `json:"headHash"`
	// BadSeq, Problem (altered, removed, reordered) and Detail name the
	// first record at fault.
	BadSeq  int64  `json:"badSeq,omitempty"`
	Problem string `json:"problem,omitempty"`
	Detail  string `json:"detail,omitempty"`
	// Checkpoint is the record up to which the chain was held to the
	// latest signed checkpoint (0: no checkpoint lists it).
	Checkpoint int64 `json:"checkpoint,omitempty"`
}

// StatusOf renders a verification.
func StatusOf(v gateway.ChainVerification) ChainStatus {
	return ChainStatus{Institution: v.Institution, OK: v.OK, Records: v.Records, HeadSeq: v.HeadSeq, HeadHash: v.HeadHash,
		BadSeq: v.BadSeq, Problem: string(v.Problem), Detail: v.Detail, Checkpoint: v.Checkpoint}
}

// handleAuditVerify is GET /v1/audit/verify: 200 with ok true or false (a
// broken chain is a finding, not a failure of the request).
func (s *Server) handleAuditVerify(w http.ResponseWriter, r *http.Request) error {
	v, err := s.audit().Verify(r.Context(), gateway.ClientFrom(r.Context()))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, MediaJSON, StatusOf(v))
	return nil
}
