package sandbox

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Fault modes.
const (
	// ModeStatus answers with Status (400–599) and a BaRS OperationOutcome,
	// with a Retry-After header when RetryAfter is set.
	ModeStatus = "status"
	// ModeReset resets the TCP connection without an answer.
	ModeReset = "reset"
	// ModeSlow waits Delay before processing and answering; the message is
	// processed even when the sender has stopped waiting.
	ModeSlow = "slow"
	// ModeReject accepts the message but posts a response message that
	// turns the referral down, with Reason.
	ModeReject = "reject"
)

// maxDelay bounds a slow fault, so that a typo cannot hang a test run.
const maxDelay = 5 * time.Minute

// Fault is one scripted misbehaviour, applied to the next Count valid
// messages for Target (every message until cleared when Count is 0). The
// first fault in the list that matches a message applies to it. As JSON
// (POST /sandbox/faults takes one fault or a list):
//
//	{"mode": "status", "status": 500, "count": 3}
//	{"mode": "status", "status": 429, "retryAfter": "2", "count": 1}
//	{"mode": "reset", "count": 1}
//	{"mode": "reset", "after": true, "count": 1}
//	{"mode": "slow", "delay": "2s", "count": 1}
//	{"mode": "reject", "reason": "outside our catchment", "target": "2000010001"}
type Fault struct {
	Mode string `json:"mode"`
	// Status is the HTTP status of ModeStatus.
	Status int `json:"status,omitempty"`
	// RetryAfter is the Retry-After header of ModeStatus: seconds or an
	// HTTP date.
	RetryAfter string `json:"retryAfter,omitempty"`
	// Delay is the wait of ModeSlow; in JSON a Go duration ("2s").
	Delay time.Duration `json:"-"`
	// After makes ModeStatus and ModeReset act after the message was
	// accepted: the receiver has it but the sender does not learn so, and
	// must retry into a 409 duplicate.
	After bool `json:"after,omitempty"`
	// Reason is the reason a ModeReject response gives.
	Reason string `json:"reason,omitempty"`
	// Target limits the fault to one service: its NHSD-Target-Identifier
	// as system|value, or the value alone. Empty matches every target.
	Target string `json:"target,omitempty"`
	// Count is how many messages the fault applies to; 0 is every message
	// until the faults are cleared.
	Count int `json:"count,omitempty"`
}

// MarshalJSON writes Delay as a Go duration.
func (f Fault) MarshalJSON() ([]byte, error) {
	type plain Fault
	out := struct {
		plain
		Delay string `json:"delay,omitempty"`
	}{plain: plain(f)}
	if f.Delay > 0 {
		out.Delay = f.Delay.String()
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads Delay as a Go duration.
func (f *Fault) UnmarshalJSON(b []byte) error {
	type plain Fault
	var in struct {
		plain
		Delay string `json:"delay,omitempty"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return err
	}
	*f = Fault(in.plain)
	if in.Delay != "" {
		d, err := time.ParseDuration(in.Delay)
		if err != nil {
			return fmt.Errorf("delay %q: %w", in.Delay, err)
		}
		f.Delay = d
	}
	return nil
}

// Validate checks that a fault can be applied.
func (f Fault) Validate() error {
	switch f.Mode {
	case ModeStatus:
		if f.Status < 400 || f.Status > 599 {
			return fmt.Errorf("a status fault needs a status from 400 to 599")
		}
	case ModeReset:
	case ModeSlow:
		if f.Delay <= 0 || f.Delay > maxDelay {
			return fmt.Errorf("a slow fault needs a delay up to %s", maxDelay)
		}
	case ModeReject:
	default:
		return fmt.Errorf("mode %q: use %s, %s, %s or %s", f.Mode, ModeStatus, ModeReset, ModeSlow, ModeReject)
	}
	switch {
	case f.Count < 0:
		return fmt.Errorf("count must not be negative")
	case f.RetryAfter != "" && f.Mode != ModeStatus:
		return fmt.Errorf("retryAfter goes with mode %s", ModeStatus)
	case f.After && f.Mode != ModeStatus && f.Mode != ModeReset:
		return fmt.Errorf("after goes with modes %s and %s", ModeStatus, ModeReset)
	case f.Reason != "" && f.Mode != ModeReject:
		return fmt.Errorf("reason goes with mode %s", ModeReject)
	}
	return nil
}

// FaultStatus is a scripted fault and how many messages it has hit.
type FaultStatus struct {
	Fault
	Used int `json:"used"`
}

// MarshalJSON keeps Fault's JSON form and adds used.
func (s FaultStatus) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(s.Fault)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	m["used"] = s.Used
	return json.Marshal(m)
}

type faultState struct {
	Fault
	used int
}

// AddFault appends a fault to the script.
func (rc *Receiver) AddFault(f Fault) error {
	if err := f.Validate(); err != nil {
		return err
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.faults = append(rc.faults, &faultState{Fault: f})
	return nil
}

// ClearFaults removes every fault: the receiver behaves again.
func (rc *Receiver) ClearFaults() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.faults = nil
}

// Faults lists the script, spent faults included.
func (rc *Receiver) Faults() []FaultStatus {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]FaultStatus, 0, len(rc.faults))
	for _, f := range rc.faults {
		out = append(out, FaultStatus{Fault: f.Fault, Used: f.used})
	}
	return out
}

// takeFault returns the fault that applies to a valid message for target,
// and counts it as used.
func (rc *Receiver) takeFault(target string) *Fault {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, f := range rc.faults {
		if f.Count > 0 && f.used >= f.Count {
			continue
		}
		if f.Target != "" && f.Target != target && !strings.HasSuffix(target, "|"+f.Target) {
			continue
		}
		f.used++
		cp := f.Fault
		return &cp
	}
	return nil
}

// postFaults is POST /sandbox/faults: one fault or a list, appended.
func (rc *Receiver) postFaults(w http.ResponseWriter, r *http.Request) {
	var body json.RawMessage
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, "application/json", map[string]string{"error": "the body must be a JSON fault or a list of faults"})
		return
	}
	var list []Fault
	if strings.HasPrefix(strings.TrimSpace(string(body)), "[") {
		if err := json.Unmarshal(body, &list); err != nil {
			writeJSON(w, http.StatusBadRequest, "application/json", map[string]string{"error": err.Error()})
			return
		}
	} else {
		var f Fault
		if err := json.Unmarshal(body, &f); err != nil {
			writeJSON(w, http.StatusBadRequest, "application/json", map[string]string{"error": err.Error()})
			return
		}
		list = []Fault{f}
	}
	for i, f := range list {
		if err := f.Validate(); err != nil {
			writeJSON(w, http.StatusBadRequest, "application/json", map[string]string{"error": fmt.Sprintf("fault %d: %v", i, err)})
			return
		}
	}
	for _, f := range list {
		_ = rc.AddFault(f)
	}
	writeJSON(w, http.StatusCreated, "application/json", map[string]any{"faults": rc.Faults()})
}

// barsError is the BaRS error code and FHIR issue type of a status, from
// the BaRS OperationOutcome examples.
func barsError(status int) (string, fhir.IssueType) {
	switch status {
	case 400:
		return "REC_BAD_REQUEST", fhir.IssueTypeInvalid
	case 401:
		return "REC_UNAUTHORIZED", fhir.IssueTypeForbidden
	case 403:
		return "REC_FORBIDDEN", fhir.IssueTypeForbidden
	case 404:
		return "REC_NOT_FOUND", fhir.IssueTypeNotFound
	case 405:
		return "REC_METHOD_NOT_ALLOWED", fhir.IssueTypeNotSupported
	case 406:
		return "REC_NOT_ACCEPTABLE", fhir.IssueTypeProcessing
	case 408:
		return "REC_TIMEOUT", fhir.IssueTypeTimeout
	case 409:
		return "REC_CONFLICT", fhir.IssueTypeConflict
	case 422:
		return "REC_UNPROCESSABLE_ENTITY", fhir.IssueTypeBusinessRule
	case 429:
		return "REC_TOO_MANY_REQUESTS", fhir.IssueTypeThrottled
	case 501:
		return "REC_NOT_IMPLEMENTED", fhir.IssueTypeNotSupported
	case 503:
		return "REC_SERVICE_UNAVAILABLE", fhir.IssueTypeTransient
	}
	if status >= 500 {
		return "REC_SERVER_ERROR", fhir.IssueTypeTransient
	}
	return "REC_BAD_REQUEST", fhir.IssueTypeProcessing
}

// failStatus answers a status fault.
func failStatus(w http.ResponseWriter, status int, retryAfter string) {
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	code, issue := barsError(status)
	fail(w, status, issue, code, fmt.Sprintf("sandbox fault: answering %d as scripted", status))
}

// resetConnection drops the connection with a TCP reset (SO_LINGER 0), as a
// crashing receiver or a middlebox does.
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = raw.Close()
}
