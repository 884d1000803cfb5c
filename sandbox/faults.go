package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
	"go.uber.org/zap"
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

// Fault is one scripted misbehaviour, applied to the next Count valid
// messages for Target (every message until cleared when Count is 0). The
// first fault in the list that matches a message applies to it. As JSON
// (POST /sandbox/faults takes one fault or a list):
//
//	{"mode": "status", "status": 429, "retryAfter": "2", "count": 1}
//	{"mode": "reset", "after": true, "count": 1}
//	{"mode": "slow", "delay": "2s", "count": 1}
//	{"mode": "reject", "reason": "outside our catchment", "target": "2000010001"}
type Fault struct {
	Mode       string `json:"mode"`
	Status     int    `json:"status,omitempty"`
	RetryAfter string `json:"retryAfter,omitempty"` // seconds or an HTTP date
	Delay      string `json:"delay,omitempty"`      // a Go duration ("2s")
	// After makes ModeStatus and ModeReset act after the message was
	// accepted: the receiver has it but the sender does not learn so, and
	// must retry into a 409 duplicate.
	After  bool   `json:"after,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Target limits the fault to one service: its NHSD-Target-Identifier
	// as system|value, or the value alone. Empty matches every target.
	Target string `json:"target,omitempty"`
	Count  int    `json:"count,omitempty"`
	// Used is how many messages the fault has applied to so far; the
	// receiver keeps it and ignores it in a new fault.
	Used int `json:"used"`
}

// Validate checks that a fault can be applied.
func (f Fault) Validate() error {
	delay, err := time.ParseDuration(f.Delay)
	switch {
	case f.Delay != "" && err != nil:
		return err
	case f.Mode != ModeStatus && f.Mode != ModeReset && f.Mode != ModeSlow && f.Mode != ModeReject:
		return fmt.Errorf("mode %q: use %s, %s, %s or %s", f.Mode, ModeStatus, ModeReset, ModeSlow, ModeReject)
	case f.Mode == ModeStatus && (f.Status < 400 || f.Status > 599):
		return errors.New("a status fault needs a status from 400 to 599")
	case f.Mode == ModeSlow && (delay <= 0 || delay > 5*time.Minute): // so that a typo cannot hang a test run
		return errors.New("a slow fault needs a delay up to 5m0s")
	case f.Count < 0:
		return errors.New("count must not be negative")
	case f.RetryAfter != "" && f.Mode != ModeStatus:
		return fmt.Errorf("retryAfter goes with mode %s", ModeStatus)
	case f.After && f.Mode != ModeStatus && f.Mode != ModeReset:
		return fmt.Errorf("after goes with modes %s and %s", ModeStatus, ModeReset)
	case f.Reason != "" && f.Mode != ModeReject:
		return fmt.Errorf("reason goes with mode %s", ModeReject)
	}
	return nil
}

// AddFault appends faults to the script, none unless all are valid.
func (rc *Receiver) AddFault(faults ...Fault) error {
	for i, f := range faults {
		if err := f.Validate(); err != nil {
			return fmt.Errorf("fault %d: %w", i, err)
		}
		faults[i].Used = 0
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.faults = append(rc.faults, faults...)
	return nil
}

// Faults lists the script, spent faults included.
func (rc *Receiver) Faults() []Fault { return snapshot(rc, &rc.faults) }

// takeFault returns the fault that applies to a valid message for target
// (the zero Fault when none does), and counts it as used.
func (rc *Receiver) takeFault(target string) Fault {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i := range rc.faults {
		f := &rc.faults[i]
		if (f.Count == 0 || f.Used < f.Count) && (f.Target == "" || f.Target == target || strings.HasSuffix(target, "|"+f.Target)) {
			f.Used++
			return *f
		}
	}
	return Fault{}
}

// postFaults is POST /sandbox/faults: one fault or a list, appended.
func (rc *Receiver) postFaults(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	list := make([]Fault, 1)
	var into any = &list[0]
	if bytes.HasPrefix(bytes.TrimSpace(body), []byte("[")) {
		into = &list
	}
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		err = dec.Decode(into)
	}
	if err == nil {
		err = rc.AddFault(list...)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, "application/json", map[string]string{"error": "the body must be a JSON fault or a list of valid faults: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusCreated, "application/json", map[string]any{"faults": rc.Faults()})
}

// misbehave answers as a status or reset fault f scripts, and reports
// whether it did.
func (rc *Receiver) misbehave(w http.ResponseWriter, f Fault, requestID string) bool {
	switch f.Mode {
	case ModeStatus:
		rc.opt.Logger.Info("fault: status", zap.String("request_id", requestID), zap.Int("status", f.Status), zap.Bool("after_accepting", f.After))
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		_, issue := barsError(f.Status)
		fail(w, f.Status, issue, fmt.Sprintf("sandbox fault: answering %d as scripted", f.Status))
	case ModeReset:
		rc.opt.Logger.Info("fault: connection reset", zap.String("request_id", requestID), zap.Bool("after_accepting", f.After))
		resetConnection(w)
	default:
		return false
	}
	return true
}

// barsErrors are the BaRS error code and FHIR issue type of a status, from
// the BaRS OperationOutcome examples.
var barsErrors = map[int]struct {
	code  string
	issue fhir.IssueType
}{
	400: {"REC_BAD_REQUEST", fhir.IssueTypeInvalid},
	401: {"REC_UNAUTHORIZED", fhir.IssueTypeForbidden},
	403: {"REC_FORBIDDEN", fhir.IssueTypeForbidden},
	404: {"REC_NOT_FOUND", fhir.IssueTypeNotFound},
	405: {"REC_METHOD_NOT_ALLOWED", fhir.IssueTypeNotSupported},
	406: {"REC_NOT_ACCEPTABLE", fhir.IssueTypeProcessing},
	408: {"REC_TIMEOUT", fhir.IssueTypeTimeout},
	409: {"REC_CONFLICT", fhir.IssueTypeConflict},
	422: {"REC_UNPROCESSABLE_ENTITY", fhir.IssueTypeBusinessRule},
	429: {"REC_TOO_MANY_REQUESTS", fhir.IssueTypeThrottled},
	501: {"REC_NOT_IMPLEMENTED", fhir.IssueTypeNotSupported},
	503: {"REC_SERVICE_UNAVAILABLE", fhir.IssueTypeTransient},
}

// barsError is the BaRS error code and FHIR issue type of a status.
func barsError(status int) (string, fhir.IssueType) {
	if e, ok := barsErrors[status]; ok {
		return e.code, e.issue
	}
	if status >= 500 {
		return "REC_SERVER_ERROR", fhir.IssueTypeTransient
	}
	return "REC_BAD_REQUEST", fhir.IssueTypeProcessing
}

// resetConnection drops the connection with a TCP reset (SO_LINGER 0), as a
// crashing receiver or a middlebox does.
func resetConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}
