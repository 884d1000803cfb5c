package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
)

// gmReceiver is a receiver bound to gm-student-mhs only: not the service of
// the referrals these tests send.
const gmReceiver = "demo-gm-receiver"

func withGMReceiver(a *app) {
	sum := sha256.Sum256([]byte(gmReceiver))
	a.cfg.Clients = append(a.cfg.Clients, config.Client{ID: "gm-receiver", Roles: []string{gateway.RoleReceiver},
		Services: []string{"gm-student-mhs"}, TokenSHA256: hex.EncodeToString(sum[:])})
}

// stepMessage is a BaRS response message answering the request Bundle
// bundleID about the Liverpool test case, with the resources that tell its
// step.
func stepMessage(t testing.TB, responseID, bundleID, code, srStatus, stamp string, extra ...map[string]any) []byte {
	t.Helper()
	entries := []any{
		map[string]any{"fullUrl": "urn:uuid:0d1c3a52-2d0e-4b7a-9c44-8a1e0f3b7d21", "resource": map[string]any{
			"resourceType": "MessageHeader",
			"eventCoding":  map[string]any{"system": "https://fhir.nhs.uk/CodeSystem/message-events-bars", "code": "servicerequest-response"},
			"response":     map[string]any{"identifier": bundleID, "code": code},
			"focus":        []any{map[string]any{"reference": "urn:uuid:1d1c3a52-2d0e-4b7a-9c44-8a1e0f3b7d21"}},
		}},
		map[string]any{"fullUrl": "urn:uuid:1d1c3a52-2d0e-4b7a-9c44-8a1e0f3b7d21", "resource": map[string]any{
			"resourceType": "ServiceRequest", "status": srStatus, "intent": "order",
			"identifier": []any{map[string]any{"system": "https://student-mh-referrals.github.io/gateway/fhir/Id/case-id/10006842", "value": "UOL-SS-2026-04417"}},
			"subject":    map[string]any{"reference": "urn:uuid:2d1c3a52-2d0e-4b7a-9c44-8a1e0f3b7d21"},
			"note":       []any{map[string]any{"text": "Seen by Dr Example; the student spoke about her family"}},
		}},
	}
	for i, r := range extra {
		entries = append(entries, map[string]any{"fullUrl": "urn:uuid:9d1c3a52-2d0e-4b7a-9c44-8a1e0f3b7d2" + string(rune('0'+i)), "resource": r})
	}
	b, err := json.Marshal(map[string]any{"resourceType": "Bundle", "id": responseID, "type": "message", "timestamp": stamp, "entry": entries})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func appointment(id, status, start string) map[string]any {
	return map[string]any{"resourceType": "Appointment", "id": id, "status": status, "start": start,
		"participant": []any{map[string]any{"status": "accepted"}}}
}

func encounter(status, start, end, disposition string) map[string]any {
	e := map[string]any{"resourceType": "Encounter", "status": status, "class": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
		"period": map[string]any{"start": start, "end": end}}
	if disposition != "" {
		e["hospitalization"] = map[string]any{"dischargeDisposition": map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/discharge-disposition", "code": disposition}}}}
	}
	return e
}

// deliverDue plays the delivery worker: every due message is delivered.
func deliverDue(t testing.TB, s gateway.Store) {
	t.Helper()
	ctx := context.Background()
	ms, err := s.Claim(ctx, "test-worker", 10, time.Now().Add(time.Hour), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if err := s.RecordAttempt(ctx, m.ID, m.LeaseID, gateway.Attempt{Result: gateway.AttemptDelivered, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
}

// sentBundleID is the id of the Bundle the gateway queued for a referral.
func sentBundleID(t testing.TB, s gateway.Store, id string) string {
	t.Helper()
	ref, err := s.Referral(context.Background(), "10006842", id)
	if err != nil {
		t.Fatal(err)
	}
	var b struct{ ID string }
	if json.Unmarshal(ref.Bundle, &b) != nil || b.ID == "" {
		t.Fatalf("no Bundle id in %s", ref.Bundle)
	}
	return b.ID
}

// refusals are the reasons of the response-refused records of a chain.
func refusals(t *testing.T, s gateway.Store, chain string) []string {
	t.Helper()
	recs, err := s.Decisions(context.Background(), chain, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		var a gateway.ActionEntry
		if json.Unmarshal(r.Body, &a) == nil && a.Action == gateway.ActionResponseRefused {
			out = append(out, a.Reason)
		}
	}
	return out
}

func TestReturnPath(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			srv, store := apiServerWith(t, driver, withGMReceiver)
			testReturnPath(t, srv, store)
		})
	}
}

// testReturnPath plays a whole journey through the API: every step, a late
// report, and forged, misrouted, duplicate and out-of-agreement responses,
// each refused with the same answer where it must not tell what exists,
// and recorded.
func testReturnPath(t *testing.T, srv *httptest.Server, store gateway.Store) {
	first := call(t, srv, apiCall{method: "POST", path: "/v1/referrals", token: liverpool, body: readCase(t, "allow-liverpool-u-cope")})
	if first.status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", first.status, first.body)
	}
	id := first.json(t)["id"].(string)
	bundle := sentBundleID(t, store, id)
	post := func(token string, body []byte) apiAnswer {
		return call(t, srv, apiCall{method: "POST", path: "/fhir/$process-message", token: token, ctype: "application/fhir+json", body: body})
	}
	view := func() map[string]any {
		return call(t, srv, apiCall{method: "GET", path: "/v1/referrals/" + id, token: liverpool}).json(t)
	}
	if v := view(); v["status"] != "queued" || v["delivery"].([]any)[0].(map[string]any)["state"] != "pending" {
		t.Fatalf("before delivery: %v", v)
	}
	accepted := stepMessage(t, "r-accept", bundle, "ok", "active", "2026-03-02T10:00:00Z")

	// Refused before delivery, and forged: one answer, whether the message
	// exists or not.
	notDelivered := post(receiver, accepted)
	forged := post(receiver, stepMessage(t, "r-forged", "00000000-0000-4000-8000-00000000dead", "ok", "active", "2026-03-02T10:00:00Z"))
	if notDelivered.status != http.StatusNotFound || forged.status != http.StatusNotFound {
		t.Fatalf("not delivered %d, forged %d", notDelivered.status, forged.status)
	}
	deliverDue(t, store)
	misrouted := post(gmReceiver, accepted)
	if misrouted.status != http.StatusNotFound || string(misrouted.body) != string(forged.body) || string(notDelivered.body) != string(forged.body) {
		t.Fatalf("refusals tell apart what exists:\n%s\n%s\n%s", forged.body, notDelivered.body, misrouted.body)
	}
	if codes := issueCodes(t, forged.body); len(codes) != 1 || codes[0] != "REC_NOT_FOUND" {
		t.Fatalf("a refusal's BaRS codes %v, want REC_NOT_FOUND", codes)
	}
	if v := view(); v["status"] != "delivered" || v["timeline"] != nil {
		t.Fatalf("refused responses changed the referral: %v", v)
	}

	journey := []struct {
		name   string
		body   []byte
		status string
	}{
		{"accepted", accepted, "accepted"},
		{"booked", stepMessage(t, "r-book", bundle, "ok", "active", "2026-03-03T09:00:00Z", appointment("A1", "booked", "2026-03-09T14:00:00Z")), "booked"},
		{"did not attend", stepMessage(t, "r-dna", bundle, "ok", "active", "2026-03-09T15:00:00Z", appointment("A1", "noshow", "2026-03-09T14:00:00Z")), "did-not-attend"},
		{"rebooked", stepMessage(t, "r-rebook", bundle, "ok", "active", "2026-03-10T09:00:00Z", appointment("A2", "booked", "2026-03-16T14:00:00Z")), "rebooked"},
		{"seen", stepMessage(t, "r-seen", bundle, "ok", "active", "2026-03-16T15:00:00Z", appointment("A2", "fulfilled", "2026-03-16T14:00:00Z"),
			encounter("finished", "2026-03-16T14:05:00Z", "2026-03-16T14:55:00Z", "")), "seen"},
		{"a late walk-in is recorded, the status stays", stepMessage(t, "r-walk-in", bundle, "ok", "active", "2026-03-20T09:00:00Z",
			encounter("finished", "2026-03-05T11:00:00Z", "", "")), "seen"},
		{"redirected", stepMessage(t, "r-redirect", bundle, "ok", "completed", "2026-03-25T12:00:00Z",
			encounter("finished", "", "2026-03-25T11:00:00Z", "other-hcf")), "redirected"},
		{"discharged", stepMessage(t, "r-discharge", bundle, "ok", "completed", "2026-04-01T12:00:00Z",
			encounter("finished", "", "2026-04-01T11:00:00Z", "home")), "discharged"},
	}
	for i, j := range journey {
		if a := post(receiver, j.body); a.status != http.StatusOK {
			t.Fatalf("%s: %d %s", j.name, a.status, a.body)
		}
		v := view()
		if v["status"] != j.status || len(v["timeline"].([]any)) != i+1 {
			t.Fatalf("%s: status %v, timeline %v", j.name, v["status"], v["timeline"])
		}
	}
	v := view()
	raw, _ := json.Marshal(v)
	if strings.Contains(string(raw), "Dr Example") || v["receiverResponse"] != nil {
		t.Fatalf("the university sees a receiver's free text: %s", raw)
	}
	if v["acknowledgedAt"] != "2026-03-02T10:00:00Z" || v["firstAppointmentAt"] != "2026-03-05T11:00:00Z" {
		t.Fatalf("acknowledged %v, first appointment %v", v["acknowledgedAt"], v["firstAppointmentAt"])
	}
	var steps []string
	for _, e := range v["timeline"].([]any) {
		steps = append(steps, e.(map[string]any)["step"].(string))
	}
	if got := strings.Join(steps, " "); got != "accepted booked seen did-not-attend rebooked seen redirected discharged" {
		t.Fatalf("timeline by time: %s", got)
	}

	// A duplicate, and a rejection after the fact: refused, nothing changes.
	if a := post(receiver, accepted); a.status != http.StatusConflict || issueCodes(t, a.body)[0] != "REC_CONFLICT" {
		t.Fatalf("duplicate: %d %s", a.status, a.body)
	}
	// A step dated in the future has not happened.
	future := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	if a := post(receiver, stepMessage(t, "r-future", bundle, "ok", "active", future)); a.status != http.StatusUnprocessableEntity {
		t.Fatalf("a step in the future: %d %s", a.status, a.body)
	}
	if v := view(); v["status"] != "discharged" || len(v["timeline"].([]any)) != len(journey) {
		t.Fatalf("refusals changed the referral: %v", v)
	}
	got := strings.Join(refusals(t, store, "10006842"), " ")
	if got != "not-delivered wrong-receiver duplicate future-time" {
		t.Fatalf("refusals recorded: %q", got)
	}
	if gw := refusals(t, store, gateway.GatewayChain); len(gw) != 1 || gw[0] != gateway.RefusedUnknown {
		t.Fatalf("refusals in the gateway chain: %v", gw)
	}
	if a := post(receiver, []byte(`{"resourceType":"Bundle"`)); a.status != http.StatusBadRequest {
		t.Fatalf("malformed: %d", a.status)
	}
	if gw := refusals(t, store, gateway.GatewayChain); len(gw) != 2 || gw[1] != gateway.RefusedMalformed {
		t.Fatalf("refusals in the gateway chain: %v", gw)
	}
}

// TestReturnStepsAgreement: a service whose registry entry names no
// returnSteps reports acceptance and rejection only; a booking is refused
// (403) and recorded.
func TestReturnStepsAgreement(t *testing.T) {
	srv, store := apiServerWith(t, "sqlite", func(a *app) {
		svc, _ := a.evaluator.Registry.Lookup("u-cope")
		svc.ReturnSteps = nil
	})
	first := call(t, srv, apiCall{method: "POST", path: "/v1/referrals", token: liverpool, body: readCase(t, "allow-liverpool-u-cope")})
	id, _ := first.json(t)["id"].(string)
	deliverDue(t, store)
	bundle := sentBundleID(t, store, id)
	post := func(body []byte) int {
		return call(t, srv, apiCall{method: "POST", path: "/fhir/$process-message", token: receiver, ctype: "application/fhir+json", body: body}).status
	}
	if s := post(stepMessage(t, "r-book", bundle, "ok", "active", "2026-03-03T09:00:00Z", appointment("A1", "booked", "2026-03-09T14:00:00Z"))); s != http.StatusForbidden {
		t.Fatalf("a booking outside the agreement: %d", s)
	}
	if s := post(stepMessage(t, "r-accept", bundle, "ok", "active", "2026-03-02T10:00:00Z")); s != http.StatusOK {
		t.Fatalf("an acceptance: %d", s)
	}
	if got := refusals(t, store, "10006842"); len(got) != 1 || got[0] != gateway.RefusedOutsideAgreement {
		t.Fatalf("refusals %v", got)
	}
	// The service then declines it after all: the later step sets the status.
	if s := post(stepMessage(t, "r-reject", bundle, "fatal-error", "revoked", "2026-03-04T10:00:00Z")); s != http.StatusOK {
		t.Fatalf("a rejection: %d", s)
	}
	if v := call(t, srv, apiCall{method: "GET", path: "/v1/referrals/" + id, token: liverpool}).json(t); v["status"] != "rejected" {
		t.Fatalf("status %v, want rejected", v["status"])
	}
}
