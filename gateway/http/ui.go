package http

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/student-mh-referrals/gateway/gateway"
)

// The web page for IG leads at /ui/: rendered on the server with
// html/template, no JavaScript and no external asset, so that it works in a
// locked-down NHS or university browser and passes a strict CSP. A lead
// signs in with an ig-auditor token; the session is an opaque random id in
// an HttpOnly, SameSite=Strict cookie (Secure over TLS), mapped to the
// client in this process's memory. A deployment with several replicas needs
// sticky sessions for /ui/. No personal data is ever put in a URL: the
// filter form is posted, kept in the session and named by an opaque key.

//go:embed ui
var uiFiles embed.FS

// Session lifetimes: an idle session ends after uiIdle, any session after
// uiMaxAge.
const (
	uiIdle   = 30 * time.Minute
	uiMaxAge = 8 * time.Hour
	// uiMaxSearches bounds the searches one session keeps.
	uiMaxSearches = 32
	// uiMaxForm bounds a posted form.
	uiMaxForm = 16 << 10

	sessionCookie = "gw_session"
	loginCookie   = "gw_login"
)

// uiContentSecurityPolicy allows only the gateway's own stylesheet: no
// script, no frame, no form posting elsewhere.
const uiContentSecurityPolicy = "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; img-src 'self'; style-src 'self'"

var uiTemplates = func() map[string]*template.Template {
	funcs := template.FuncMap{"join": strings.Join}
	pages := []string{"login.html", "decisions.html", "decision.html", "rules.html", "verify.html", "error.html", "evaluation.html", "notices.html"}
	out := map[string]*template.Template{}
	for _, p := range pages {
		out[p] = template.Must(template.New(p).Funcs(funcs).ParseFS(uiFiles, "ui/layout.html", "ui/"+p))
	}
	return out
}()

// uiSession is one signed-in IG lead.
type uiSession struct {
	client        gateway.Client
	csrf          string
	created, seen time.Time
	searches      map[string]uiSearch
	order         []string
}

// uiSearch is a posted filter form: the domain query (with the student's
// pseudonyms, never the identifier) and the form as shown again.
type uiSearch struct {
	query   gateway.Query
	form    auditFilters
	student bool
}

// uiSessions maps session ids (by their SHA-256, so that a lookup leaks
// nothing through timing) to sessions.
type uiSessions struct {
	mu sync.Mutex
	m  map[string]*uiSession
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on a supported platform
	return base64.RawURLEncoding.EncodeToString(b)
}

func (ss *uiSessions) create(c gateway.Client, now time.Time) string {
	id := randomToken()
	sess := &uiSession{client: c, csrf: randomToken(), created: now, seen: now, searches: map[string]uiSearch{}}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for k, s := range ss.m { // sweep expired sessions at each sign-in
		if s.expired(now) {
			delete(ss.m, k)
		}
	}
	ss.m[hashHex([]byte(id))] = sess
	return id
}

func (s *uiSession) expired(now time.Time) bool {
	return now.Sub(s.seen) > uiIdle || now.Sub(s.created) > uiMaxAge
}

// get returns the live session of id and marks it used.
func (ss *uiSessions) get(id string, now time.Time) *uiSession {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	k := hashHex([]byte(id))
	sess, ok := ss.m[k]
	if !ok {
		return nil
	}
	if sess.expired(now) {
		delete(ss.m, k)
		return nil
	}
	sess.seen = now
	return sess
}

func (ss *uiSessions) delete(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, hashHex([]byte(id)))
}

func (ss *uiSessions) saveSearch(sess *uiSession, s uiSearch) string {
	key := randomToken()[:22]
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(sess.order) >= uiMaxSearches {
		delete(sess.searches, sess.order[0])
		sess.order = sess.order[1:]
	}
	sess.searches[key] = s
	sess.order = append(sess.order, key)
	return key
}

func (ss *uiSessions) search(sess *uiSession, key string) (uiSearch, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := sess.searches[key]
	return s, ok
}

// ui serves the web page.
type ui struct {
	s        *Server
	sessions *uiSessions
}

// uiRoutes adds the web page. The routes are in openapi.json too, as HTML.
func (s *Server) uiRoutes(r *mux.Router) {
	u := &ui{s: s, sessions: &uiSessions{m: map[string]*uiSession{}}}
	h := uiHeaders
	r.HandleFunc("/ui", h(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
	})).Methods(http.MethodGet)
	r.HandleFunc("/ui/", h(u.handleHome)).Methods(http.MethodGet)
	r.HandleFunc("/ui/login", h(u.handleLogin)).Methods(http.MethodPost)
	r.HandleFunc("/ui/logout", h(u.signedIn(u.handleLogout))).Methods(http.MethodPost)
	r.HandleFunc("/ui/decisions", h(u.signedIn(u.handleDecisions))).Methods(http.MethodGet)
	r.HandleFunc("/ui/decisions", h(u.signedIn(u.handleFilter))).Methods(http.MethodPost)
	r.HandleFunc("/ui/decisions/{id}", h(u.signedIn(u.handleDecision))).Methods(http.MethodGet)
	r.HandleFunc("/ui/export", h(u.signedIn(u.handleExport))).Methods(http.MethodGet)
	r.HandleFunc("/ui/rules", h(u.signedIn(u.handleRules))).Methods(http.MethodGet)
	r.HandleFunc("/ui/notices", h(u.signedIn(u.handleNotices))).Methods(http.MethodGet)
	r.HandleFunc("/ui/verify", h(u.signedIn(u.handleVerify))).Methods(http.MethodGet)
	r.HandleFunc("/ui/checkpoint", h(u.signedIn(u.handleCheckpoint))).Methods(http.MethodGet)
	r.HandleFunc("/ui/evaluation", h(u.signedIn(u.handleEvaluation))).Methods(http.MethodGet)
	u.replayRoutes(r)
	r.HandleFunc("/ui/static/{file}", h(handleStatic)).Methods(http.MethodGet)
}

// uiHeaders sets the security headers of every page.
func uiHeaders(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", uiContentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if !strings.HasPrefix(r.URL.Path, "/ui/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next(w, r)
	}
}

func handleStatic(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["file"]
	b, err := fs.ReadFile(uiFiles, "ui/static/"+name)
	if err != nil || !strings.HasSuffix(name, ".css") {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(b)
}

// session returns the live session of r's cookie, or nil.
func (u *ui) session(r *http.Request) *uiSession {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	return u.sessions.get(c.Value, u.s.now())
}

// signedIn lets only a live session through; others go to the sign-in
// page. The client is in the request's context, as for the API; an error
// the handler returns is shown as a page.
func (u *ui) signedIn(next func(http.ResponseWriter, *http.Request, *uiSession) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := u.session(r)
		if sess == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/ui/", http.StatusSeeOther)
				return
			}
			u.renderError(w, r, nil, http.StatusUnauthorized, "Your session has ended. Sign in again.")
			return
		}
		client := sess.client
		r = r.WithContext(gateway.WithClient(r.Context(), &client))
		if err := next(w, r, sess); err != nil {
			u.failed(w, r, sess, err)
		}
	}
}

// sameOrigin refuses a state-changing request that a browser says came
// from another site (defence in depth beside the CSRF token and
// SameSite=Strict).
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}

// postedForm reads a posted form within uiMaxForm and checks it: from the
// same origin, with the CSRF token csrf.
func postedForm(w http.ResponseWriter, r *http.Request, csrf string) bool {
	if !sameOrigin(r) || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, uiMaxForm)
	return r.ParseForm() == nil && csrf != "" && subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(csrf)) == 1
}

// checkCSRF checks a signed-in form, with the session's CSRF token.
func (u *ui) checkCSRF(w http.ResponseWriter, r *http.Request, sess *uiSession) bool {
	if !postedForm(w, r, sess.csrf) {
		u.renderError(w, r, sess, http.StatusForbidden, "The form could not be accepted (it was stale or did not come from this page). Go back, reload the page and try again.")
		return false
	}
	return true
}

func (u *ui) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/ui/", MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

// page is what every template gets.
type page struct {
	Title  string
	Nav    string
	Client *gateway.Client
	CSRF   string
	Notice string
	Error  string
	Data   any
}

// render renders page name for sess (nil before sign-in).
func (u *ui) render(w http.ResponseWriter, r *http.Request, sess *uiSession, status int, name string, p page) {
	if sess != nil {
		p.Client, p.CSRF = &sess.client, sess.csrf
	}
	var buf bytes.Buffer
	if err := uiTemplates[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		logFrom(r.Context()).Error("render page", zap.String("page", name), zap.Error(err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (u *ui) renderError(w http.ResponseWriter, r *http.Request, sess *uiSession, status int, msg string) {
	u.render(w, r, sess, status, "error.html", page{Title: http.StatusText(status), Error: msg})
}

// handleHome is the sign-in page, or the decisions for a signed-in lead.
func (u *ui) handleHome(w http.ResponseWriter, r *http.Request) {
	if sess := u.session(r); sess != nil {
		http.Redirect(w, r, homeOf(&sess.client), http.StatusSeeOther)
		return
	}
	u.loginPage(w, r, http.StatusOK, "")
}

// loginPage renders the sign-in form with a fresh login CSRF token, held in
// a cookie and in the form (double submit): no one else's page can sign a
// lead in to an attacker's session.
func (u *ui) loginPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	tok := randomToken()
	u.setCookie(w, r, loginCookie, tok, 600)
	u.render(w, r, nil, status, "login.html", page{Title: "Sign in", CSRF: tok, Error: msg})
}

// handleLogin checks the posted token: it must be an IG auditor's bound to
// an institution. The token is never logged or kept; the session holds the
// client it names.
func (u *ui) handleLogin(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(loginCookie)
	if err != nil || !postedForm(w, r, c.Value) {
		u.loginPage(w, r, http.StatusForbidden, "The sign-in form had expired. Please try again.")
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	if token == "" {
		u.loginPage(w, r, http.StatusUnauthorized, "Enter your access token.")
		return
	}
	if u.s.Auth == nil {
		u.loginPage(w, r, http.StatusServiceUnavailable, "Sign-in is not configured on this gateway.")
		return
	}
	probe := &http.Request{Header: http.Header{"Authorization": {"Bearer " + token}}}
	client, err := u.s.Auth.Authenticate(probe)
	if err != nil {
		u.loginPage(w, r, http.StatusUnauthorized, "That access token was not accepted.")
		return
	}
	if !(client.Has(gateway.RoleAuditor) && client.Institution != "") && !evaluator(client) {
		u.loginPage(w, r, http.StatusForbidden, "That access token is not an IG auditor's or a partnership evaluator's. This page is for information-governance leads and evaluators.")
		return
	}
	id := u.sessions.create(*client, u.s.now())
	u.setCookie(w, r, sessionCookie, id, 0)
	u.setCookie(w, r, loginCookie, "", -1)
	logFrom(r.Context()).Info("ui sign-in", zap.String("client", client.ID))
	http.Redirect(w, r, homeOf(client), http.StatusSeeOther)
}

func (u *ui) handleLogout(w http.ResponseWriter, r *http.Request, sess *uiSession) error {
	if !u.checkCSRF(w, r, sess) {
		return nil
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		u.sessions.delete(c.Value)
	}
	u.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
	return nil
}

// option is one choice of a select.
type option struct {
	Value, Label string
}

// decisionsData is the decisions page. Form is the filter form as shown;
// the student identifiers are never shown again, only whether a student
// filter is on.
type decisionsData struct {
	Form    auditFilters
	Student bool
	Search  string
	Rows    []row
	Newest  bool
	// The links to the next page, the newest page and the two exports.
	NextURL, NewestURL, CSVURL, FHIRURL string
	// The choices of the form's selects.
	Kinds, Outcomes, Rules, Routes, Recipients []option
	FreeRecipient                              bool
	Filtered                                   bool
	// Count is how many records match, in words ("1 record", "more than
	// 5,000 records").
	Count string
}

// row is one record in the list.
type row struct {
	Link, ID, Recorded, Kind, Outcome, OutcomeClass, Route, Recipient, CaseID, Action string
	// ApprovedBy names who approved an override (name and role), or says
	// none was recorded, so that a list of overrides answers "who approved
	// it" without opening each.
	ApprovedBy string
	// DeniedBy are the refusing rules, each with its title.
	DeniedBy         []option
	Override, DryRun bool
}

func (u *ui) handleDecisions(w http.ResponseWriter, r *http.Request, sess *uiSession) error {
	vals := r.URL.Query()
	var search uiSearch
	data := decisionsData{}
	notice := ""
	if key := vals.Get("q"); key != "" {
		s, ok := u.sessions.search(sess, key)
		if ok {
			search, data.Search = s, key
		} else {
			notice = "That search has expired, so the filters were cleared."
		}
	}
	q := search.query
	q.Order, q.Limit, q.Cursor = "desc", 25, vals.Get("cursor")
	pageRes, err := u.s.audit().Search(r.Context(), gateway.ClientFrom(r.Context()), q)
	if gateway.ErrorCode(err) == gateway.EINVALID && q.Cursor != "" {
		q.Cursor = ""
		pageRes, err = u.s.audit().Search(r.Context(), gateway.ClientFrom(r.Context()), q)
	}
	if err != nil {
		return err
	}
	data.Form, data.Student = search.form, search.student
	data.Filtered = search.form != (auditFilters{}) || search.student
	data.Newest = q.Cursor == ""
	meta := u.s.rulesByID()
	for _, rec := range pageRes.Records {
		rw := rowOf(rec)
		for _, id := range rec.DeniedBy() {
			rw.DeniedBy = append(rw.DeniedBy, option{id, meta[id].Title})
		}
		data.Rows = append(data.Rows, rw)
	}
	if data.Count, err = u.count(r, search.query); err != nil {
		return err
	}
	// link is path with the parameters v and the search's key, if any.
	link := func(path string, v url.Values) string {
		if data.Search != "" {
			v.Set("q", data.Search)
		}
		if len(v) == 0 {
			return path
		}
		return path + "?" + v.Encode()
	}
	if pageRes.Next != "" {
		data.NextURL = link("/ui/decisions", url.Values{"cursor": {pageRes.Next}})
	}
	data.NewestURL = link("/ui/decisions", url.Values{})
	data.CSVURL = link("/ui/export", url.Values{"format": {"csv"}})
	data.FHIRURL = link("/ui/export", url.Values{"format": {"fhir"}})
	u.fillChoices(&data)
	u.render(w, r, sess, http.StatusOK, "decisions.html", page{Title: "Decisions", Nav: "decisions", Notice: notice, Data: data})
	return nil
}

// uiCountCap bounds the records counted for the list's count: beyond it the
// page says "more than", so that a page view never reads an unbounded chain.
const uiCountCap = 5000

var errCountCapped = errors.New("count capped")

// count says how many records match q, up to uiCountCap.
func (u *ui) count(r *http.Request, q gateway.Query) (string, error) {
	n := 0
	err := u.s.audit().Each(r.Context(), gateway.ClientFrom(r.Context()), q, func(gateway.AuditRecord) error {
		if n++; n > uiCountCap {
			return errCountCapped
		}
		return nil
	})
	switch {
	case errors.Is(err, errCountCapped):
		return "More than " + thousands(uiCountCap) + " records", nil
	case err != nil:
		return "", err
	case n == 1:
		return "1 record", nil
	}
	return thousands(n) + " records", nil
}

// thousands writes n with thousands separators: 12,345.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func (u *ui) fillChoices(d *decisionsData) {
	d.Kinds = []option{{"", "Any"}, {gateway.RecordReferral, "Referrals"}, {gateway.RecordDryRun, "Dry runs"}, {gateway.RecordAction, "Actions (cancellations, retries, drops, students told)"}}
	d.Outcomes = []option{{"", "Any"}, {gateway.OutcomeAllow, "Allowed"}, {gateway.OutcomeDeny, "Refused"}}
	d.Rules = []option{{"", "Any"}}
	if u.s.Rules != nil {
		for _, pr := range u.s.Rules() {
			d.Rules = append(d.Rules, option{pr.ID, pr.ID + ": " + pr.Title})
		}
	}
	d.Routes = []option{{"", "Any"}, {"consent", routeLabel("consent")}, {gateway.RouteAnyOverride, "Any override (without consent)"}}
	for _, g := range gateway.OverrideGrounds {
		d.Routes = append(d.Routes, option{g, routeLabel(g)})
	}
	if u.s.Evaluator != nil && u.s.Evaluator.Registry != nil {
		d.Recipients = []option{{"", "Any"}}
		for _, svc := range u.s.Evaluator.Registry.Services() {
			d.Recipients = append(d.Recipients, option{svc.ID, svc.Name + " (" + svc.Organization.ODSCode + ")"})
		}
	} else {
		d.FreeRecipient = true
	}
}

// handleFilter takes the posted filter form, keeps it in the session and
// shows its results at an opaque address: the student's NHS number or
// student id never reaches a URL, a log or the page.
func (u *ui) handleFilter(w http.ResponseWriter, r *http.Request, sess *uiSession) error {
	if !u.checkCSRF(w, r, sess) {
		return nil
	}
	pf := r.PostForm
	if pf.Has("clear") {
		http.Redirect(w, r, "/ui/decisions", http.StatusSeeOther)
		return nil
	}
	form := auditFilters{From: pf.Get("from"), To: pf.Get("to"), Kind: pf.Get("kind"), Outcome: pf.Get("outcome"),
		RuleID: pf.Get("ruleId"), Route: pf.Get("route"), Recipient: strings.TrimSpace(pf.Get("recipient")), CaseID: strings.TrimSpace(pf.Get("caseId"))}
	q, err := form.query()
	if err == nil {
		err = q.Validate()
	}
	nhs, sid := pf.Get("nhsNumber"), pf.Get("studentId")
	student := strings.TrimSpace(nhs) != "" || strings.TrimSpace(sid) != ""
	if err == nil && student {
		q.Students, err = u.s.audit().StudentPseudonyms(gateway.ClientFrom(r.Context()), nhs, sid)
	}
	if err != nil {
		return err
	}
	key := u.sessions.saveSearch(sess, uiSearch{query: q, form: form, student: student})
	http.Redirect(w, r, "/ui/decisions?q="+url.QueryEscape(key), http.StatusSeeOther)
	return nil
}

// failed shows a domain error as a page: the issues' messages, which never
// echo what was posted.
func (u *ui) failed(w http.ResponseWriter, r *http.Request, sess *uiSession, err error) {
	e := gateway.AsError(err)
	msg := e.Message
	if e.Code == gateway.EINTERNAL {
		ref := RequestID(r.Context())
		logFrom(r.Context()).Error("internal error", zap.Error(e.Err), zap.String("ref", ref))
		msg = "Something went wrong on the gateway (reference " + ref + ")."
	} else if len(e.Issues) > 0 {
		msgs := make([]string, len(e.Issues))
		for i, is := range e.Issues {
			msgs[i] = is.Message
		}
		msg = strings.Join(msgs, " ")
	}
	u.renderError(w, r, sess, Status(e.Code), msg)
}

func (u *ui) handleExport(w http.ResponseWriter, r *http.Request, sess *uiSession) error {
	vals := r.URL.Query()
	var q gateway.Query
	if key := vals.Get("q"); key != "" {
		s, ok := u.sessions.search(sess, key)
		if !ok {
			return &gateway.Error{Code: gateway.ENOTFOUND, Message: "That search has expired. Filter the decisions again, then export."}
		}
		q = s.query
	}
	q.Order, q.Cursor, q.Limit = "asc", "", 0
	format := vals.Get("format")
	if format != "csv" && format != "fhir" {
		return &gateway.Error{Code: gateway.EMALFORMED, Message: "Choose an export format: CSV or FHIR."}
	}
	return u.s.export(w, r, format, q)
}

type ruleView struct {
	ID, Effect, EffectLabel, EffectClass, Message, Title, Description, Source, Theme string
}

type overrideView struct {
	Ground, GroundText, DecidedBy, ApprovedBy, DecidedAt, Informed, InformedText string
	NoApprover, NotTold, Refused                                                 bool
}

// noticeView is where the notice to the student of a stored share stands
// (T-01).
type noticeView struct {
	Delivered, Told, Method string
	// Stopped is the status of a share not delivered whose delivery has
	// stopped (cancelled, failed, dead-lettered): no notice unless an
	// operator retries it, or a cancelled share's message still goes out.
	Stopped  string
	HeldBack *gateway.HeldBack
}

type basisView struct{ Code, Text string }

type detailData struct {
	Rec                                          gateway.AuditRecord
	Others                                       []option
	Recorded, Kind, Outcome, OutcomeClass, Route string
	// DecisionTime is the decision's time, in the page's one format.
	DecisionTime string
	// Rules are the rules that refused or imposed an obligation, shown in
	// full; Passed those that passed, folded away.
	Rules, Passed           []ruleView
	Notice                  *noticeView
	Override                *overrideView
	Bases                   []basisView
	Obligations             []string
	Categories              string
	Action                  *gateway.ActionEntry
	ActionLabel, InformedAt string
}

func (u *ui) handleDecision(w http.ResponseWriter, r *http.Request, sess *uiSession) error {
	seq, err := seqParam(r)
	if err != nil {
		return err
	}
	rec, others, err := u.s.audit().Record(r.Context(), gateway.ClientFrom(r.Context()), mux.Vars(r)["id"], seq)
	if err != nil {
		return err
	}
	rw := rowOf(rec)
	d := detailData{Rec: rec, Recorded: rw.Recorded, Kind: rw.Kind, Outcome: rw.Outcome, OutcomeClass: rw.OutcomeClass, Route: rw.Route}
	for _, o := range others {
		d.Others = append(d.Others, option{"/ui/decisions/" + url.PathEscape(rec.ID) + "?seq=" + strconv.FormatInt(o, 10), "record " + strconv.FormatInt(o, 10)})
	}
	if dec := rec.Decision; dec != nil {
		meta := u.s.rulesByID()
		for _, rr := range dec.Rules {
			pr, ok := meta[rr.ID]
			v := ruleView{ID: rr.ID, Effect: rr.Effect, Message: rr.Message, Title: pr.Title, Description: pr.Description, Source: pr.Source, Theme: pr.Theme}
			if !ok {
				v.Title = "This rule is not in the policy set in force now (the record was made under revision " + dec.PolicyRevision + ")."
			}
			v.EffectLabel, v.EffectClass = effectLabel(rr.Effect)
			if rr.Effect == gateway.EffectAllow {
				d.Passed = append(d.Passed, v)
			} else {
				d.Rules = append(d.Rules, v)
			}
		}
		// Refusals first, then obligations; the rules that passed apart.
		slices.SortStableFunc(d.Rules, func(a, b ruleView) int { return effectRank(a.Effect) - effectRank(b.Effect) })
		d.DecisionTime = instantText(dec.Time)
		d.Bases = basesOf(dec.LawfulBases)
		for _, ob := range dec.Obligations {
			d.Obligations = append(d.Obligations, ob.Rule+": "+cmp.Or(ob.Message, ob.Type))
		}
		d.Categories = strings.Join(dec.DataCategories, ", ")
		if o := dec.Override; o != nil {
			d.Override = overrideOf(o)
			d.Override.Refused = !dec.Allow
		}
		if d.Notice, err = u.noticeOf(r, dec); err != nil {
			return err
		}
	}
	if a := rec.Action; a != nil {
		d.Action, d.ActionLabel, d.InformedAt = a, actionLabel(a.Action), instantText(a.InformedAt)
	}
	u.render(w, r, sess, http.StatusOK, "decision.html", page{Title: "Decision " + rec.ID, Nav: "decisions", Data: d})
	return nil
}

func (u *ui) handleRules(w http.ResponseWriter, r *http.Request, sess *uiSession) error {
	var rules []gateway.PolicyRule
	if u.s.Rules != nil {
		rules = u.s.Rules()
	}
	u.render(w, r, sess, http.StatusOK, "rules.html", page{Title: "Policy rules", Nav: "rules", Data: rules})
	return nil
}

func (u *ui) handleVerify(w http.ResponseWriter, r *http.Request, sess *uiSession) error {
	v, err := u.s.audit().Verify(r.Context(), gateway.ClientFrom(r.Context()))
	if err != nil {
		return err
	}
	u.render(w, r, sess, http.StatusOK, "verify.html", page{Title: "Check the audit trail", Nav: "verify", Data: StatusOf(v)})
	return nil
}

// handleCheckpoint serves the newest signed checkpoint as it was written,
// so that an IG lead can keep a copy the gateway cannot change and later
// hold the chains to it (`gateway audit verify --checkpoints DIR`). It lists
// every institution's chain head: numbers and hashes, no records.
func (u *ui) handleCheckpoint(w http.ResponseWriter, r *http.Request, sess *uiSession) error {
	var cp *gateway.Checkpoint
	var err error
	if u.s.Checkpoints != nil {
		cp, err = u.s.Checkpoints.Latest()
	}
	if err != nil {
		return &gateway.Error{Code: gateway.ECONFLICT, Message: "The checkpoints on the gateway are not intact: " + err.Error() + ". Report this to your gateway operator."}
	}
	if cp == nil {
		return &gateway.Error{Code: gateway.ENOTFOUND, Message: "No checkpoint has been written yet."}
	}
	w.Header().Set("Content-Type", MediaJSON)
	w.Header().Set("Content-Disposition", `attachment; filename="`+cp.Name+`"`)
	_, _ = w.Write(cp.File)
	return nil
}

// Plain-English labels.

// uiTimeFormat is the one way the page writes a time: UK time, to the second.
const uiTimeFormat = "2 Jan 2006 15:04:05"

func londonTime(t time.Time) string { return t.In(london).Format(uiTimeFormat) }

// instantText writes an RFC 3339 instant as the page writes times, or the
// text as it is when it is not one.
func instantText(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return s
	}
	return londonTime(t)
}

func rowOf(rec gateway.AuditRecord) row {
	rw := row{ID: rec.ID, Recorded: londonTime(rec.RecordedAt),
		Link: "/ui/decisions/" + url.PathEscape(rec.ID) + "?seq=" + strconv.FormatInt(rec.Seq, 10)}
	switch rec.Kind {
	case gateway.RecordReferral:
		rw.Kind = "Referral"
	case gateway.RecordDryRun:
		rw.Kind, rw.DryRun = "Dry run (nothing sent)", true
	default:
		rw.Kind = "Action"
	}
	if d := rec.Decision; d != nil {
		rw.Outcome, rw.OutcomeClass = "Allowed", "tag-allow"
		if d.Outcome == gateway.OutcomeDeny {
			rw.Outcome, rw.OutcomeClass = "Refused", "tag-deny"
		}
		rw.Route, rw.Override = routeLabel(d.Route), rec.Override()
		if rw.Override {
			rw.ApprovedBy = "none recorded"
			if o := d.Override; o != nil && o.ApprovedBy != nil && o.ApprovedBy.Name != "" {
				rw.ApprovedBy = o.ApprovedBy.Name + " (" + roleLabel(o.ApprovedBy.Role) + ")"
			}
		}
		rw.Recipient = d.Recipient.Name
		rw.CaseID = d.CaseID
	}
	if a := rec.Action; a != nil {
		rw.Outcome, rw.OutcomeClass = actionLabel(a.Action), "tag-action"
		rw.Action, rw.CaseID, rw.Recipient = a.By, a.CaseID, a.Service
	}
	return rw
}

func routeLabel(r string) string {
	switch {
	case r == "consent":
		return "Consent"
	case slices.Contains(gateway.OverrideGrounds, r):
		return "Override: " + roleLabel(r)
	}
	return r
}

func actionLabel(a string) string {
	switch a {
	case gateway.ActionReferralCancel:
		return "Referral cancelled"
	case gateway.ActionOutboxRetry:
		return "Delivery retried"
	case gateway.ActionOutboxDrop:
		return "Delivery dropped"
	case gateway.ActionPolicyReload:
		return "Policies reloaded"
	case gateway.ActionRetentionPurge:
		return "Content deleted (retention)"
	case gateway.ActionStudentInformed:
		return "Student told"
	case gateway.ActionResponseStep:
		return "Service reported a step"
	case gateway.ActionResponseRefused:
		return "Service response refused"
	case gateway.ActionPolicyReplay:
		return "Policy change replayed"
	}
	return a
}

func effectLabel(e string) (string, string) {
	switch e {
	case gateway.EffectDeny:
		return "Refused", "tag-deny"
	case gateway.EffectObligation:
		return "Obligation", "tag-obligation"
	case gateway.EffectAllow:
		return "Passed", "tag-allow"
	}
	return e, "tag-action"
}

// noticeOf is where the notice of the share a referral decision stored
// stands; nil for a refusal or a dry run, which stored nothing.
func (u *ui) noticeOf(r *http.Request, dec *gateway.DecisionEntry) (*noticeView, error) {
	if !dec.Allow || dec.DryRun || dec.ReferralID == "" || u.s.Intake == nil || u.s.Intake.Store == nil {
		return nil, nil
	}
	sh, err := u.s.Intake.Store.Share(r.Context(), gateway.ClientFrom(r.Context()).Institution, dec.ReferralID)
	if err != nil {
		return nil, err
	}
	v := &noticeView{HeldBack: sh.HeldBack()}
	switch st := sh.Referral.Status; {
	case !sh.DeliveredAt.IsZero():
		v.Delivered = londonTime(sh.DeliveredAt)
	case st == gateway.StatusCancelled || st == gateway.StatusFailed || st == gateway.StatusDeadLettered:
		v.Stopped = string(st)
	}
	if sh.Informed != nil {
		v.Told, v.Method = londonTime(sh.Informed.At), roleLabel(sh.Informed.Method)
	}
	return v, nil
}

// untoldRow is a delivered share whose student has not yet been told.
type untoldRow struct {
	Link, Delivered, Route, Recipient, CaseID, Obligation string
	HeldBack                                              *gateway.HeldBack
}

// uiUntoldLimit bounds the shares the page lists.
const uiUntoldLimit = 200

// handleNotices lists the delivered shares whose student has not yet been
// told (T-01), oldest first, and apart from them those whose notice is
// held back, with the coded reason.
func (u *ui) handleNotices(w http.ResponseWriter, r *http.Request, sess *uiSession) error {
	var data struct {
		Untold, Held []untoldRow
		Capped       bool
	}
	shares, err := u.s.Intake.Untold(r.Context(), gateway.ClientFrom(r.Context()), uiUntoldLimit)
	if err != nil {
		return err
	}
	data.Capped = len(shares) == uiUntoldLimit
	for _, sh := range shares {
		d := sh.Decision
		row := untoldRow{
			Link:      "/ui/decisions/" + url.PathEscape(sh.Referral.DecisionID),
			Delivered: londonTime(sh.DeliveredAt), Route: routeLabel(d.Route), Recipient: d.Recipient.Name,
			CaseID: sh.Referral.CaseID, HeldBack: sh.HeldBack(),
		}
		if ob, ok := d.NotifyObligation(); ok {
			row.Obligation = ob.Rule + ": " + ob.Message
		} else if o := d.Override; o != nil && o.StudentInformed == "informed" {
			row.Obligation = "The case record says the student was told before the share: confirm that the notice was handed over."
		}
		if row.HeldBack != nil {
			data.Held = append(data.Held, row)
		} else {
			data.Untold = append(data.Untold, row)
		}
	}
	u.render(w, r, sess, http.StatusOK, "notices.html", page{Title: "Students to tell", Nav: "notices", Data: data})
	return nil
}

func effectRank(e string) int {
	switch e {
	case gateway.EffectDeny:
		return 0
	case gateway.EffectObligation:
		return 1
	}
	return 2
}

var groundTexts = map[string]string{
	"safeguarding":    "Safeguarding: the student is under 18 or an adult at risk, and sharing protects them from serious harm (UK GDPR Art. 9(2)(g) with DPA 2018 Sch. 1 para. 18).",
	"vital-interests": "Vital interests: a matter of life or death for a student who cannot consent (UK GDPR Art. 9(2)(c)).",
	"best-interests":  "Best interests: the student lacks capacity for this decision (Mental Capacity Act 2005).",
	"public-interest": "Public interest: a documented public-interest justification for sharing without consent.",
}

var informedTexts = map[string]string{
	"informed":     "Yes: the student was told of the decision to share without consent, with whom and why.",
	"will-inform":  "Not yet: telling the student is delayed. The reason is kept in the university's case record, not in this audit trail.",
	"not-informed": "No: the student has not been told. The reason is kept in the university's case record, not in this audit trail.",
}

func overrideOf(o *gateway.OverrideEntry) *overrideView {
	v := &overrideView{Ground: roleLabel(o.Ground), GroundText: groundTexts[o.Ground], DecidedAt: instantText(o.DecidedAt), Informed: o.StudentInformed}
	if p := o.DecidedBy; p != nil {
		v.DecidedBy = p.Name + " (" + roleLabel(p.Role) + ")"
	}
	if p := o.ApprovedBy; p != nil {
		v.ApprovedBy = p.Name + " (" + roleLabel(p.Role) + ")"
	} else {
		v.NoApprover = true
	}
	v.InformedText = informedTexts[o.StudentInformed]
	if v.InformedText == "" {
		v.InformedText = "Not recorded: the case record did not say whether the student was told."
	}
	v.NotTold = o.StudentInformed != "informed"
	return v
}

// roleLabel writes a code in words: "vital-interests" as "vital interests".
func roleLabel(r string) string { return strings.ReplaceAll(r, "-", " ") }

func basesOf(lb gateway.LawfulBasis) []basisView {
	var out []basisView
	if lb.Article6 != "" {
		out = append(out, basisView{"UK GDPR Art. " + lb.Article6, gateway.Article6Texts[lb.Article6]})
	}
	if lb.Article9 != "" {
		out = append(out, basisView{"UK GDPR Art. " + lb.Article9, gateway.Article9Texts[lb.Article9]})
	}
	if lb.DPASchedule1 != "" {
		out = append(out, basisView{"DPA 2018 Sch. 1 " + strings.Replace(lb.DPASchedule1, "para-", "para. ", 1), gateway.Schedule1Texts[lb.DPASchedule1]})
	}
	return out
}
