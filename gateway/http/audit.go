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

// Media types of the exports.
const (
	MediaCSV = "text/csv"
)

// auditRoutes adds the IG auditors' API and web page. They need the store
// (through Intake), so they are off without it.
func (s *Server) auditRoutes(r *mux.Router) {
	if s.Intake == nil {
		return
	}
	r.HandleFunc("/v1/audit/decisions", s.require(s.handleAuditSearch, gateway.RoleAuditor)).Methods(http.MethodGet)
	r.HandleFunc("/v1/audit/decisions/$search", s.require(s.handleAuditSearchPost, gateway.RoleAuditor)).Methods(http.MethodPost)
	r.HandleFunc("/v1/audit/decisions/{id}", s.require(s.handleAuditRecord, gateway.RoleAuditor)).Methods(http.MethodGet)
	r.HandleFunc("/v1/audit/export", s.require(s.handleAuditExport, gateway.RoleAuditor)).Methods(http.MethodGet)
	r.HandleFunc("/v1/audit/export", s.require(s.handleAuditExportPost, gateway.RoleAuditor)).Methods(http.MethodPost)
	r.HandleFunc("/v1/audit/verify", s.require(s.handleAuditVerify, gateway.RoleAuditor)).Methods(http.MethodGet)
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
// starts at midnight UK time.
var london = func() *time.Location {
	l, err := time.LoadLocation("Europe/London")
	if err != nil {
		return time.UTC
	}
	return l
}()

// parseBound reads a time bound: an RFC 3339 instant, or a date (the start
// of that day in Europe/London; with end, the start of the next day, so
// that "to=2026-11-30" includes the 30th).
func parseBound(field, v string, end bool) (time.Time, *gateway.Issue) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseInLocation("2006-01-02", v, london); err == nil {
		if end {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	return time.Time{}, &gateway.Issue{Severity: "error", Type: "value", Expression: field,
		Message: field + " must be a date (2026-11-23) or an RFC 3339 instant (2026-11-23T12:00:00Z)"}
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
	var is *gateway.Issue
	if q.From, is = parseBound("from", f.From, false); is != nil {
		issues = append(issues, *is)
	}
	if q.To, is = parseBound("to", f.To, true); is != nil {
		issues = append(issues, *is)
	}
	if len(issues) > 0 {
		return q, &gateway.Error{Code: gateway.EINVALID, Message: "bad search", Issues: issues}
	}
	return q, nil
}

// identifyingParams may not be sent in a query string: a URL ends up in
// access logs, proxies and browser history.
var identifyingParams = []string{"nhsNumber", "studentId", "student", "nhs"}

var filterParams = []string{"from", "to", "kind", "outcome", "ruleId", "effect", "route", "recipient", "caseId", "order", "cursor", "limit"}

// filtersFromURL reads the filters from a query string, refusing a
// parameter given twice, an unknown one, and above all a student
// identifier.
func filtersFromURL(r *http.Request, extra ...string) (auditFilters, url.Values, error) {
	var f auditFilters
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return f, nil, malformedQuery("the query string is malformed")
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
		return f, nil, &gateway.Error{Code: gateway.EINVALID, Message: "bad search", Issues: issues}
	}
	f = auditFilters{From: vals.Get("from"), To: vals.Get("to"), Kind: vals.Get("kind"), Outcome: vals.Get("outcome"),
		RuleID: vals.Get("ruleId"), Effect: vals.Get("effect"), Route: vals.Get("route"), Recipient: vals.Get("recipient"),
		CaseID: vals.Get("caseId"), Order: vals.Get("order"), Cursor: vals.Get("cursor")}
	if l := vals.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil {
			return f, nil, &gateway.Error{Code: gateway.EINVALID, Message: "bad search", Issues: []gateway.Issue{{
				Severity: "error", Type: "value", Expression: "limit", Message: "limit must be a whole number"}}}
		}
		f.Limit = n
	}
	return f, vals, nil
}

func malformedQuery(msg string) error {
	return &gateway.Error{Code: gateway.EMALFORMED, Message: "bad query string", Issues: []gateway.Issue{{
		Severity: "error", Type: "structure", Message: msg,
	}}}
}

// readStudentSearch reads a POST search body. Its content is never logged
// or echoed: it may hold an NHS number.
func (s *Server) readStudentSearch(w http.ResponseWriter, r *http.Request) (studentSearch, error) {
	var body studentSearch
	b, err := s.readJSON(w, r)
	if err != nil {
		return body, err
	}
	// JSON that is not an object (null above all, which would decode as
	// "no filters") breaks the contract: 422, as for a case record.
	if t := bytes.TrimSpace(b); json.Valid(t) && t[0] != '{' {
		return body, &gateway.Error{Code: gateway.EINVALID, Message: "bad search", Issues: []gateway.Issue{{
			Severity: "error", Type: "structure", Message: "the body must be a JSON object with the search's members",
		}}}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || dec.More() {
		return body, &gateway.Error{Code: gateway.EMALFORMED, Message: "malformed search", Issues: []gateway.Issue{{
			Severity: "error", Type: "structure",
			Message: "the body must be one JSON object with the members nhsNumber, studentId, format and the filters (" + strings.Join(filterParams, ", ") + ")",
		}}}
	}
	return body, nil
}

// studentQuery turns a POST search into a domain query with the student's
// pseudonyms.
func (s *Server) studentQuery(c *gateway.Client, body studentSearch) (gateway.Query, error) {
	q, err := body.query()
	if err != nil {
		return q, err
	}
	if body.NHSNumber != "" || body.StudentID != "" {
		q.Students, err = s.audit().StudentPseudonyms(c, body.NHSNumber, body.StudentID)
		if err != nil {
			return q, err
		}
	}
	return q, nil
}

// handleAuditSearch is GET /v1/audit/decisions: a page of the institution's
// records, filtered, newest first unless order=asc.
func (s *Server) handleAuditSearch(w http.ResponseWriter, r *http.Request) {
	f, _, err := filtersFromURL(r)
	if err != nil {
		Error(w, r, err)
		return
	}
	q, err := f.query()
	if err != nil {
		Error(w, r, err)
		return
	}
	s.writePage(w, r, q)
}

// handleAuditSearchPost is POST /v1/audit/decisions/$search: the same search
// with the student named by NHS number or student id in the body.
func (s *Server) handleAuditSearchPost(w http.ResponseWriter, r *http.Request) {
	c := gateway.ClientFrom(r.Context())
	body, err := s.readStudentSearch(w, r)
	if err != nil {
		Error(w, r, err)
		return
	}
	if body.Format != "" {
		Error(w, r, &gateway.Error{Code: gateway.EINVALID, Message: "bad search", Issues: []gateway.Issue{{
			Severity: "error", Type: "value", Expression: "format", Message: "format is for POST /v1/audit/export",
		}}})
		return
	}
	q, err := s.studentQuery(c, body)
	if err != nil {
		Error(w, r, err)
		return
	}
	s.writePage(w, r, q)
}

func (s *Server) writePage(w http.ResponseWriter, r *http.Request, q gateway.Query) {
	page, err := s.audit().Search(r.Context(), gateway.ClientFrom(r.Context()), q)
	if err != nil {
		Error(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, MediaJSON, page)
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
func (s *Server) handleAuditRecord(w http.ResponseWriter, r *http.Request) {
	seq, err := seqParam(r)
	if err != nil {
		Error(w, r, err)
		return
	}
	c := gateway.ClientFrom(r.Context())
	rec, others, err := s.audit().Record(r.Context(), c, mux.Vars(r)["id"], seq)
	if err != nil {
		Error(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, MediaJSON, recordView{Record: rec, OtherRecords: others, Rules: s.citedRules(rec)})
}

func seqParam(r *http.Request) (int64, error) {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return 0, malformedQuery("the query string is malformed")
	}
	for k := range vals {
		if k != "seq" {
			return 0, &gateway.Error{Code: gateway.EINVALID, Message: "bad request", Issues: []gateway.Issue{{
				Severity: "error", Type: "value", Expression: k, Message: "unknown parameter; only seq is accepted"}}}
		}
	}
	v := vals.Get("seq")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || len(vals["seq"]) > 1 {
		return 0, &gateway.Error{Code: gateway.EINVALID, Message: "bad request", Issues: []gateway.Issue{{
			Severity: "error", Type: "value", Expression: "seq", Message: "seq must be one chain position (1, 2, …)"}}}
	}
	return n, nil
}

// citedRules is the policy metadata of the rules a record cites, in the
// record's order.
func (s *Server) citedRules(rec gateway.AuditRecord) []gateway.PolicyRule {
	if rec.Decision == nil || s.Rules == nil {
		return nil
	}
	byID := map[string]gateway.PolicyRule{}
	for _, pr := range s.Rules() {
		byID[pr.ID] = pr
	}
	var out []gateway.PolicyRule
	seen := map[string]bool{}
	for _, rr := range rec.Decision.Rules {
		if pr, ok := byID[rr.ID]; ok && !seen[rr.ID] {
			seen[rr.ID] = true
			out = append(out, pr)
		}
	}
	return out
}

// handleAuditExport is GET /v1/audit/export?format=csv|fhir&filters.
func (s *Server) handleAuditExport(w http.ResponseWriter, r *http.Request) {
	f, vals, err := filtersFromURL(r, "format")
	if err != nil {
		Error(w, r, err)
		return
	}
	q, err := f.query()
	if err != nil {
		Error(w, r, err)
		return
	}
	s.export(w, r, vals.Get("format"), q)
}

// handleAuditExportPost is POST /v1/audit/export with a JSON body: the
// export of one student's records.
func (s *Server) handleAuditExportPost(w http.ResponseWriter, r *http.Request) {
	body, err := s.readStudentSearch(w, r)
	if err != nil {
		Error(w, r, err)
		return
	}
	q, err := s.studentQuery(gateway.ClientFrom(r.Context()), body)
	if err != nil {
		Error(w, r, err)
		return
	}
	s.export(w, r, body.Format, q)
}

// collect returns every record matching q, in chain order, refusing more
// than MaxExport.
func (s *Server) collect(r *http.Request, q gateway.Query) ([]gateway.AuditRecord, error) {
	var recs []gateway.AuditRecord
	err := s.audit().Each(r.Context(), gateway.ClientFrom(r.Context()), q, func(rec gateway.AuditRecord) error {
		if len(recs) == MaxExport {
			return &gateway.Error{Code: gateway.EINVALID, Message: "export too large", Issues: []gateway.Issue{{
				Severity: "error", Type: "too-costly",
				Message: "more than " + strconv.Itoa(MaxExport) + " records match; narrow the time range (from, to)"}}}
		}
		recs = append(recs, rec)
		return nil
	})
	return recs, err
}

// export writes the records matching q as CSV or as a FHIR Bundle of
// AuditEvents, as a download.
func (s *Server) export(w http.ResponseWriter, r *http.Request, format string, q gateway.Query) {
	if format != "csv" && format != "fhir" {
		Error(w, r, &gateway.Error{Code: gateway.EINVALID, Message: "bad export", Issues: []gateway.Issue{{
			Severity: "error", Type: "value", Expression: "format", Message: "format must be csv or fhir"}}})
		return
	}
	recs, err := s.collect(r, q)
	if err != nil {
		Error(w, r, err)
		return
	}
	if err := s.writeExport(w, r, format, recs); err != nil {
		Error(w, r, err)
	}
}

// writeExport writes records as a CSV or FHIR download. An error is
// returned before anything is written.
func (s *Server) writeExport(w http.ResponseWriter, r *http.Request, format string, recs []gateway.AuditRecord) error {
	var err error
	c := gateway.ClientFrom(r.Context())
	name := "decisions-" + c.Institution + "-" + s.now().UTC().Format("20060102T150405Z")
	var body []byte
	var ctype string
	switch format {
	case "csv":
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
	case "fhir":
		var src gateway.Source
		if s.Evaluator != nil {
			src = s.Evaluator.Source
		}
		body, err = mappings.AuditEventBundle(recs, mappings.AuditExport{Source: src, At: s.now()})
		if err != nil {
			return err
		}
		ctype, name = MediaFHIRJSON+"; charset=utf-8", name+".fhir.json"
	default:
		return gateway.Errorf(gateway.EINVALID, "format must be csv or fhir")
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
func (s *Server) handleAuditVerify(w http.ResponseWriter, r *http.Request) {
	v, err := s.audit().Verify(r.Context(), gateway.ClientFrom(r.Context()))
	if err != nil {
		Error(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, MediaJSON, StatusOf(v))
}
