// Package storetest is the one test suite that every gateway.Store adapter
// must pass, so that the SQLite and PostgreSQL stores cannot drift apart in
// what idempotency, delivery and the decision chain mean. An adapter's test
// calls Run with a function that opens a fresh, empty store.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Hooks reach beneath the Store interface, as an attacker with database
// access or a second gateway process would. The store that open returns must
// implement it.
type Hooks interface {
	// Exec runs raw SQL statements with the store's own guards in force.
	Exec(ctx context.Context, queries ...string) error
	// Tamper runs raw SQL statements with the append-only guards lifted.
	Tamper(ctx context.Context, queries ...string) error
	// Another opens a second, independent handle (its own connections) on
	// the same database; the test's cleanup closes it.
	Another(t *testing.T) gateway.Store
}

// SingleWriter is implemented by stores whose database admits one writer at
// a time (SQLite). A second handle's writes then wait their turn, and SQLite's
// busy handler is not fair, so the suite proves exactly-once claims across
// handles without requiring the second handle to make progress alongside.
type SingleWriter interface {
	SingleWriter() bool
}

// T0 is the time the suite's scenarios start at.
var T0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// Institutions used by the suite (UKPRNs).
const (
	InstA = "10000001"
	InstB = "10000002"
)

// NewAcceptRequest builds a complete accept request whose content, and so its
// content hash, is determined by content. Record and bundle are stand-ins:
// the store treats them as opaque JSON.
func NewAcceptRequest(institution, caseID, content, previousID string, at time.Time) gateway.AcceptRequest {
	return newAcceptRequest(institution, caseID, content, previousID, at, "")
}

func newAcceptRequest(institution, caseID, content, previousID string, at time.Time, padding string) gateway.AcceptRequest {
	sum := sha256.Sum256([]byte(institution + "\x00" + caseID + "\x00" + content))
	hash := hex.EncodeToString(sum[:])
	id := gateway.ReferralID(institution, caseID, hash)
	record, _ := json.Marshal(map[string]any{"caseId": caseID, "content": content})
	bundle, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "message", "referral": id, "content": content, "padding": padding})
	decisionID := gateway.DeriveID("decision", hash, at.Format(time.RFC3339Nano))
	return gateway.AcceptRequest{
		Institution: institution, CaseID: caseID, ContentHash: hash, ServiceID: "u-cope",
		PreviousID: previousID, Record: record, Bundle: bundle, At: at, Sender: Sender(institution),
		Decision: gateway.DecisionRecord{
			DecisionID: decisionID, At: at,
			Body: json.RawMessage(`{"allow":true,"route":"consent","rules":["C-01"],"id":"` + decisionID + `"}`),
		},
	}
}

// Sender is the sender the suite's requests name for an institution.
func Sender(institution string) gateway.Sender {
	return gateway.Sender{
		Identifier: []gateway.Identifier{{System: gateway.FHIRBase + "/Id/ukprn", Value: institution}},
		Name:       "University " + institution,
	}
}

// Run runs the whole suite. open must return a fresh, empty store that also
// implements Hooks and is closed by the test's cleanup.
func Run(t *testing.T, open func(t *testing.T) gateway.Store) {
	t.Run("Accept", func(t *testing.T) { testAccept(t, open) })
	t.Run("AcceptRefusesIncompleteRequests", func(t *testing.T) { testAcceptInvalid(t, open) })
	t.Run("ConcurrentDuplicateAccepts", func(t *testing.T) { testConcurrentDuplicates(t, open) })
	t.Run("ConcurrentVersions", func(t *testing.T) { testConcurrentVersions(t, open) })
	t.Run("Tenancy", func(t *testing.T) { testTenancy(t, open) })
	t.Run("Outbox", func(t *testing.T) { testOutbox(t, open) })
	t.Run("ConcurrentClaimers", func(t *testing.T) { testConcurrentClaimers(t, open) })
	t.Run("Responses", func(t *testing.T) { testResponses(t, open) })
	t.Run("Cancel", func(t *testing.T) { testCancel(t, open) })
	t.Run("DecisionChain", func(t *testing.T) { testDecisionChain(t, open) })
	t.Run("ConcurrentAppends", func(t *testing.T) { testConcurrentAppends(t, open) })
	t.Run("Tampering", func(t *testing.T) { testTampering(t, open) })
	t.Run("PurgeContent", func(t *testing.T) { testPurge(t, open) })
}

func hooks(t *testing.T, s gateway.Store) Hooks {
	t.Helper()
	h, ok := s.(Hooks)
	if !ok {
		t.Fatalf("%T does not implement storetest.Hooks", s)
	}
	return h
}

// wantCode fails the test unless err has the gateway error code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := gateway.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func accept(t *testing.T, s gateway.Store, req gateway.AcceptRequest) gateway.AcceptResult {
	t.Helper()
	res, err := s.Accept(context.Background(), req)
	if err != nil {
		t.Fatalf("accept %s/%s: %v", req.Institution, req.CaseID, err)
	}
	return res
}

// jsonEqual compares JSON documents by value; stores may reformat them
// (PostgreSQL jsonb does), and the store's contract is the value.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

func sqlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// LegacyBundle is a queued message's Bundle as the gateway stored it before
// messages kept their sender: its MessageHeader.sender references the
// university's Organization entry, whose sender is LegacySender.
const LegacyBundle = `{"resourceType":"Bundle","type":"message","entry":[
	{"fullUrl":"urn:uuid:h","resource":{"resourceType":"MessageHeader","sender":{"reference":"urn:uuid:u"}}},
	{"fullUrl":"urn:uuid:t","resource":{"resourceType":"Organization","name":"Trust"}},
	{"fullUrl":"urn:uuid:u","resource":{"resourceType":"Organization","name":"University",
		"identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"X1"}]}}]}`

// LegacySender is the sender of LegacyBundle.
var LegacySender = gateway.Sender{
	Identifier: []gateway.Identifier{{System: "https://fhir.nhs.uk/Id/ods-organization-code", Value: "X1"}},
	Name:       "University",
}
