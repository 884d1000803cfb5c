// Package sandbox is a test double: a stand-in NHS receiver that speaks
// enough of the NHS Booking and Referral Standard (BaRS) for integrators to
// try the gateway end to end without an NHS endpoint (`make run` serves it
// beside the gateway, `gateway sandbox-receiver` alone). Nothing in
// production depends on it, and its control endpoints have no
// authentication.
//
// With token clients configured it is also the NHS API platform's token
// endpoint (POST /oauth2/token, signed JWT client assertions checked as the
// platform does) and asks for the access tokens it issued. It publishes a
// MessageDefinition that fits a student mental-health referral
// (GET /fhir/MessageDefinition). It checks what a BaRS receiver checks at
// the door, drops duplicates by X-Request-Id, answers 200 or a BaRS
// OperationOutcome, and posts a BaRS
// response message to the gateway's $process-message after accepting a
// referral, as a real service does. It can be told to misbehave (see
// Fault). It keeps only ids and codes of what it receives, never content,
// so that its listings show no personal data.
package sandbox

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
	"go.uber.org/zap"
)

// BaRS code systems: HTTP error codes (in OperationOutcome.issue.details),
// message events and message reasons.
const (
	ErrorCodeSystem = "https://fhir.nhs.uk/Codesystem/http-error-codes"
	EventSystem     = "https://fhir.nhs.uk/CodeSystem/message-events-bars"
	ReasonSystem    = "https://fhir.nhs.uk/CodeSystem/message-reason-bars"
)

// Received is what the sandbox keeps of each accepted message.
type Received struct {
	RequestID     string `json:"requestId"`
	CorrelationID string `json:"correlationId"`
	Target        string `json:"target"`
	BundleID      string `json:"bundleId"`
	Event         string `json:"event"`
	// Reason is the BaRS message reason (new, update) and Status the
	// ServiceRequest's status (active, or revoked for a cancellation).
	Reason string `json:"reason,omitempty"`
	Status string `json:"status,omitempty"`
	// Posts counts the valid posts of this X-Request-Id, duplicates
	// included, for tests of exactly-once delivery.
	Posts int       `json:"posts"`
	At    time.Time `json:"at"`
}

// Options configure a receiver; the zero value posts no response messages.
type Options struct {
	Logger *zap.Logger
	// CallbackURL is the gateway's FHIR base: response messages go to
	// CallbackURL + "/$process-message" with CallbackToken as bearer
	// token. Empty turns response messages off.
	CallbackURL   string
	CallbackToken string
	// CallbackDelay is how long after accepting a message the response is
	// posted (a real service takes minutes or days).
	CallbackDelay time.Duration
	Now           func() time.Time // the clock of response timestamps, for tests
	// TokenClients, when set, are the applications the token endpoint
	// (POST /oauth2/token) issues access tokens to, and $process-message
	// and MessageDefinition then require one. Empty asks for no token.
	TokenClients []TokenClient
}

// Receiver is the sandbox receiver; make one with NewReceiver.
type Receiver struct {
	opt  Options // with a Logger and a clock
	hc   *http.Client
	ctx  context.Context // cancelled by Close: stops callbacks and slow faults
	stop context.CancelFunc
	cbs  sync.WaitGroup

	mu        sync.Mutex
	seen      map[string]int // index in received by X-Request-Id
	received  []Received
	faults    []Fault
	callbacks []Callback
	tokens    map[string]time.Time // access token → expiry
	jtis      map[string]time.Time // assertion jti → its exp, against replay
	pending   []pending            // by callback: the message until it is posted
	journeys  map[string]*origin   // by request Bundle id: what later steps need
	// journeyOrder lists journeys' Bundle ids, oldest first (keepJourney).
	journeyOrder []string
}

// NewReceiver returns a receiver with options. Call Close to stop its
// background work (response messages in flight).
func NewReceiver(o Options) *Receiver {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	rc := &Receiver{opt: o, seen: map[string]int{}, tokens: map[string]time.Time{}, jtis: map[string]time.Time{}, journeys: map[string]*origin{}}
	// Response messages are posted from a goroutine each; keeping 64 idle
	// connections to the gateway, not 2, spares a dial per post in a drain.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	rc.hc = &http.Client{Timeout: 10 * time.Second, Transport: tr}
	rc.ctx, rc.stop = context.WithCancel(context.Background())
	return rc
}

// Close stops the receiver's background work and waits for it to end.
func (rc *Receiver) Close() {
	rc.stop()
	rc.cbs.Wait()
	rc.hc.CloseIdleConnections()
}

// Received returns the messages accepted so far, oldest first.
func (rc *Receiver) Received() []Received { return snapshot(rc, &rc.received) }

// snapshot copies a list the receiver keeps.
func snapshot[T any](rc *Receiver, list *[]T) []T {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]T{}, *list...)
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Handler routes the receiver's endpoints.
func (rc *Receiver) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /fhir/$process-message", rc.processMessage)
	mux.HandleFunc("GET /fhir/MessageDefinition", rc.messageDefinition)
	mux.HandleFunc("POST /oauth2/token", rc.token)
	list := func(name string, items func() any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, "application/json", map[string]any{name: items()})
		}
	}
	mux.HandleFunc("GET /sandbox/messages", list("messages", func() any { return rc.Received() }))
	mux.HandleFunc("GET /sandbox/callbacks", list("callbacks", func() any { return rc.Callbacks() }))
	mux.HandleFunc("GET /sandbox/faults", list("faults", func() any { return rc.Faults() }))
	mux.HandleFunc("POST /sandbox/faults", rc.postFaults)
	rc.journeyRoutes(mux)
	mux.HandleFunc("DELETE /sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		rc.faults = nil
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, "application/json", map[string]string{"status": "ok"})
	})
	return mux
}

// request is what the receiver reads of one valid post.
type request struct {
	requestID, correlationID, target string
	bundleID, event, reason          string
	body                             []byte
	msg                              message
	mh                               messageHeader
	sr                               serviceRequest // the focus
}

// processMessage is the receiver's $process-message.
func (rc *Receiver) processMessage(w http.ResponseWriter, r *http.Request) {
	// BaRS receivers mirror the ids back.
	for _, h := range []string{"X-Request-Id", "X-Correlation-Id"} {
		if v := r.Header.Get(h); uuidPattern.MatchString(v) {
			w.Header().Set(h, v)
		}
	}
	req, bad := rc.read(w, r)
	if bad != nil {
		fail(w, bad.status, bad.issue, bad.msg)
		return
	}
	f := rc.takeFault(req.target)
	if f.Mode == ModeSlow {
		// A slow receiver still processes what it was sent, even when the
		// sender has given up waiting.
		rc.opt.Logger.Info("fault: slow answer", zap.String("request_id", req.requestID), zap.String("delay", f.Delay))
		d, _ := time.ParseDuration(f.Delay) // AddFault checked it
		sleep(rc.ctx, d)
	}
	if !f.After && rc.misbehave(w, f, req.requestID) {
		return
	}
	dup := rc.accept(req)
	switch {
	case f.After && rc.misbehave(w, f, req.requestID):
	case dup:
		rc.opt.Logger.Info("duplicate message dropped", zap.String("request_id", req.requestID))
		fail(w, http.StatusConflict, fhir.IssueTypeDuplicate, "a message with this X-Request-Id was already processed")
		return
	default:
		rc.opt.Logger.Info("message accepted", zap.String("request_id", req.requestID), zap.String("target", req.target), zap.String("bundle_id", req.bundleID))
		msg := "message accepted by the sandbox receiver"
		writeJSON(w, http.StatusOK, "application/fhir+json", fhir.OperationOutcome{Issue: []fhir.OperationOutcomeIssue{{
			Severity: fhir.IssueSeverityInformation, Code: fhir.IssueTypeInformational, Diagnostics: &msg,
		}}})
	}
	if !dup && req.sr.Status == "active" {
		rc.respond(req, f.Mode != ModeReject, f.Reason)
	}
}

// accept records a valid post and reports whether its X-Request-Id had
// been seen before.
func (rc *Receiver) accept(req request) (dup bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if i, ok := rc.seen[req.requestID]; ok {
		rc.received[i].Posts++
		return true
	}
	rc.seen[req.requestID] = len(rc.received)
	rc.received = append(rc.received, Received{
		RequestID: req.requestID, CorrelationID: req.correlationID, Target: req.target, BundleID: req.bundleID,
		Event: req.event, Reason: req.reason, Status: req.sr.Status, Posts: 1, At: rc.opt.Now().UTC(),
	})
	return false
}

// problem is a refusal at the door.
type problem struct {
	status int
	issue  fhir.IssueType
	msg    string
}

func badRequest(issue fhir.IssueType, msg string) *problem {
	return &problem{http.StatusBadRequest, issue, msg}
}

// read checks the headers and the message, in the order a BaRS receiver
// does, and returns the first problem.
func (rc *Receiver) read(w http.ResponseWriter, r *http.Request) (request, *problem) {
	req := request{requestID: r.Header.Get("X-Request-Id"), correlationID: r.Header.Get("X-Correlation-Id")}
	if !rc.authorised(r) {
		return req, &problem{http.StatusUnauthorized, fhir.IssueTypeLogin, "a bearer access token from the token endpoint is required"}
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/fhir+json" {
		return req, &problem{http.StatusUnsupportedMediaType, fhir.IssueTypeNotSupported, "Content-Type must be application/fhir+json"}
	}
	if a := r.Header.Get("Accept"); a != "" && !acceptsFHIRJSON(a) {
		return req, &problem{http.StatusNotAcceptable, fhir.IssueTypeProcessing, "Accept must allow application/fhir+json"}
	}
	if !uuidPattern.MatchString(req.requestID) {
		return req, badRequest(fhir.IssueTypeRequired, "X-Request-Id must be a UUID")
	}
	if !uuidPattern.MatchString(req.correlationID) {
		return req, badRequest(fhir.IssueTypeRequired, "X-Correlation-Id must be a UUID")
	}
	var id struct{ System, Value string }
	if !decodeHeader(r.Header.Get("NHSD-Target-Identifier"), &id) || id.System == "" || id.Value == "" {
		return req, badRequest(fhir.IssueTypeValue, "NHSD-Target-Identifier must be base64 of a JSON {system, value}")
	}
	req.target = id.System + "|" + id.Value
	if !decodeResource(r.Header.Get("NHSD-End-User-Organisation"), "Organization") {
		return req, badRequest(fhir.IssueTypeValue, "NHSD-End-User-Organisation must be base64 of a JSON Organization with an identifier or a name")
	}
	if !decodeResource(r.Header.Get("NHSD-Requesting-Software"), "Device") {
		return req, badRequest(fhir.IssueTypeValue, "NHSD-Requesting-Software must be base64 of a JSON Device naming the software")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
	if err != nil {
		return req, &problem{http.StatusRequestEntityTooLarge, fhir.IssueTypeTooLong, "the body is larger than the sandbox accepts (4 MiB)"}
	}
	req.body = body
	return req, readMessage(&req)
}

// message is what the sandbox reads of a message Bundle.
type message struct {
	ResourceType string     `json:"resourceType"`
	ID           string     `json:"id"`
	Type         string     `json:"type"`
	Entry        []rawEntry `json:"entry"`
}

type rawEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
}

type messageHeader struct {
	ResourceType string       `json:"resourceType"`
	ID           string       `json:"id"`
	EventCoding  *fhir.Coding `json:"eventCoding"`
	Reason       struct {
		Coding []fhir.Coding `json:"coding"`
	} `json:"reason"`
	Destination []struct {
		Endpoint string     `json:"endpoint"`
		Receiver *reference `json:"receiver"`
	} `json:"destination"`
	Sender *reference `json:"sender"`
	Source struct {
		Endpoint string `json:"endpoint"`
	} `json:"source"`
	Focus []reference `json:"focus"`
}

// serviceRequest is the focus as the sandbox reads it and as its response
// message sends it back.
type serviceRequest struct {
	head
	Identifier json.RawMessage   `json:"identifier,omitempty"`
	Status     string            `json:"status"`
	Intent     string            `json:"intent"`
	Category   json.RawMessage   `json:"category,omitempty"`
	Code       json.RawMessage   `json:"code,omitempty"`
	Subject    reference         `json:"subject"`
	Performer  []reference       `json:"performer,omitempty"`
	Note       []fhir.Annotation `json:"note,omitempty"`
}

type reference struct {
	Reference string `json:"reference,omitempty"`
}

// readMessage checks the message Bundle's shape and reads what the answer
// and the response message need into req.
func readMessage(req *request) *problem {
	var b message
	if err := json.Unmarshal(req.body, &b); err != nil {
		return badRequest(fhir.IssueTypeStructure, "the body is not a JSON FHIR resource")
	}
	var mh messageHeader
	if b.ResourceType != "Bundle" || b.Type != "message" || len(b.Entry) == 0 ||
		json.Unmarshal(b.Entry[0].Resource, &mh) != nil || mh.ResourceType != "MessageHeader" || mh.EventCoding == nil || mh.EventCoding.Code == nil {
		return badRequest(fhir.IssueTypeStructure, "the body must be a message Bundle whose first entry is a MessageHeader with an eventCoding")
	}
	if b.ID == "" {
		return badRequest(fhir.IssueTypeRequired, "Bundle.id is required")
	}
	types := map[string]string{}
	for _, e := range b.Entry {
		t := resourceTypeOf(e.Resource)
		if e.FullURL == "" || t == "" {
			return badRequest(fhir.IssueTypeStructure, "every Bundle.entry needs a fullUrl and a resource")
		}
		types[e.FullURL] = t
	}
	req.bundleID, req.event = b.ID, *mh.EventCoding.Code
	req.msg, req.mh = b, mh
	if mh.EventCoding.System == nil || *mh.EventCoding.System != EventSystem || req.event != "servicerequest-request" {
		return &problem{http.StatusUnprocessableEntity, fhir.IssueTypeNotSupported, "the sandbox takes only " + EventSystem + "#servicerequest-request messages"}
	}
	for _, c := range mh.Reason.Coding {
		if c.System != nil && *c.System == ReasonSystem && c.Code != nil {
			req.reason = *c.Code
		}
	}
	matched := len(mh.Destination) == 0
	for _, d := range mh.Destination {
		matched = matched || d.Endpoint == req.target
	}
	if !matched {
		return badRequest(fhir.IssueTypeValue, "MessageHeader.destination.endpoint does not name the NHSD-Target-Identifier")
	}
	if len(mh.Focus) == 0 || types[mh.Focus[0].Reference] != "ServiceRequest" {
		return badRequest(fhir.IssueTypeInvalid, "MessageHeader.focus must reference a ServiceRequest in the Bundle")
	}
	for _, e := range b.Entry {
		if e.FullURL == mh.Focus[0].Reference {
			var sr serviceRequest
			_ = json.Unmarshal(e.Resource, &sr)
			if sr.Status != "active" && sr.Status != "revoked" {
				return badRequest(fhir.IssueTypeValue, "ServiceRequest.status must be active (a referral) or revoked (a cancellation)")
			}
			req.sr = sr
		}
	}
	return nil
}

// resourceTypeOf is a JSON resource's resourceType, "" when it has none.
func resourceTypeOf(resource json.RawMessage) string {
	var r struct {
		ResourceType string `json:"resourceType"`
	}
	if json.Unmarshal(resource, &r) != nil {
		return ""
	}
	return r.ResourceType
}

// acceptsFHIRJSON reports whether an Accept header allows FHIR JSON.
func acceptsFHIRJSON(h string) bool {
	for _, part := range strings.Split(h, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/fhir+json", "application/json", "application/*", "*/*":
			return true
		}
	}
	return false
}

// decodeHeader decodes a header that carries base64 of JSON into v.
func decodeHeader(h string, v any) bool {
	raw, err := base64.StdEncoding.DecodeString(h)
	return err == nil && json.Unmarshal(raw, v) == nil
}

// decodeResource checks a header that carries base64 of a FHIR resource of
// the given type: an Organization with an identifier or a name, or a
// Device with a name or an identifier.
func decodeResource(h, resourceType string) bool {
	var r struct {
		ResourceType string
		Identifier   []struct{ Value string }
		Name         string
		DeviceName   []json.RawMessage
	}
	if !decodeHeader(h, &r) || r.ResourceType != resourceType {
		return false
	}
	if resourceType == "Device" {
		return len(r.DeviceName) > 0 || len(r.Identifier) > 0
	}
	return r.Name != "" || (len(r.Identifier) > 0 && r.Identifier[0].Value != "")
}

// fail answers with a BaRS OperationOutcome: the BaRS error code of status
// and the FHIR issue type issue.
func fail(w http.ResponseWriter, status int, issue fhir.IssueType, msg string) {
	code, _ := barsError(status)
	writeJSON(w, status, "application/fhir+json", fhir.OperationOutcome{Issue: []fhir.OperationOutcomeIssue{{
		Severity: fhir.IssueSeverityError, Code: issue, Diagnostics: &msg,
		Details: &fhir.CodeableConcept{Coding: []fhir.Coding{{System: new(ErrorCodeSystem), Code: &code}}},
	}}})
}

// writeJSON answers with v indented by two spaces, with a newline after.
func writeJSON(w http.ResponseWriter, status int, mediaType string, v any) {
	w.Header().Set("Content-Type", mediaType+"; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
