package http

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/mappings"
)

// Server is the gateway's HTTP API. Its fields are its dependencies; the
// zero value of an optional one switches its routes off.
type Server struct {
	Evaluator *gateway.Evaluator
	Logger    *zap.Logger
	// MaxBodyBytes bounds every request body (413 beyond).
	MaxBodyBytes int64
	// MaxInFlight bounds the intake requests served at once (503 with
	// Retry-After beyond); 0 means no bound.
	MaxInFlight int
	// Schema is the JSON Schema of the case record, served for integrators.
	Schema []byte
	// Rules lists the policy rules in force.
	Rules func() []gateway.PolicyRule
	// Observer counts requests and decisions for the metrics; optional.
	// The metrics themselves are served on their own listener
	// (metrics.listen), never by the API.
	Observer Observer
	// Intake accepts, reads and cancels referrals; without it the referral
	// routes are off.
	Intake *gateway.Intake
	// Checkpoints are the signed checkpoints of the chain heads, which
	// audit verify holds chains to and the web page offers for download;
	// optional.
	Checkpoints *gateway.CheckpointDir
	// ParseResponse reads receivers' BaRS response messages.
	ParseResponse func(body []byte) (gateway.ReceiverResponse, error)
	// Ready reports readiness for /readyz (store reachable, policies loaded).
	Ready func(ctx context.Context) error
	// CapabilityStatement is served at /fhir/metadata.
	CapabilityStatement []byte
	// Replayer replays candidate policy sets for the web page's replay
	// page; without it the page says replay is unavailable.
	Replayer *gateway.Replayer
	// Auth authenticates clients; routes that need a client refuse all
	// requests without it.
	Auth *Authenticator
	// Evaluations are the evaluation figures (GET /v1/evaluation and the
	// page's Evaluation tab); without them those are off.
	Evaluations *gateway.Evaluations
	// Now is the clock; tests fix it.
	Now func() time.Time
}

// OpenAPI is the description of the API, served at /v1/openapi.json. A test
// checks it against the router both ways: every route documented, every
// documented route served.
//
//go:embed openapi.json
var OpenAPI []byte

// Handler returns the routed API with its middleware.
func (s *Server) Handler() http.Handler {
	return withRequest(cmp.Or(s.Logger, zap.NewNop()), s.observer(), s.router())
}

// router routes the API.
func (s *Server) router() *mux.Router {
	// SkipClean: a path that is not in canonical form ("//v1/referrals",
	// "/v1/./referrals") is a 404 like any other unknown path, not a 301 to
	// somewhere a client would re-send its POST as a GET. UseEncodedPath:
	// routes match the path as sent, so an encoded slash stays inside its
	// segment ("/v1/referrals/{id}%2F$cancel" is a referral id, not a
	// cancel) and the gateway routes a path as a proxy in front of it would.
	r := mux.NewRouter().SkipClean(true).UseEncodedPath()
	r.Use(recordRoute)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Error(w, r, gateway.Errorf(gateway.ENOTFOUND, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	router := r
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", strings.Join(allowedMethods(router, r), ", "))
		Error(w, r, issueError(eMethodNotAllowed, "method not allowed", "not-supported", "", r.Method+" is not allowed on "+r.URL.Path))
	})
	r.HandleFunc("/healthz", s.handleHealth).Methods(http.MethodGet)
	r.HandleFunc("/readyz", s.handleReady).Methods(http.MethodGet)
	r.HandleFunc("/v1/openapi.json", serveBytes("application/vnd.oai.openapi+json", OpenAPI, false)).Methods(http.MethodGet)
	intake := inFlight(s.MaxInFlight)
	if s.Intake != nil {
		r.HandleFunc("/v1/referrals/$evaluate", s.require(intake(api(s.handleEvaluate)), gateway.RoleSubmitter)).Methods(http.MethodPost)
		r.HandleFunc("/v1/referrals", s.require(intake(api(s.handleSubmit)), gateway.RoleSubmitter)).Methods(http.MethodPost)
		r.HandleFunc("/v1/referrals/{id}", s.require(api(s.handleReferral), gateway.RoleSubmitter)).Methods(http.MethodGet)
		r.HandleFunc("/v1/referrals/{id}/$cancel", s.require(api(s.handleCancel), gateway.RoleSubmitter)).Methods(http.MethodPost)
		r.HandleFunc("/v1/referrals/{id}/student-notice", s.require(api(s.handleStudentNotice), gateway.RoleSubmitter, gateway.RoleAuditor)).Methods(http.MethodGet)
		r.HandleFunc("/v1/referrals/{id}/$student-informed", s.require(api(s.handleStudentInformed), gateway.RoleSubmitter)).Methods(http.MethodPost)
		r.HandleFunc("/fhir/$process-message", s.require(api(s.handleInbound), gateway.RoleReceiver)).Methods(http.MethodPost)
	} else {
		r.HandleFunc("/v1/referrals/$evaluate", intake(api(s.handleEvaluate))).Methods(http.MethodPost)
	}
	if s.CapabilityStatement != nil {
		r.HandleFunc("/fhir/metadata", serveBytes(MediaFHIRJSON+"; charset=utf-8", s.CapabilityStatement, false)).Methods(http.MethodGet)
	}
	r.HandleFunc("/v1/schema/case-record.json", serveBytes("application/schema+json", s.Schema, true)).Methods(http.MethodGet)
	if s.Rules != nil {
		r.HandleFunc("/v1/policy/rules", s.handleRules).Methods(http.MethodGet)
	}
	s.evaluationRoutes(r)
	s.auditRoutes(r)
	s.webhookRoutes(r)
	return r
}

// allowedMethods lists the methods that the router serves on r's path, for
// the Allow header that a 405 must carry.
func allowedMethods(router *mux.Router, r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		var match mux.RouteMatch
		if router.Match(probe, &match) && match.MatchErr == nil {
			out = append(out, m)
		}
	}
	return out
}

// Observer is what the HTTP layer reports to the metrics.
type Observer interface {
	ObserveRequest(route, method string, status int, d time.Duration)
	ObserveEvaluation(ev *gateway.Evaluation, dryRun bool)
}

type nopObserver struct{}

func (nopObserver) ObserveRequest(string, string, int, time.Duration) {}
func (nopObserver) ObserveEvaluation(*gateway.Evaluation, bool)       {}

func (s *Server) observer() Observer {
	if s.Observer == nil {
		return nopObserver{}
	}
	return s.Observer
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, MediaJSON, map[string]string{"status": "ok"})
}

// serveBytes serves b as it is, as ctype, cached for an hour when cache.
func serveBytes(ctype string, b []byte, cache bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ctype)
		if cache {
			w.Header().Set("Cache-Control", "public, max-age=3600")
		}
		_, _ = w.Write(b)
	}
}

func (s *Server) handleRules(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, MediaJSON, map[string]any{"rules": s.Rules()})
}

// handleEvaluate is the dry run: the decision and the message the NHS
// service would receive, with nothing stored or sent. The optional query
// parameter `at` fixes the decision time, as `gateway evaluate --at` does.
func (s *Server) handleEvaluate(w http.ResponseWriter, r *http.Request) error {
	at, err := s.evaluationTime(r)
	if err != nil {
		return err
	}
	body, err := s.readBody(w, r, MediaJSON)
	if err != nil {
		return err
	}
	var ev *gateway.Evaluation
	if s.Intake != nil {
		ev, err = s.Intake.DryRun(r.Context(), gateway.ClientFrom(r.Context()), body, at)
	} else {
		ev, err = s.Evaluator.Evaluate(r.Context(), body, at)
	}
	if err != nil {
		return err
	}
	LogEvaluation(logFrom(r.Context()), ev, true)
	s.observer().ObserveEvaluation(ev, true)
	status := http.StatusOK
	if ev.Outcome == gateway.OutcomeInvalid {
		status = Status(ev.Err.Code)
	}
	writeJSON(w, status, MediaJSON, Document(ev))
	return nil
}

// EvaluationDocument is the JSON document that POST /v1/referrals/$evaluate
// returns and `gateway evaluate` prints. Bundle is present only when allowed
// and OperationOutcome only when invalid.
type EvaluationDocument struct {
	Outcome          string            `json:"outcome"`
	Decision         *gateway.Decision `json:"decision,omitempty"`
	Bundle           json.RawMessage   `json:"bundle,omitempty"`
	OperationOutcome any               `json:"operationOutcome,omitempty"` // mappings renders it
}

// Document renders an evaluation as its public document.
func Document(ev *gateway.Evaluation) EvaluationDocument {
	doc := EvaluationDocument{Outcome: ev.Outcome, Decision: ev.Decision, Bundle: ev.Bundle}
	if ev.Err != nil {
		doc.OperationOutcome = mappings.OperationOutcome(ev.Err)
	}
	return doc
}

// Bounds of the `at` query parameter: the instants that a decision and the
// message built on it can carry as a FHIR instant (years 1000 to 9999 in UTC;
// FHIR has no year 0 and no five-digit years).
var (
	minAt = time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxAt = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// evaluationTime reads the optional `at` query parameter of $evaluate. A
// query string that does not parse, `at` given twice or empty, and an
// instant without a zone or outside the years FHIR can carry are refused
// rather than guessed at.
func (s *Server) evaluationTime(r *http.Request) (time.Time, error) {
	bad := func(msg string) error {
		return issueError(gateway.EMALFORMED, "bad query parameter", "value", "at", msg)
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return time.Time{}, bad("the query string is malformed; send at=<RFC 3339 instant>, percent-encoded")
	}
	vs, ok := q["at"]
	if !ok {
		return s.now(), nil
	}
	const form = "at must be an RFC 3339 instant with a zone, e.g. 2026-11-23T12:00:00Z"
	if len(vs) != 1 {
		return time.Time{}, bad("at is given more than once; " + form)
	}
	t, err := time.Parse(time.RFC3339, vs[0])
	if err != nil {
		return time.Time{}, bad(form)
	}
	if _, off := t.Zone(); off <= -24*3600 || off >= 24*3600 {
		return time.Time{}, bad(form + " (a zone offset is at most 23:59)")
	}
	if t.Before(minAt) || t.After(maxAt) {
		return time.Time{}, bad("at must lie between the years 1000 and 9999 (UTC)")
	}
	return t, nil
}

// LogEvaluation writes one line about an evaluation: ids, outcome, rule ids
// and the paths of invalid fields, never the content. A field that the
// contract does not define is logged only as a count under the nearest path
// that it does define (unknown_fields, "" for the top level): its name is the
// client's own text and may be anything, even a student's name.
func LogEvaluation(log *zap.Logger, ev *gateway.Evaluation, dryRun bool) {
	fields := []zap.Field{zap.String("outcome", ev.Outcome), zap.Bool("dry_run", dryRun)}
	if d := ev.Decision; d != nil {
		ids := make([]string, 0, len(d.Rules))
		for _, rr := range d.Rules {
			if rr.Effect == gateway.EffectDeny {
				ids = append(ids, rr.ID)
			}
		}
		fields = append(fields,
			zap.String("decision_id", d.ID),
			zap.String("route", d.Route),
			zap.String("service", d.Recipient.Service),
			zap.Strings("denied_by", ids),
			zap.Strings("categories", d.DataCategories),
			zap.String("policy_revision", d.PolicyRevision),
		)
	}
	if ev.Err != nil {
		paths := make([]string, 0, len(ev.Err.Issues))
		unknown := map[string]int{}
		for _, is := range ev.Err.Issues {
			if defined, ok := gateway.DefinedPath(is.Expression); ok {
				paths = append(paths, is.Expression)
			} else {
				unknown[defined]++
			}
		}
		fields = append(fields, zap.String("error_code", ev.Err.Code), zap.Strings("invalid_fields", paths))
		if len(unknown) > 0 {
			fields = append(fields, zap.Any("unknown_fields", unknown))
		}
	}
	log.Info("evaluated", fields...)
}

// readBody checks the media type and reads the body within the size limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, types ...string) ([]byte, error) {
	unsupported := func(msg string) error {
		return issueError(gateway.EMEDIATYPE, "unsupported media type", "not-supported", "", msg)
	}
	send := "send Content-Type: " + strings.Join(types, " or ")
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !slices.Contains(types, mt) || len(r.Header.Values("Content-Type")) > 1 {
		return nil, unsupported(send)
	}
	// JSON is UTF-8 (RFC 8259): another charset would be read as UTF-8
	// anyway, so it is refused rather than misread.
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, unsupported(send + " in UTF-8 (charset=utf-8 or no charset)")
	}
	// The body is read as it is sent: a compressed body is refused (RFC 9110
	// 8.4 allows 415), not decompressed into something far larger.
	if ce := r.Header.Values("Content-Encoding"); len(ce) > 0 && !(len(ce) == 1 && strings.EqualFold(strings.TrimSpace(ce[0]), "identity")) {
		return nil, unsupported("send the body without a Content-Encoding")
	}
	limit := s.MaxBodyBytes
	if limit <= 0 {
		limit = 256 << 10
	}
	tooLarge := issueError(gateway.ETOOLARGE, "request body too large", "too-long", "", "the body exceeds the limit of "+byteSize(limit))
	// A declared length over the limit is refused before any of the body is
	// read, so that a client cannot make the server wait for it.
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, tooLarge
		}
		return nil, issueError(gateway.EMALFORMED, "the request body could not be read", "structure", "", "the request body could not be read in full")
	}
	return body, nil
}

func byteSize(n int64) string {
	switch {
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	default:
		return strconv.FormatInt(n, 10) + " bytes"
	}
}
