package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Outcomes of an evaluation.
const (
	OutcomeAllow   = "allow"
	OutcomeDeny    = "deny"
	OutcomeInvalid = "invalid"
)

// Namespace is the UUID v5 namespace of every id the gateway derives (decision,
// referral, patient, bundle ids), so that the same inputs give the same ids on
// every machine and every version of the gateway.
var Namespace = uuid.MustParse("6f1c3a52-2d0e-5b7a-9c44-8a1e0f3b7d21")

// DeriveID returns a UUID v5 under Namespace for the given parts. Parts are
// joined with a separator that cannot occur in them unescaped, so that
// ("a","bc") and ("ab","c") differ.
func DeriveID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return uuid.NewSHA1(Namespace, h.Sum(nil)).String()
}

// Source describes the gateway itself as a message source, as the BaRS
// examples write MessageHeader.source: the operating organisation's name,
// the software name and version, a contact for the receiver's integrators,
// and the gateway's own target identifier (system|value) under which a
// receiver routes its response messages back.
type Source struct {
	Name     string        `json:"name"`
	Software string        `json:"software"`
	Version  string        `json:"version"`
	Contact  SourceContact `json:"contact"`
	Endpoint string        `json:"endpoint"`
}

// SourceContact is MessageHeader.source.contact: a FHIR ContactPoint with a
// system (phone, email, url) and a value.
type SourceContact struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

// MessageInput is what the mapping needs to build the message the NHS
// service receives.
type MessageInput struct {
	Record   *CaseRecord
	Decision *Decision
	Service  *Service
	Source   Source
	At       time.Time
	// Update marks a later version of a case already sent: the message's
	// reason is "update" instead of "new".
	Update bool
	// Revoke builds the cancellation: the ServiceRequest again with status
	// "revoked".
	Revoke bool
	// ContentHash is ContentHash(Record) when the caller has it already;
	// empty, the mapping computes it. It names the Bundle.
	ContentHash string
	// Definition is the canonical URL of the receiver's MessageDefinition
	// (MessageHeader.definition), resolved when the referral is accepted;
	// empty leaves definition out.
	Definition string
}

// Mapper turns an allowed case record into the FHIR message Bundle, carrying
// out the decision's obligations. It returns the serialised Bundle so that
// what is validated, stored and sent is byte for byte the same.
type Mapper interface {
	Message(ctx context.Context, in MessageInput) ([]byte, error)
}

// MessageValidator checks a message the gateway built before it is stored
// or sent. A message that fails is a bug in the gateway, never the client's
// fault: it must not reach the NHS.
type MessageValidator interface {
	// ValidateMessage returns the problems found; an empty result means the
	// message may leave.
	ValidateMessage(bundle []byte) []Issue
}

// Evaluator runs the whole path from a posted body to a decision and, when
// allowed, the message: parse and validate, look up the service, decide, map.
// It is what `gateway evaluate` and POST /v1/referrals/$evaluate share, so
// the two give the same document.
type Evaluator struct {
	Registry *Registry
	Decider  Decider
	Mapper   Mapper
	Source   Source
	// Validator, when set, is the output gate: every message is checked
	// before it is returned, stored or sent.
	Validator MessageValidator
	// OnInvalidMessage, when set, is told of each message the gate stopped
	// (for a metric); the caller still gets an internal error.
	OnInvalidMessage func(issues []Issue)
	// Definitions, when set, resolves each receiver's MessageDefinition
	// before the decision (the policies judge what it demands, M-01; the
	// message names it in MessageHeader.definition); nil uses the
	// registry's messageDefinition alone.
	Definitions DefinitionSource
}

// Evaluation is the result of one evaluation. Err is set when the input is
// invalid or malformed (Outcome "invalid"); Bundle only when allowed.
type Evaluation struct {
	Outcome  string
	Record   *CaseRecord
	Service  *Service
	Decision *Decision
	Bundle   json.RawMessage
	Err      *Error
	// Definition is the receiver's MessageDefinition the policies decided
	// with (input.definition), kept with the decision so that a replay
	// decides with it too.
	Definition *MessageDefinition
}

// Evaluate parses body as a case record and evaluates it at the given time.
// Bad input is not an error: it is an Evaluation with Outcome "invalid". The
// returned error is for failures of the gateway itself.
func (e *Evaluator) Evaluate(ctx context.Context, body []byte, at time.Time) (*Evaluation, error) {
	rec, err := ParseCaseRecord(body)
	if err != nil {
		ge := AsError(err)
		if ge.Code == EINTERNAL {
			return nil, ge
		}
		return &Evaluation{Outcome: OutcomeInvalid, Err: ge}, nil
	}
	return e.evaluate(ctx, rec, "", at, false)
}

// evaluate decides and, when allowed, maps; update marks a later version of
// a case already accepted. hash is rec's ContentHash when the caller has it
// already ("" computes it).
func (e *Evaluator) evaluate(ctx context.Context, rec *CaseRecord, hash string, at time.Time, update bool) (*Evaluation, error) {
	svc, ok := e.Registry.Lookup(rec.Referral.Service)
	if !ok {
		return &Evaluation{Outcome: OutcomeInvalid, Record: rec, Err: &Error{
			Code:    EINVALID,
			Message: "the case record names a service that is not in the registry",
			Issues: []Issue{{
				Severity: "error", Type: "value", Expression: "referral.service",
				Message: "unknown service; use one of: " + joinQuoted(e.Registry.IDs()),
			}},
		}}, nil
	}
	at = at.UTC().Truncate(time.Second)
	// The receiver's definition is resolved before deciding: what it demands
	// is for the policies to judge (M-01), and the Bundle never changes after
	// the referral is accepted.
	def, err := e.definition(ctx, svc)
	if err != nil {
		return nil, err
	}
	d, err := e.Decider.Decide(ctx, DecisionInput{Record: rec, Service: svc, At: at, Definition: def})
	if err != nil {
		return nil, err
	}
	d.Time = at.Format(time.RFC3339)
	if d.PolicyRevision == "" {
		// The decider names the set that made the decision; during a
		// reload that may not be the set in force a moment later.
		d.PolicyRevision = e.Decider.Revision()
	}
	if hash == "" {
		hash = ContentHash(rec)
	}
	d.ID = DeriveID("decision", hash, svc.ID, d.Time, d.PolicyRevision)
	ev := &Evaluation{Record: rec, Service: svc, Decision: d, Outcome: OutcomeDeny, Definition: def}
	if !d.Allow {
		return ev, nil
	}
	b, err := e.Mapper.Message(ctx, MessageInput{Record: rec, Decision: d, Service: svc, Source: e.Source, At: at, Update: update, ContentHash: hash, Definition: def.URL})
	if err != nil {
		return nil, err
	}
	if err := def.assertMet(b); err != nil {
		return nil, err
	}
	if err := e.gate(b); err != nil {
		return nil, err
	}
	ev.Outcome, ev.Bundle = OutcomeAllow, b
	return ev, nil
}

// gate validates a built message. Only the paths and kinds of the problems
// go into the internal error (and so the log): a validator's message may quote
// a value, and values are personal data.
func (e *Evaluator) gate(bundle []byte) error {
	if e.Validator == nil {
		return nil
	}
	var errs []Issue
	var desc []string
	for _, is := range e.Validator.ValidateMessage(bundle) {
		if is.Severity != "warning" && is.Severity != "information" {
			errs = append(errs, is)
			desc = append(desc, is.Expression+" ("+is.Type+")")
		}
	}
	if len(errs) == 0 {
		return nil
	}
	if e.OnInvalidMessage != nil {
		e.OnInvalidMessage(errs)
	}
	return Internal(fmt.Errorf("output gate: the built message is not valid FHIR (%d problems): %s", len(errs), strings.Join(desc, "; ")))
}

// ContentHash is the hex SHA-256 of the record's canonical JSON (the typed
// record re-serialised, so key order and white space of the post do not
// matter). With the institution and case id it is the idempotency key.
func ContentHash(rec *CaseRecord) string {
	b, err := json.Marshal(rec)
	if err != nil {
		// A CaseRecord holds only strings, bools, numbers, slices and
		// structs; Marshal cannot fail on it.
		panic(err)
	}
	return hashCanonical(b)
}

// hashCanonical is ContentHash of the record whose canonical JSON (as
// json.Marshal writes it) is b, for callers that need both.
func hashCanonical(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func joinQuoted(ss []string) string {
	quoted := make([]string, len(ss))
	for i, s := range ss {
		quoted[i] = `"` + s + `"`
	}
	return strings.Join(quoted, ", ")
}
