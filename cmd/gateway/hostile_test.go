package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"go.uber.org/zap"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
)

// This file holds the API to its promise under hostile input: every
// malformed or hostile request gets the right 4xx with an OperationOutcome
// (or, for an invalid record on $evaluate, the evaluation document with its
// operationOutcome), never a 5xx and never a hang; and slow or oversized
// senders are cut off by the limits `gateway serve` runs with. The requests
// are sent as raw bytes over TCP to a listener built by newHTTPServer, so
// what is tested is what a client on the network meets: paths, headers and
// bodies exactly as written here, not as an HTTP client would tidy them.

// hostileAPI is the wired API (as `gateway serve` wires it, with the output
// gate switched on) over a fresh SQLite store, serving on a real listener
// with the given limits. ref is a referral of the Liverpool submitter,
// accepted before the table runs.
type hostileAPI struct {
	addr    string
	handler http.Handler
	ref     string
	// bundle is the id of the referral's Bundle, delivered: what a
	// well-formed response answers.
	bundle string
}

func newHostileAPI(t testing.TB, lim serverLimits) *hostileAPI {
	t.Helper()
	ctx := context.Background()
	a, err := newApp(ctx, "", io.Discard, "error")
	if err != nil {
		t.Fatal(err)
	}
	// The output gate is on, as in `gateway serve`: a message built from
	// user input that is not valid FHIR would be a 500 here, and a bug in the
	// contract's validation.
	if a.evaluator.Validator == nil {
		t.Fatal("the wired evaluator has no output gate")
	}
	store, err := openStore(ctx, config.Store{Driver: "sqlite", Path: filepath.Join(t.TempDir(), "gateway.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	key, err := a.cfg.PseudonymKey()
	if err != nil {
		t.Fatal(err)
	}
	api, _ := a.server(store, key)
	h := api.Handler()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(h, zap.NewNop(), lim)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	out := &hostileAPI{addr: ln.Addr().String(), handler: h}

	rr := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/v1/referrals", bytes.NewReader(readCaseTB(t, "allow-liverpool-u-cope")))
	req.Header.Set("Authorization", "Bearer "+liverpool)
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rr, req)
	var sub struct{ ID string }
	if rr.Code != http.StatusAccepted || json.Unmarshal(rr.Body.Bytes(), &sub) != nil || sub.ID == "" {
		t.Fatalf("setup: submit gave %d: %s", rr.Code, rr.Body)
	}
	out.ref = sub.ID
	deliverDue(t, store)
	out.bundle = sentBundleID(t, store, sub.ID)
	return out
}

func readCaseTB(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cases", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawRequest is one request as it goes on the wire.
type rawRequest struct {
	method, target string
	// auth is the Authorization header: "" sends the route's usual client's
	// token (a submitter's, a receiver's on /fhir), "-" sends none.
	auth string
	// ctype is the Content-Type: "" sends application/json (application/
	// fhir+json on /fhir) when there is a body, "-" sends none.
	ctype string
	// header lines are sent verbatim after the usual ones.
	header []string
	body   []byte
	// raw, when set, is sent instead of everything above.
	raw []byte
}

func (r rawRequest) bytes() []byte {
	if r.raw != nil {
		return r.raw
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n", r.method, r.target)
	inbound := strings.HasPrefix(r.target, "/fhir")
	switch {
	case r.auth == "" && inbound:
		b.WriteString("Authorization: Bearer " + receiver + "\r\n")
	case r.auth == "":
		b.WriteString("Authorization: Bearer " + liverpool + "\r\n")
	case r.auth != "-":
		b.WriteString("Authorization: " + r.auth + "\r\n")
	}
	switch {
	case r.ctype == "" && r.body != nil && inbound:
		b.WriteString("Content-Type: application/fhir+json\r\n")
	case r.ctype == "" && r.body != nil:
		b.WriteString("Content-Type: application/json\r\n")
	case r.ctype != "" && r.ctype != "-":
		b.WriteString("Content-Type: " + r.ctype + "\r\n")
	}
	framed := false
	for _, h := range r.header {
		b.WriteString(h + "\r\n")
		lh := strings.ToLower(h)
		framed = framed || strings.HasPrefix(lh, "content-length:") || strings.HasPrefix(lh, "transfer-encoding:")
	}
	if !framed && (r.body != nil || r.method == "POST") {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(r.body))
	}
	b.WriteString("\r\n")
	b.Write(r.body)
	return b.Bytes()
}

// exchange sends req and reads the answer; the deadline is what "never a
// hang" means here.
func exchange(addr string, req rawRequest, deadline time.Duration) (*http.Response, []byte, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(deadline))
	// The body is written while the answer is read: a server that refuses a
	// large body early answers before it has all been sent.
	go func() { _, _ = conn.Write(req.bytes()) }()
	method := req.method
	if req.raw != nil {
		method, _, _ = strings.Cut(string(req.raw), " ")
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// Kinds of answer.
const (
	asOutcome    = "outcome"    // an OperationOutcome, application/fhir+json
	asEvaluation = "evaluation" // the evaluation document, outcome invalid, with its operationOutcome
	asNetHTTP    = "net/http"   // refused by Go's HTTP server before the API sees it (plain text)
)

type hostileCase struct {
	name string
	req  rawRequest
	// status is the status the request must get.
	status int
	// as is the kind of answer.
	as string
	// issue, when set, is an issue code that the OperationOutcome must hold.
	issue string
	// check, when set, looks further at the answer.
	check func(t *testing.T, resp *http.Response, body []byte)
}

// Builders of hostile bodies. Big bodies are generated, never stored.

// setJSON returns the case with the value at a dotted path replaced by raw
// JSON (which may be any valid JSON, 1e400 included), creating objects on
// the way.
func setJSON(t testing.TB, base []byte, path, raw string) []byte {
	t.Helper()
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(base))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	keys := strings.Split(path, ".")
	m := doc
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = json.RawMessage(raw)
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("setJSON %s=%.40s: %v", path, raw, err)
	}
	return b
}

// replaceOnce replaces the first old in base, failing if it is absent, for
// bodies that are not JSON or that JSON encoders would tidy (duplicate keys).
func replaceOnce(t testing.TB, base []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(base, []byte(old)) {
		t.Fatalf("%q not in the base body", old)
	}
	return bytes.Replace(base, []byte(old), []byte(new), 1)
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

func repeatJSON(item string, n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + "]"
}

func utf16LE(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u), byte(u>>8))
	}
	return b
}

// chunked encodes body in chunks of size n, with or without the last chunk.
func chunked(body []byte, n int, end bool) []byte {
	var b bytes.Buffer
	for len(body) > 0 {
		c := body[:min(n, len(body))]
		body = body[len(c):]
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(c), c)
	}
	if end {
		b.WriteString("0\r\n\r\n")
	}
	return b.Bytes()
}

// hostileCases is the table. Categories: body framing and encoding, JSON
// syntax, JSON types and numbers, strings and text, dates beyond FHIR,
// structure (nesting, duplicates, case, __proto__, sizes), size limits,
// media types, methods, paths and ids, query strings, authentication,
// headers, and inbound FHIR messages.
func hostileCases(t testing.TB, api *hostileAPI) []hostileCase {
	rec := readCaseTB(t, "allow-liverpool-u-cope")
	other := readCaseTB(t, "allow-uwe-safeguarding-override")
	resp := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "mappings", "testdata", "responses", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	set := func(path, raw string) []byte { return setJSON(t, rec, path, raw) }
	repl := func(old, new string) []byte { return replaceOnce(t, rec, old, new) }
	big := func(n int) string { return strings.Repeat("x", n) }
	const (
		submit   = "/v1/referrals"
		evaluate = "/v1/referrals/$evaluate"
		inbound  = "/fhir/$process-message"
	)
	ref := "/v1/referrals/" + api.ref
	cancel := ref + "/$cancel"
	post := func(target string, body []byte) rawRequest {
		return rawRequest{method: "POST", target: target, body: body}
	}
	get := func(target string) rawRequest { return rawRequest{method: "GET", target: target} }
	// Bodies posted both to submit (an OperationOutcome) and to evaluate
	// (the evaluation document), each with the status it must get.
	type bodyCase struct {
		name   string
		body   []byte
		status int
		issue  string
	}
	extra := func(raw string) []byte {
		return repl(`"underSecondaryCare": false`, `"underSecondaryCare": false, "x": `+raw)
	}
	bodies := []bodyCase{
		// Framing and encoding.
		{"empty body", []byte{}, 400, ""},
		{"white space only", []byte(" \r\n\t "), 400, ""},
		{"byte order mark", append([]byte("\xef\xbb\xbf"), rec...), 400, ""},
		{"UTF-16LE body", utf16LE(string(rec)), 400, ""},
		{"zero bytes", make([]byte, 1024), 400, ""},
		{"NUL byte inside a string", repl(`"Okafor"`, "\"Oka\x00for\""), 400, ""},
		{"truncated", rec[:len(rec)/2], 400, ""},
		{"trailing garbage", append(append([]byte{}, rec...), "garbage"...), 400, ""},
		{"two objects", append(append([]byte{}, rec...), rec...), 400, ""},
		// JSON syntax that some parsers take.
		{"single quotes", repl(`"u-cope",`, `'u-cope',`), 400, ""},
		{"trailing comma", repl(`"capacity": { "status": "presumed" }`, `"capacity": { "status": "presumed", }`), 400, ""},
		{"comment", repl(`"schemaVersion": "1",`, `"schemaVersion": "1", // v1`), 400, ""},
		{"NaN", extra("NaN"), 400, ""},
		{"Infinity", extra("-Infinity"), 400, ""},
		{"hex number", extra("0x10"), 400, ""},
		{"leading zero", extra("012"), 400, ""},
		{"unquoted key", repl(`"schemaVersion"`, `schemaVersion`), 400, ""},
		{"deep nesting beyond the parser's limit", []byte(strings.Repeat("[", 20000) + strings.Repeat("]", 20000)), 400, ""},
		// Not an object.
		{"null", []byte("null"), 422, "structure"},
		{"a list", []byte("[]"), 422, "structure"},
		{"a string", []byte(`"case"`), 422, "structure"},
		{"a number", []byte("1e400"), 422, "structure"},
		{"true", []byte("true"), 422, "structure"},
		{"empty object", []byte("{}"), 422, "required"},
		// Wrong JSON types.
		{"ukprn as a number", set("institution.ukprn", `10006842`), 422, "structure"},
		{"schemaVersion as a number", set("schemaVersion", `1`), 422, "structure"},
		{"boolean as a string", set("referral.underSecondaryCare", `"false"`), 422, "structure"},
		{"list as a string", set("student.name.given", `"Jordan"`), 422, "structure"},
		{"object as a list", set("consent", `[]`), 422, "structure"},
		{"list of objects as an object", set("referral.presentingNeeds", `{"code":"self-harm"}`), 422, "structure"},
		{"null for a required field", set("caseId", `null`), 422, "structure"},
		{"null for an optional field", set("student.gender", `null`), 422, "structure"},
		// Numbers.
		{"1e400", set("referral.riskAssessment", `{"score": 1e400}`), 422, "value"},
		{"-1e400", set("referral.riskAssessment", `{"score": -1e400}`), 422, "value"},
		{"NaN as text", set("referral.riskAssessment", `{"score": "NaN"}`), 422, "structure"},
		{"number for a date", set("student.dateOfBirth", `20040930`), 422, "structure"},
		// Strings and text.
		{"huge string", set("caseId", jsonString(big(200<<10))), 422, "too-long"},
		{"string over 10,000 characters", set("referral.summary", jsonString(big(10001))), 422, "too-long"},
		{"invalid UTF-8 in a value", repl(`"Okafor"`, "\"Oka\xfffor\""), 422, "structure"},
		{"invalid UTF-8 in a key", repl(`"family"`, "\"fam\xc3\x28ily\""), 422, "structure"},
		{"overlong UTF-8 encoding of a slash", repl(`"Okafor"`, "\"Oka\xc0\xafor\""), 422, "structure"},
		{"UTF-8 encoded surrogate", repl(`"Okafor"`, "\"Oka\xed\xa0\x80for\""), 422, "structure"},
		{"lone surrogate escape", repl(`"Okafor"`, `"Oka\ud800for"`), 422, "structure"},
		{"escaped NUL", repl(`"Okafor"`, `"Oka\u0000for"`), 422, "value"},
		{"escaped ESC in narrative", set("referral.summary", `"ok\u001b[31m"`), 422, "value"},
		{"escaped DEL", set("caseId", `"UOL\u007f"`), 422, "value"},
		{"C1 control", set("caseId", `"UOL\u0085"`), 422, "value"},
		{"line break in a name", set("referrer.name", `"Priya\nRaman"`), 422, "value"},
		{"white space only name", set("student.name.family", `"\u00a0 \t"`), 422, "value"},
		{"empty string", set("student.studentId", `""`), 422, "value"},
		{"SQL in the NHS number", set("student.nhsNumber", `"1' OR '1'='1"`), 422, "value"},
		{"unknown vocabulary code", set("referral.priority", `"asap"`), 422, "value"},
		{"vocabulary code in another case", set("referral.priority", `"Routine"`), 422, "value"},
		// Dates and instants, including ones FHIR cannot carry.
		{"bad date", set("student.dateOfBirth", `"2004-02-30"`), 422, "value"},
		{"year 0000 date of birth", set("student.dateOfBirth", `"0000-01-01"`), 422, "value"},
		{"year 0000 date that reaches FHIR", set("referral.safetyPlan.reviewedOn", `"0000-01-01"`), 422, "value"},
		{"instant without zone", set("consent.recordedAt", `"2026-11-18T11:20:00"`), 422, "value"},
		{"instant with offset 99:59", set("consent.recordedAt", `"2026-11-18T11:20:00+99:59"`), 422, "value"},
		{"instant with offset +15:00, beyond FHIR's 14:00", set("consent.recordedAt", `"2026-11-18T11:20:00+15:00"`), 422, "value"},
		{"instant with offset -14:30", set("consent.recordedAt", `"2026-11-18T11:20:00-14:30"`), 422, "value"},
		{"instant in year 0000", set("consent.expiresAt", `"0000-01-01T00:00:00Z"`), 422, "value"},
		// Structure.
		{"deep nesting", set("referral.summary", strings.Repeat("[", 5000)+strings.Repeat("]", 5000)), 422, "structure"},
		{"deep nesting in an unknown field", set("x", strings.Repeat(`{"a":`, 5000)+"1"+strings.Repeat("}", 5000)), 422, "structure"},
		{"duplicate key", repl(`"caseId": "UOL-SS-2026-04417",`, `"caseId": "UOL-SS-2026-04417", "caseId": "UOL-SS-2026-00001",`), 422, "structure"},
		{"duplicate nested key", repl(`"ukprn": "10006842"`, `"ukprn": "10006842", "ukprn": "10007164"`), 422, "structure"},
		{"keys that differ by case", repl(`"caseId"`, `"CaseId": "x", "caseId"`), 422, "structure"},
		{"key in the wrong case only", repl(`"caseId"`, `"CASEID"`), 422, "structure"},
		{"__proto__", set("__proto__", `{"admin": true}`), 422, "structure"},
		{"constructor.prototype", set("student.constructor", `{"prototype": {"x": 1}}`), 422, "structure"},
		{"empty key", set("", `1`), 422, "structure"},
		{"huge key", set(big(100<<10), `1`), 422, "structure"},
		{"many unknown keys", repl(`"schemaVersion": "1",`, `"schemaVersion": "1",`+strings.Repeat(`"k": 1,`, 20000)), 422, "structure"},
		{"huge array", set("student.name.given", repeatJSON(`"a"`, 30000)), 422, "too-long"},
		{"huge array of nulls", set("referral.currentSupport", repeatJSON("null", 30000)), 422, "structure"},
		{"huge array of objects", set("referral.presentingNeeds", repeatJSON(`{}`, 20000)), 422, ""},
		{"many problems at once", set("student", `{"nhsNumber": 1, "name": [], "dateOfBirth": "x", "gender": "?", "contact": 3}`), 422, ""},
	}

	var out []hostileCase
	for _, b := range bodies {
		out = append(out,
			hostileCase{name: "submit/" + b.name, req: post(submit, b.body), status: b.status, as: asOutcome, issue: b.issue},
			hostileCase{name: "evaluate/" + b.name, req: post(evaluate, b.body), status: b.status, as: asEvaluation, issue: b.issue},
		)
	}

	noEcho := func(header string) func(t *testing.T, resp *http.Response, body []byte) {
		return func(t *testing.T, resp *http.Response, body []byte) {
			if v := resp.Header.Get(header); v != "" {
				t.Errorf("the answer carries %s: %q", header, v)
			}
		}
	}
	freshRequestID := func(t *testing.T, resp *http.Response, body []byte) {
		if id := resp.Header.Get("X-Request-Id"); len(id) != 36 {
			t.Errorf("X-Request-Id %q, want a fresh UUID", id)
		}
	}
	allow := func(want string) func(t *testing.T, resp *http.Response, body []byte) {
		return func(t *testing.T, resp *http.Response, body []byte) {
			if got := resp.Header.Get("Allow"); got != want {
				t.Errorf("Allow %q, want %q", got, want)
			}
		}
	}
	challenge := func(t *testing.T, resp *http.Response, body []byte) {
		if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("a 401 without a Bearer challenge: %q", resp.Header.Get("WWW-Authenticate"))
		}
	}
	valid := rec
	withCT := func(target, ctype string, body []byte) rawRequest {
		return rawRequest{method: "POST", target: target, ctype: ctype, body: body}
	}
	withHeader := func(r rawRequest, h ...string) rawRequest { r.header = append(r.header, h...); return r }
	withAuth := func(r rawRequest, auth string) rawRequest { r.auth = auth; return r }
	raw := func(s string) rawRequest { return rawRequest{raw: []byte(s)} }
	bearer := "Authorization: Bearer " + liverpool + "\r\n"
	mb10 := bytes.Repeat([]byte("x"), 10<<20)

	out = append(out, []hostileCase{
		// Size.
		{name: "size/10 MB body", req: post(submit, append([]byte(`{"caseId":"`), mb10...)), status: 413, as: asOutcome, issue: "too-long"},
		{name: "size/10 MB body to evaluate", req: post(evaluate, mb10), status: 413, as: asOutcome, issue: "too-long"},
		{name: "size/10 MB body inbound", req: post(inbound, mb10), status: 413, as: asOutcome, issue: "too-long"},
		{name: "size/just over the limit", req: post(submit, bytes.Repeat([]byte(" "), 256<<10+1)), status: 413, as: asOutcome, issue: "too-long"},
		{name: "size/10 MB chunked", req: withHeader(post(submit, chunked(mb10, 64<<10, true)), "Transfer-Encoding: chunked"), status: 413, as: asOutcome, issue: "too-long"},
		{name: "size/declared 10 GB, little sent", req: withHeader(post(submit, []byte("{")), "Content-Length: 10737418240"), status: 413, as: asOutcome, issue: "too-long"},

		// Media types and encodings.
		{name: "type/no Content-Type", req: withCT(submit, "-", valid), status: 415, as: asOutcome, issue: "not-supported"},
		{name: "type/text/plain", req: withCT(submit, "text/plain", valid), status: 415, as: asOutcome, issue: "not-supported"},
		{name: "type/FHIR JSON is not a case record", req: withCT(submit, "application/fhir+json", valid), status: 415, as: asOutcome, issue: "not-supported"},
		{name: "type/form", req: withCT(submit, "application/x-www-form-urlencoded", valid), status: 415, as: asOutcome, issue: "not-supported"},
		{name: "type/multipart", req: withCT(evaluate, "multipart/form-data; boundary=x", valid), status: 415, as: asOutcome, issue: "not-supported"},
		{name: "type/malformed media type", req: withCT(submit, "application/json;;;", valid), status: 415, as: asOutcome, issue: "not-supported"},
		{name: "type/a list of media types", req: withCT(submit, "application/json, text/plain", valid), status: 415, as: asOutcome, issue: "not-supported"},
		{name: "type/charset UTF-16", req: withCT(submit, "application/json; charset=utf-16", utf16LE(string(valid))), status: 415, as: asOutcome, issue: "not-supported"},
		{name: "type/charset latin-1", req: withCT(evaluate, "application/json; charset=iso-8859-1", valid), status: 415, as: asOutcome, issue: "not-supported"},
		{name: "type/two Content-Types", req: withHeader(withCT(submit, "application/json", valid), "Content-Type: text/plain"), status: 415, as: asOutcome, issue: "not-supported"},
		{name: "type/gzip body", req: withHeader(post(submit, []byte("\x1f\x8b\x08\x00")), "Content-Encoding: gzip"), status: 415, as: asOutcome, issue: "not-supported"},
		{name: "type/XML inbound", req: withCT(inbound, "application/fhir+xml", []byte("<Bundle/>")), status: 415, as: asOutcome, issue: "not-supported"},
		{name: "type/upper-case media type is still JSON", req: withCT(submit, "APPLICATION/JSON", []byte("{}")), status: 422, as: asOutcome, issue: "required"},

		// Methods.
		{name: "method/GET on submit", req: get(submit), status: 405, as: asOutcome, issue: "not-supported", check: allow("POST")},
		{name: "method/PUT on submit", req: rawRequest{method: "PUT", target: submit, body: valid}, status: 405, as: asOutcome, check: allow("POST")},
		{name: "method/DELETE a referral", req: rawRequest{method: "DELETE", target: ref}, status: 405, as: asOutcome, check: allow("GET")},
		{name: "method/POST on a referral", req: post(ref, valid), status: 405, as: asOutcome, check: allow("GET")},
		{name: "method/PATCH", req: rawRequest{method: "PATCH", target: ref, body: []byte("{}")}, status: 405, as: asOutcome},
		{name: "method/HEAD on a referral", req: rawRequest{method: "HEAD", target: ref}, status: 405, as: asOutcome, check: allow("GET")},
		// GET on the path of $evaluate reads a referral whose id is "$evaluate".
		{name: "method/OPTIONS on evaluate", req: rawRequest{method: "OPTIONS", target: evaluate}, status: 405, as: asOutcome, check: allow("GET, POST")},
		{name: "method/OPTIONS *", req: rawRequest{method: "OPTIONS", target: "*"}, status: 404, as: asOutcome},
		{name: "method/TRACE", req: rawRequest{method: "TRACE", target: submit}, status: 405, as: asOutcome},
		{name: "method/lower-case post", req: rawRequest{method: "post", target: submit, body: valid}, status: 405, as: asOutcome},
		{name: "method/unknown method", req: rawRequest{method: "BREW", target: submit}, status: 405, as: asOutcome},
		{name: "method/GET on cancel", req: get(cancel), status: 405, as: asOutcome, check: allow("POST")},
		{name: "method/GET inbound", req: get(inbound), status: 405, as: asOutcome, check: allow("POST")},

		// Paths and ids.
		{name: "path/double slash", req: post("//v1/referrals", valid), status: 404, as: asOutcome, issue: "not-found"},
		{name: "path/double slash inside", req: post("/v1//referrals/$evaluate", valid), status: 404, as: asOutcome},
		{name: "path/dot segments", req: post("/v1/referrals/../referrals", valid), status: 404, as: asOutcome},
		{name: "path/dot segment to evaluate", req: post("/v1/./referrals/$evaluate", valid), status: 404, as: asOutcome},
		{name: "path/trailing slash", req: post("/v1/referrals/", valid), status: 404, as: asOutcome},
		{name: "path/encoded slash in an id", req: get("/v1/referrals/" + api.ref + "%2F"), status: 404, as: asOutcome},
		{name: "path/encoded slash before cancel", req: post("/v1/referrals/"+api.ref+"%2F$cancel", nil), status: 405, as: asOutcome, check: allow("GET")},
		// %24 is not "$" (RFC 3986 2.2): this is the path of a referral.
		{name: "path/encoded dollar", req: post("/v1/referrals/%24evaluate", []byte("{}")), status: 405, as: asOutcome, check: allow("GET")},
		{name: "path/bad percent-encoding", req: get("/v1/referrals/%zz"), status: 400, as: asNetHTTP},
		{name: "path/NUL in an id", req: get("/v1/referrals/%00"), status: 404, as: asOutcome},
		{name: "path/upper-case id", req: get("/v1/referrals/" + strings.ToUpper(api.ref)), status: 404, as: asOutcome},
		{name: "path/id with braces", req: get("/v1/referrals/%7B" + api.ref + "%7D"), status: 404, as: asOutcome},
		{name: "path/urn:uuid id", req: get("/v1/referrals/urn:uuid:" + api.ref), status: 404, as: asOutcome},
		{name: "path/SQL id", req: get("/v1/referrals/1'%20OR%20'1'='1"), status: 404, as: asOutcome},
		{name: "path/SQL id to cancel", req: post("/v1/referrals/x';DROP%20TABLE%20referrals;--/$cancel", nil), status: 404, as: asOutcome},
		{name: "path/LIKE wildcard id", req: get("/v1/referrals/%25"), status: 404, as: asOutcome},
		{name: "path/very long id", req: get("/v1/referrals/" + big(16<<10)), status: 404, as: asOutcome},
		{name: "path/id longer than the header limit", req: get("/v1/referrals/" + big(100<<10)), status: 431, as: asNetHTTP},
		{name: "path/unicode id", req: get("/v1/referrals/%E2%80%AEfdp"), status: 404, as: asOutcome},
		{name: "path/id is $evaluate", req: get("/v1/referrals/$evaluate"), status: 404, as: asOutcome},
		{name: "path/another institution's referral", req: withAuth(get(ref), "Bearer "+uwe), status: 404, as: asOutcome},
		{name: "path/cancel another institution's referral", req: withAuth(post(cancel, nil), "Bearer "+uwe), status: 404, as: asOutcome},
		{name: "path/absolute-form target", req: post("http://evil.example/v1/referrals", []byte("{}")), status: 422, as: asOutcome},
		{name: "path/unknown", req: get("/admin"), status: 404, as: asOutcome},
		{name: "path/backslash", req: get("/v1\\referrals"), status: 404, as: asOutcome},

		// Query strings on $evaluate.
		{name: "query/at not a time", req: post(evaluate+"?at=tomorrow", valid), status: 400, as: asOutcome, issue: "value"},
		{name: "query/at empty", req: post(evaluate+"?at=", valid), status: 400, as: asOutcome, issue: "value"},
		{name: "query/at twice", req: post(evaluate+"?at=2026-11-23T12:00:00Z&at=2020-01-01T00:00:00Z", valid), status: 400, as: asOutcome, issue: "value"},
		{name: "query/at without a zone", req: post(evaluate+"?at=2026-11-23T12:00:00", valid), status: 400, as: asOutcome, issue: "value"},
		{name: "query/at in year 0", req: post(evaluate+"?at=0000-01-01T00:00:00Z", valid), status: 400, as: asOutcome, issue: "value"},
		{name: "query/at with offset 99:59", req: post(evaluate+"?at=2026-11-23T12:00:00%2B99:59", valid), status: 400, as: asOutcome, issue: "value"},
		{name: "query/at with an unencoded plus", req: post(evaluate+"?at=2026-11-23T12:00:00+01:00", valid), status: 400, as: asOutcome, issue: "value"},
		{name: "query/at with a semicolon", req: post(evaluate+"?at=2026-11-23T12:00:00Z;at=2020-01-01T00:00:00Z", valid), status: 400, as: asOutcome, issue: "value"},
		{name: "query/bad escape", req: post(evaluate+"?at=%zz", valid), status: 400, as: asOutcome, issue: "value"},
		{name: "query/huge at", req: post(evaluate+"?at="+big(30<<10), valid), status: 400, as: asOutcome, issue: "value"},
		{name: "query/at with a NUL", req: post(evaluate+"?at=2026-11-23T12:00:00Z%00", valid), status: 400, as: asOutcome, issue: "value"},

		// Authentication.
		{name: "auth/none", req: withAuth(post(submit, valid), "-"), status: 401, as: asOutcome, issue: "login", check: challenge},
		{name: "auth/empty bearer", req: withAuth(post(submit, valid), "Bearer"), status: 401, as: asOutcome, issue: "login", check: challenge},
		{name: "auth/bearer and a space", req: withAuth(post(submit, valid), "Bearer "), status: 401, as: asOutcome, issue: "login"},
		{name: "auth/two spaces", req: withAuth(post(submit, valid), "Bearer  "+liverpool), status: 401, as: asOutcome, issue: "login"},
		{name: "auth/basic", req: withAuth(post(submit, valid), "Basic ZGVtbzpkZW1v"), status: 401, as: asOutcome, issue: "login"},
		{name: "auth/unknown token", req: withAuth(post(submit, valid), "Bearer "+big(40)), status: 401, as: asOutcome, issue: "login"},
		{name: "auth/huge token", req: withAuth(post(submit, valid), "Bearer "+big(60<<10)), status: 401, as: asOutcome, issue: "login"},
		{name: "auth/token in the wrong case", req: withAuth(post(submit, valid), "Bearer "+strings.ToUpper(liverpool)), status: 401, as: asOutcome, issue: "login"},
		{name: "auth/token with a prefix", req: withAuth(post(submit, valid), "Bearer x"+liverpool), status: 401, as: asOutcome, issue: "login"},
		{name: "auth/two Authorization headers", req: withHeader(post(submit, valid), "Authorization: Bearer "+uwe), status: 401, as: asOutcome, issue: "login"},
		{name: "auth/token in the query", req: withAuth(post(submit+"?access_token="+liverpool, valid), "-"), status: 401, as: asOutcome, issue: "login"},
		{name: "auth/auditor submits", req: withAuth(post(submit, valid), "Bearer "+auditor), status: 403, as: asOutcome, issue: "forbidden"},
		{name: "auth/receiver submits", req: withAuth(post(submit, valid), "Bearer "+receiver), status: 403, as: asOutcome, issue: "forbidden"},
		{name: "auth/submitter posts a response", req: withAuth(post(inbound, resp("accept")), "Bearer "+liverpool), status: 403, as: asOutcome, issue: "forbidden"},
		{name: "auth/another institution's record", req: post(submit, other), status: 403, as: asOutcome, issue: "security"},
		{name: "auth/another institution's record to evaluate", req: post(evaluate, other), status: 403, as: asOutcome, issue: "security"},

		// Headers.
		{name: "header/hostile X-Request-Id is not echoed", req: withHeader(post(submit, []byte("{}")), "X-Request-Id: a b\tc"), status: 422, as: asOutcome, check: freshRequestID},
		{name: "header/over-long X-Request-Id", req: withHeader(post(submit, []byte("{}")), "X-Request-Id: "+big(1000)), status: 422, as: asOutcome, check: freshRequestID},
		{name: "header/CR in a value", req: raw("POST /v1/referrals HTTP/1.1\r\nHost: g\r\nX-Request-Id: a\rSet-Cookie: x=1\r\nContent-Length: 0\r\n\r\n"), status: 400, as: asNetHTTP, check: noEcho("Set-Cookie")},
		{name: "header/NUL in a value", req: raw("POST /v1/referrals HTTP/1.1\r\nHost: g\r\nX-Foo: a\x00b\r\nContent-Length: 0\r\n\r\n"), status: 400, as: asNetHTTP},
		// net/http unfolds the line into one value, which the request id refuses.
		{name: "header/obsolete line folding", req: raw("POST /v1/referrals HTTP/1.1\r\nHost: g\r\n" + bearer + "Content-Type: application/json\r\nX-Request-Id: a\r\n Set-Cookie: x=1\r\nContent-Length: 2\r\n\r\n{}"), status: 422, as: asOutcome, check: func(t *testing.T, resp *http.Response, body []byte) {
			freshRequestID(t, resp, body)
			noEcho("Set-Cookie")(t, resp, body)
		}},
		{name: "header/space in a name", req: raw("POST /v1/referrals HTTP/1.1\r\nHost: g\r\nBad Header: x\r\nContent-Length: 0\r\n\r\n"), status: 400, as: asNetHTTP},
		{name: "header/one over-long header", req: withHeader(post(submit, valid), "X-Big: "+big(100<<10)), status: 431, as: asNetHTTP},
		{name: "header/too many headers", req: withHeader(post(submit, valid), strings.TrimSuffix(strings.Repeat("X-Many: 0123456789012345678901234567890123456789\r\n", 2000), "\r\n")), status: 431, as: asNetHTTP},
		{name: "header/no Host", req: raw("POST /v1/referrals HTTP/1.1\r\n" + bearer + "Content-Length: 0\r\n\r\n"), status: 400, as: asNetHTTP},
		{name: "header/two Hosts", req: raw("POST /v1/referrals HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\n\r\n"), status: 400, as: asNetHTTP},
		{name: "header/two different Content-Lengths", req: withHeader(post(submit, []byte("{}")), "Content-Length: 2", "Content-Length: 3"), status: 400, as: asNetHTTP},
		{name: "header/negative Content-Length", req: withHeader(post(submit, []byte("{}")), "Content-Length: -1"), status: 400, as: asNetHTTP},
		// RFC 9112 6.1: a server may read such a request by its
		// Transfer-Encoding alone, as net/http does (closing the connection after).
		{name: "header/Content-Length and chunked", req: withHeader(post(submit, chunked([]byte("{}"), 1, true)), "Content-Length: 2", "Transfer-Encoding: chunked"), status: 422, as: asOutcome},
		{name: "header/unknown transfer coding", req: withHeader(post(submit, []byte("{}")), "Transfer-Encoding: gzip, chunked"), status: 501, as: asNetHTTP},
		{name: "header/bad chunk size", req: withHeader(post(submit, []byte("zz\r\n{}\r\n0\r\n\r\n")), "Transfer-Encoding: chunked"), status: 400, as: asOutcome, issue: "structure"},
		{name: "header/chunked body, valid but empty", req: withHeader(post(submit, chunked([]byte("{}"), 1, true)), "Transfer-Encoding: chunked"), status: 422, as: asOutcome},
		{name: "header/Expect other than 100-continue", req: withHeader(post(submit, []byte("{}")), "Expect: bribe"), status: 417, as: asNetHTTP},
		{name: "header/HTTP/1.0 without Host", req: raw("POST /v1/referrals HTTP/1.0\r\n" + bearer + "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"), status: 422, as: asOutcome},
		{name: "header/unknown HTTP version", req: raw("POST /v1/referrals HTTP/9.9\r\nHost: g\r\n\r\n"), status: 505, as: asNetHTTP},
		{name: "header/TLS handshake on the plain port", req: raw("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"), status: 400, as: asNetHTTP},

		// Inbound $process-message (more in mappings/testdata/responses).
		{name: "inbound/duplicate response code", req: post(inbound, resp("duplicate-code")), status: 422, as: asOutcome, issue: "structure"},
		{name: "inbound/element name in the wrong case", req: post(inbound, resp("key-case")), status: 422, as: asOutcome, issue: "structure"},
		{name: "inbound/deep nesting", req: post(inbound, resp("deep-nesting")), status: 422, as: asOutcome, issue: "structure"},
		{name: "inbound/byte order mark", req: post(inbound, resp("bom")), status: 400, as: asOutcome, issue: "structure"},
		{name: "inbound/UTF-16", req: post(inbound, resp("utf16")), status: 400, as: asOutcome, issue: "structure"},
		{name: "inbound/invalid UTF-8", req: post(inbound, resp("invalid-utf8")), status: 400, as: asOutcome, issue: "structure"},
		{name: "inbound/not JSON", req: post(inbound, resp("truncated")), status: 400, as: asOutcome, issue: "structure"},
		{name: "inbound/empty", req: post(inbound, []byte{}), status: 400, as: asOutcome, issue: "structure"},
		{name: "inbound/wrong JSON type", req: post(inbound, resp("wrong-json-type")), status: 422, as: asOutcome, issue: "structure"},
		{name: "inbound/not a Bundle", req: post(inbound, resp("not-a-bundle")), status: 422, as: asOutcome, issue: "structure"},
		{name: "inbound/null", req: post(inbound, []byte("null")), status: 422, as: asOutcome, issue: "structure"},
		{name: "inbound/a case record", req: post(inbound, valid), status: 422, as: asOutcome, issue: "structure"},
		{name: "inbound/focus unresolved", req: post(inbound, resp("focus-unresolved")), status: 422, as: asOutcome, issue: "structure"},
		{name: "inbound/unknown case", req: post(inbound, replaceOnce(t, resp("accept"), "UOL-SS-2026-04417", "UOL-SS-2026-99999")), status: 404, as: asOutcome, issue: "not-found"},
		{name: "inbound/SQL case id", req: post(inbound, replaceOnce(t, resp("accept"), "UOL-SS-2026-04417", "x' OR '1'='1")), status: 404, as: asOutcome, issue: "not-found"},
		{name: "inbound/NUL case id", req: post(inbound, resp("control-escape-in-case-id")), status: 404, as: asOutcome, issue: "not-found"},
		{name: "inbound/huge case id", req: post(inbound, replaceOnce(t, resp("accept"), "UOL-SS-2026-04417", big(200<<10))), status: 404, as: asOutcome, issue: "not-found"},
		{name: "inbound/1e400 in an element not read", req: post(inbound, replaceOnce(t, resp("number-1e400"), "UOL-SS-2026-04417", "UOL-SS-2026-99999")), status: 404, as: asOutcome, issue: "not-found"},
	}...)
	return out
}

func TestHostileRequests(t *testing.T) {
	api := newHostileAPI(t, productionLimits)
	cases := hostileCases(t, api)
	if len(cases) < 100 {
		t.Fatalf("the table has %d requests; keep at least 100", len(cases))
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("two cases named %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			resp, body, err := exchange(api.addr, tc.req, 20*time.Second)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			// net/http answers a transfer coding or an HTTP version that it
			// does not implement with 501 or 505 before the API sees the
			// request (RFC 9112 6.1, RFC 9110 15.6.6): the only 5xx that a
			// client can provoke, and not the API's.
			protocol := tc.as == asNetHTTP && (tc.status == 501 || tc.status == 505)
			if resp.StatusCode != tc.status || resp.StatusCode >= 500 && !protocol {
				t.Fatalf("status %d, want %d: %.600s", resp.StatusCode, tc.status, body)
			}
			checkAnswer(t, tc.req.method, tc.as, tc.issue, resp, body)
			if tc.check != nil {
				tc.check(t, resp, body)
			}
		})
	}
}

// checkAnswer holds an answer to the form its kind promises.
func checkAnswer(t *testing.T, method, as, issue string, resp *http.Response, body []byte) {
	t.Helper()
	ct := resp.Header.Get("Content-Type")
	var oo struct {
		ResourceType string
		Issue        []struct{ Code, Diagnostics string }
	}
	switch as {
	case asNetHTTP:
		return // net/http's own plain-text refusal; the status says it all
	case asOutcome:
		if !strings.HasPrefix(ct, "application/fhir+json") {
			t.Errorf("Content-Type %q, want application/fhir+json", ct)
		}
		if method == "HEAD" {
			return
		}
		if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" {
			t.Fatalf("not an OperationOutcome: %.600s", body)
		}
	case asEvaluation:
		if !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type %q, want application/json", ct)
		}
		var doc struct {
			Outcome          string
			OperationOutcome *json.RawMessage
		}
		if err := json.Unmarshal(body, &doc); err != nil || doc.Outcome != gateway.OutcomeInvalid || doc.OperationOutcome == nil {
			t.Fatalf("not an invalid evaluation document: %.600s", body)
		}
		if err := json.Unmarshal(*doc.OperationOutcome, &oo); err != nil {
			t.Fatal(err)
		}
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no X-Content-Type-Options: nosniff")
	}
	if len(oo.Issue) == 0 {
		t.Fatalf("no issues: %.600s", body)
	}
	if issue == "" {
		return
	}
	var codes []string
	for _, is := range oo.Issue {
		codes = append(codes, is.Code)
		if is.Code == issue {
			return
		}
	}
	t.Errorf("issue codes %v lack %q: %.300s", codes, issue, body)
}

// TestEdgeInputsPassTheGate posts records at the edges of the contract that
// are valid (offsets of 14:00, the longest strings, 100 items, unusual
// Unicode, -0) to $evaluate with the output gate on: each must be allowed,
// which means that the message built from it passed the gate. An input that
// the contract accepts but FHIR cannot carry is a 500 here, and a bug in
// gateway/validate.go (offsets beyond 14:00 and year 0000 were).
func TestEdgeInputsPassTheGate(t *testing.T) {
	api := newHostileAPI(t, productionLimits)
	rec := readCaseTB(t, "allow-liverpool-u-cope")
	long := func(s string, n int) string { return jsonString(strings.Repeat(s, n)) }
	tests := []struct{ name, path, raw string }{
		{"offset +14:00", "consent.recordedAt", `"2026-11-18T11:20:00+14:00"`},
		{"offset -14:00", "consent.expiresAt", `"2027-05-18T00:00:00-14:00"`},
		{"offset -00:00", "consent.recordedAt", `"2026-11-18T11:20:00-00:00"`},
		{"twelve digits of fractions", "consent.recordedAt", `"2026-11-18T11:20:00.123456789123Z"`},
		{"year 0001 review date", "referral.safetyPlan.reviewedOn", `"0001-01-01"`},
		{"year 9999 review date", "referral.safetyPlan.reviewedOn", `"9999-12-31"`},
		{"10,000 two-byte characters", "referral.summary", long("é", 10000)},
		{"10,000-character case id", "caseId", long("x", 10000)},
		{"10,000-character institution name", "institution.name", long("U", 10000)},
		{"case id with spaces and bars", "caseId", `"UOL | SS 1"`},
		{"100 given names", "student.name.given", repeatJSON(`"A"`, 100)},
		{"100 needs", "referral.presentingNeeds", repeatJSON(`{"code":"self-harm","text":"a\tb\r\nc"}`, 100)},
		{"right-to-left override", "student.name.family", `"\u202eOkafor"`},
		{"line separator", "referral.summary", `"a\u2028b"`},
		{"byte order mark inside text", "referral.summary", `"\ufeffa"`},
		{"noncharacter", "referral.summary", `"a\uffffb"`},
		{"emoji by surrogate pair", "referral.summary", `"a\ud83d\ude00b"`},
		{"leading and trailing spaces", "student.name.family", `"  Okafor  "`},
		{"no-break space", "student.name.family", `"\u00a0Okafor"`},
		{"spaces in a postcode", "student.address.postcode", `" L7  3QL "`},
		{"odd email", "student.contact.email", `"a b@c"`},
		{"phone as words", "student.contact.phone", `"call the hall"`},
		{"registration with spaces", "referrer.registration", `{"body":" BACP ","number":" 1 2 "}`},
		{"score -0", "referral.riskAssessment", `{"score": -0}`},
		{"score 1e308", "referral.riskAssessment", `{"score": 1e308}`},
		{"score 1e-400", "referral.riskAssessment", `{"score": 1e-400}`},
		{"carriage return in narrative", "referral.summary", `"a\rb"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/v1/referrals/$evaluate?at=2026-11-23T12:00:00Z", bytes.NewReader(setJSON(t, rec, tt.path, tt.raw)))
			req.Header.Set("Authorization", "Bearer "+liverpool)
			req.Header.Set("Content-Type", "application/json")
			rr := httptest.NewRecorder()
			api.handler.ServeHTTP(rr, req)
			var doc struct{ Outcome string }
			if rr.Code != http.StatusOK || json.Unmarshal(rr.Body.Bytes(), &doc) != nil || doc.Outcome != gateway.OutcomeAllow {
				t.Fatalf("status %d: %.600s", rr.Code, rr.Body)
			}
		})
	}
}

// TestSlowSenders proves that the server's limits cut off clients that send
// slowly or never finish, on a listener built by newHTTPServer exactly as
// `gateway serve` builds it, with the timeouts shortened (and nothing else
// changed) so that the test is quick. A cut-off is a 4xx answer or a closed
// connection, well before the client's own deadline.
func TestSlowSenders(t *testing.T) {
	lim := productionLimits
	lim.ReadHeaderTimeout = 300 * time.Millisecond
	lim.ReadTimeout = 800 * time.Millisecond
	lim.WriteTimeout = 2 * time.Second
	lim.IdleTimeout = 500 * time.Millisecond
	api := newHostileAPI(t, lim)
	headers := "POST /v1/referrals HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer " + liverpool + "\r\nContent-Type: application/json\r\n"
	tests := []struct {
		name string
		// send writes to the connection; it may stall.
		send func(w io.Writer) error
	}{
		{"headers never finish", func(w io.Writer) error {
			_, err := io.WriteString(w, "POST /v1/referrals HTTP/1.1\r\nHost: g\r\n")
			return err
		}},
		{"headers trickle", func(w io.Writer) error {
			return trickle(w, []byte(headers+"X-Slow: "+strings.Repeat("x", 1000)), 50*time.Millisecond)
		}},
		{"nothing at all", func(w io.Writer) error { return nil }},
		{"body shorter than its Content-Length", func(w io.Writer) error {
			_, err := io.WriteString(w, headers+"Content-Length: 1000\r\n\r\n{\"caseId\":")
			return err
		}},
		{"body trickles", func(w io.Writer) error {
			if _, err := io.WriteString(w, headers+"Content-Length: 1000\r\n\r\n"); err != nil {
				return err
			}
			return trickle(w, bytes.Repeat([]byte(" "), 1000), 50*time.Millisecond)
		}},
		{"chunked body without its end", func(w io.Writer) error {
			_, err := io.WriteString(w, headers+"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n")
			return err
		}},
		{"chunked body that trickles forever", func(w io.Writer) error {
			if _, err := io.WriteString(w, headers+"Transfer-Encoding: chunked\r\n\r\n"); err != nil {
				return err
			}
			return trickle(w, bytes.Repeat([]byte("1\r\n \r\n"), 1000), 50*time.Millisecond)
		}},
		{"idle after a request", func(w io.Writer) error {
			_, err := io.WriteString(w, "GET /healthz HTTP/1.1\r\nHost: g\r\n\r\n")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", api.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// The client's own deadline: far beyond every server timeout.
			_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
			go func() { _ = tt.send(conn) }()
			statuses, err := readUntilClosed(conn)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the server held the connection until the client gave up (answers %v)", statuses)
			}
			if err != nil {
				t.Fatalf("answers %v, then %v", statuses, err)
			}
			t.Logf("answers %v, then the connection was closed", statuses)
			for _, s := range statuses {
				if s >= 500 || (s != 200 && s < 400) {
					t.Errorf("answer %d", s)
				}
			}
		})
	}
}

// trickle writes b a byte at a time, pausing between bytes.
func trickle(w io.Writer, b []byte, pause time.Duration) error {
	for i := range b {
		if _, err := w.Write(b[i : i+1]); err != nil {
			return err
		}
		time.Sleep(pause)
	}
	return nil
}

// readUntilClosed reads answers until the server closes the connection, and
// returns their statuses; the error is nil for a close and the read error
// (a timeout among them) otherwise.
func readUntilClosed(conn net.Conn) ([]int, error) {
	br := bufio.NewReader(conn)
	var statuses []int
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err) {
				return statuses, nil
			}
			return statuses, err
		}
		statuses = append(statuses, resp.StatusCode)
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil && !isReset(err) {
			return statuses, err
		}
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// FuzzInbound posts arbitrary bodies to POST /fhir/$process-message of the
// wired API, as the sandbox receiver, with a delivered referral on file that
// the seeded responses report steps of: whatever the body, the answer is an
// OperationOutcome and never a 5xx.
//
//	go test ./cmd/gateway -run '^$' -fuzz FuzzInbound -fuzztime 2m
func FuzzInbound(f *testing.F) {
	api := newHostileAPI(f, productionLimits)
	files, _ := filepath.Glob(filepath.Join("..", "..", "mappings", "testdata", "responses", "*.json"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for i, step := range [][]map[string]any{nil, {appointment("A1", "booked", "2026-03-09T14:00:00Z")},
		{appointment("A1", "noshow", "2026-03-09T14:00:00Z")}, {encounter("finished", "2026-03-05T11:00:00Z", "", "")}} {
		f.Add(stepMessage(f, fmt.Sprint("r", i), api.bundle, "ok", "active", "2026-03-02T10:00:00Z", step...))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/fhir/$process-message", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+receiver)
		req.Header.Set("Content-Type", "application/fhir+json")
		rr := httptest.NewRecorder()
		api.handler.ServeHTTP(rr, req)
		if rr.Code >= 500 {
			t.Fatalf("status %d: %s", rr.Code, rr.Body)
		}
		var oo struct {
			ResourceType string
			Issue        []json.RawMessage
		}
		if err := json.Unmarshal(rr.Body.Bytes(), &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
			t.Fatalf("status %d, not an OperationOutcome: %s", rr.Code, rr.Body)
		}
		if ct := rr.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
			t.Fatalf("Content-Type %q", ct)
		}
	})
}
