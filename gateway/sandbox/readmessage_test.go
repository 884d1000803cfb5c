package sandbox

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// minimalMessage is the smallest Bundle that readMessage accepts, addressed
// to minimalTarget: a seed the fuzzer can mutate quickly.
const (
	minimalTarget  = "T"
	minimalMessage = `{"resourceType":"Bundle","id":"b","type":"message","entry":[` +
		`{"fullUrl":"h","resource":{"resourceType":"MessageHeader","eventCoding":{"system":"https://fhir.nhs.uk/CodeSystem/message-events-bars","code":"servicerequest-request"},` +
		`"reason":{"coding":[{"system":"https://fhir.nhs.uk/CodeSystem/message-reason-bars","code":"new"}]},"focus":[{"reference":"s"}],"destination":[{"endpoint":"T"}]}},` +
		`{"fullUrl":"s","resource":{"resourceType":"ServiceRequest","status":"active"}}]}`
)

// goldenTarget is the request.target (system|value) that a golden Bundle is
// addressed to.
func goldenTarget(t testing.TB, doc []byte) string {
	t.Helper()
	var m struct {
		Entry []struct {
			Resource struct {
				Destination []struct{ Endpoint string }
			}
		}
	}
	if err := json.Unmarshal(doc, &m); err != nil || len(m.Entry) == 0 || len(m.Entry[0].Resource.Destination) == 0 {
		t.Fatalf("not a golden message: %v", err)
	}
	return m.Entry[0].Resource.Destination[0].Endpoint
}

// compactJSON is doc as the gateway posts it: without whitespace.
func compactJSON(t testing.TB, doc []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, doc); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// readMessageVariants are bodies that the walk must leave to the decoder,
// or read as the decoder does: missing, extra, cased, escaped and repeated
// element names at the depths read and at others, elements and resources of
// other types, entries without fullUrl or resource, the focus on another
// type or on several entries, other statuses, broken JSON. b is a golden
// Bundle, indented or compact; the replacements that do not apply to its
// spacing leave it as it is.
func readMessageVariants(b []byte) [][]byte {
	sep := ": "
	if !bytes.Contains(b, []byte(`"resourceType": "Bundle"`)) {
		sep = ":"
	}
	k := func(s string) string { return strings.ReplaceAll(s, ": ", sep) }
	r := func(old, new string) []byte { return bytes.Replace(b, []byte(k(old)), []byte(k(new)), 1) }
	all := func(old, new string) []byte { return bytes.ReplaceAll(b, []byte(k(old)), []byte(k(new))) }
	// nth replaces the n-th (from 0) occurrence of old.
	nth := func(n int, old, new string) []byte {
		o := []byte(k(old))
		i := 0
		for ; n >= 0; n-- {
			j := bytes.Index(b[i:], o)
			if j < 0 {
				return b
			}
			i += j
			if n > 0 {
				i += len(o)
			}
		}
		return append(append(append([]byte{}, b[:i]...), k(new)...), b[i+len(o):]...)
	}
	focus := func() string {
		var m struct {
			Entry []struct {
				Resource struct{ Focus []struct{ Reference string } }
			}
		}
		if json.Unmarshal(b, &m) != nil || len(m.Entry) == 0 || len(m.Entry[0].Resource.Focus) == 0 {
			return "urn:uuid:x"
		}
		return m.Entry[0].Resource.Focus[0].Reference
	}()
	fullURLs := func() []string {
		var m struct{ Entry []struct{ FullURL string } }
		_ = json.Unmarshal(b, &m)
		var out []string
		for _, e := range m.Entry {
			out = append(out, e.FullURL)
		}
		return out
	}()
	vs := [][]byte{
		b,
		// The Bundle's elements.
		r(`"resourceType": "Bundle"`, `"resourceType": "\u0042undle"`),
		r(`"resourceType": "Bundle"`, `"resourceType": "Bundle", "resourceType": "Bundle"`),
		r(`"resourceType": "Bundle"`, `"resourceType": "Bundle", "ResourceType": "Bundle"`),
		r(`"resourceType": "Bundle"`, `"reſourceType": "Bundle"`),
		r(`"resourceType": "Bundle"`, `"resourceType": null`),
		r(`"resourceType": "Bundle"`, `"resourceType": 1`),
		r(`"resourceType": "Bundle"`, `"resourceType": "Collection"`),
		r(`"resourceType": "Bundle", `, ``),
		r(`"resourceType": "Bundle",`, ``),
		r(`"id": "`, `"ID": "`),
		r(`"id": "`, `"id": "x", "id": "`),
		r(`"id": "`, `"Id": "x", "id": "`),
		r(`"id": "`, `"id": "", "x": "`),
		r(`"id": "`, `"id": "\u0030`),
		r(`"id": "`, `"id": "é`),
		r(`"id": "`, `"id": "`+"\xff"),
		r(`"id": "`, `"id": {"id": "x"}, "x": "`),
		r(`"type": "message"`, `"type": "collection"`),
		r(`"type": "message"`, `"type": "m\u0065ssage"`),
		r(`"type": "message"`, `"TYPE": "message"`),
		r(`"type": "message"`, `"type": "message", "type": "history"`),
		r(`"type": "message"`, `"type": ["message"]`),
		r(`"type": "message"`, `"typ\u0065": "message"`),
		r(`"entry": [`, `"Entry": [`),
		r(`"entry": [`, `"entr\u0079": [`),
		r(`"entry": [`, `"entry": [], "entry": [`),
		r(`"entry": [`, `"entry": null, "x": [`),
		r(`"entry": [`, `"entry": {}, "x": [`),
		r(`"entry": [`, `"x": [`),
		r(`"entry": [`, `"entry": [null, `),
		r(`"entry": [`, `"entry": [1, `),
		r(`"entry": [`, `"entry": [[], `),
		r(`"entry": [`, `"entry": [{}, `),
		r(`"entry": [`, `"entry": ["x", `),
		r(`"meta": {`, `"meta": {"id": "", "type": "x", "entry": [1], "resourceType": 2, `),
		r(`"identifier": {`, `"identifier": {"entry": {"fullUrl": 1}, `),
		// The entries' elements.
		nth(3, `"fullUrl": `, `"fullUrL": `),
		nth(3, `"fullUrl": `, `"x": `),
		nth(1, `"fullUrl": `, `"fullUrl": "", "x": `),
		nth(1, `"fullUrl": `, `"fullUrl": 1, "x": `),
		nth(1, `"fullUrl": `, `"fullUrl": null, "x": `),
		nth(1, `"fullUrl": `, `"fullUrl": "x", "fullUrl": `),
		nth(0, `"fullUrl": `, `"fullUrl": "\u0078", "fullURL": `),
		all(`"fullUrl": "urn:uuid:`, `"fullUrl": "urn:uuid:\u0078`),
		all(`"reference": "urn:uuid:`, `"reference": "urn:uuid:x`),
		all(`"fullUrl": "urn:uuid:`, `"fullUrl": "urn:uuid:é`),
		all(`"reference": "urn:uuid:`, `"reference": "urn:uuid:é`),
		all(`"fullUrl": "urn:uuid:`, `"fullUrl": "urn:uuid:`+"\xff"),
		all(`"reference": "urn:uuid:`, `"reference": "urn:uuid:\ufffd`),
		nth(1, `"resource": {`, `"Resource": {`),
		nth(1, `"resource": {`, `"resource": null, "x": {`),
		nth(1, `"resource": {`, `"resource": "x", "x": {`),
		nth(1, `"resource": {`, `"resource": [], "x": {`),
		nth(1, `"resource": {`, `"resource": 5, "x": {`),
		nth(1, `"resource": {`, `"resource": {}, "x": {`),
		nth(1, `"resource": {`, `"resource": {"resourceType": "ServiceRequest", "status": "active"}, "resource": {`),
		nth(1, `"resource": {`, `"x": {`),
		nth(0, `"resource": {`, `"request": {"method": "POST", "fullUrl": 1, "resource": 2}, "resource": {`),
		nth(0, `"resource": {`, `"resource": [`),
		// The resources' elements.
		all(`"resourceType": "ServiceRequest"`, `"resourceType": "\u0053erviceRequest"`),
		all(`"resourceType": "ServiceRequest"`, `"resourceType": "Service\u0052equest"`),
		all(`"resourceType": "ServiceRequest"`, `"resourceType": "ServiceRequest", "resourceType": "Patient"`),
		all(`"resourceType": "ServiceRequest"`, `"resourceType": "Patient", "resourceType": "ServiceRequest"`),
		all(`"resourceType": "ServiceRequest"`, `"resourceType": "Patient", "ResourceType": "ServiceRequest"`),
		all(`"resourceType": "ServiceRequest"`, `"resourcetype": "ServiceRequest"`),
		all(`"resourceType": "ServiceRequest"`, `"reſourceType": "ServiceRequest"`),
		all(`"resourceType": "ServiceRequest"`, `"resourceType": null`),
		all(`"resourceType": "ServiceRequest"`, `"resourceType": 7`),
		all(`"resourceType": "ServiceRequest"`, `"resourceType": {"resourceType": "ServiceRequest"}`),
		all(`"resourceType": "ServiceRequest"`, `"resourceType": "Service`+"\xff"+`Request"`),
		all(`"resourceType": "ServiceRequest"`, `"resourceType": ""`),
		all(`"resourceType": "ServiceRequest"`, `"x": "ServiceRequest"`),
		all(`"resourceType": "Patient"`, `"resourceType": ""`),
		all(`"resourceType": "Patient"`, `"resourceType": 1`),
		all(`"resourceType": "Patient"`, `"r\u0065sourceType": "Patient"`),
		all(`"resourceType": "Organization"`, `"resourceType": "Organization", "resourceType": ""`),
		r(`"resourceType": "MessageHeader"`, `"resourceType": "\u004dessageHeader"`),
		r(`"resourceType": "MessageHeader"`, `"resourceType": "MessageHeader", "eventCoding": 1`),
		r(`"resourceType": "MessageHeader"`, `"resourceType": "MessageHeader", "focus": {}`),
		r(`"resourceType": "MessageHeader"`, `"resourceType": "Patient"`),
		r(`"code": "servicerequest-request"`, `"code": "booking-request"`),
		r(`"code": "servicerequest-request"`, `"code": "servicerequest-request", "system": "x"`),
		r(`"endpoint": "https://fhir.nhs.uk/Id/dos-service-id|`, `"endpoint": "https://fhir.nhs.uk/Id/dos-service-id|9`),
		r(`"status": "active"`, `"status": "revoked"`),
		r(`"status": "active"`, `"status": "draft"`),
		r(`"status": "active"`, `"status": ""`),
		r(`"status": "active"`, `"status": null`),
		r(`"status": "active"`, `"status": 1`),
		r(`"status": "active"`, `"status": true`),
		r(`"status": "active"`, `"status": {"status": "active"}`),
		r(`"status": "active"`, `"status": ["active"]`),
		r(`"status": "active"`, `"status": "\u0061ctive"`),
		r(`"status": "active"`, `"status": "act\u0069ve"`),
		r(`"status": "active"`, `"status": "r\u0065voked"`),
		r(`"status": "active"`, `"\u0073tatus": "active"`),
		r(`"status": "active"`, `"Status": "active"`),
		r(`"status": "active"`, `"STATUS": "revoked"`),
		r(`"status": "active"`, `"ſtatus": "active"`),
		r(`"status": "active"`, `"status": "active", "status": "revoked"`),
		r(`"status": "active"`, `"status": "revoked", "status": "active"`),
		r(`"status": "active"`, `"status": "active", "Status": "draft"`),
		r(`"status": "active"`, `"status": 1, "status": "active"`),
		r(`"status": "active"`, `"status": "active", "status": 1`),
		r(`"status": "active"`, `"x": "active"`),
		r(`"status": "active"`, `"status": "active", "extension": [{"status": "draft", "resourceType": "Patient", "id": 1}], "note": {"status": 1}`),
		r(`"status": "active", `, ``),
		r(`"status": "active",`, ``),
		// The focus.
		all(focus, fullURLs[min(2, len(fullURLs)-1)]),
		r(`"reference": "`+focus+`"`, `"reference": "`+fullURLs[min(2, len(fullURLs)-1)]+`"`),
		r(`"reference": "`+focus+`"`, `"reference": "urn:uuid:00000000-0000-0000-0000-000000000000"`),
		r(`"reference": "`+focus+`"`, `"reference": "\u0075`+focus[1:]+`"`),
		r(`"focus": [`, `"focus": [], "x": [`),
		r(`"focus": [`, `"focus": null, "x": [`),
		nth(0, `"fullUrl": "`+focus+`"`, `"fullUrl": "\u0075`+focus[1:]+`"`),
		// Two entries with the focus's fullUrl: the last one's type
		// counts, and every one's status.
		all(`"fullUrl": "`+fullURLs[min(2, len(fullURLs)-1)]+`"`, `"fullUrl": "`+focus+`"`),
		all(`"fullUrl": "`+fullURLs[len(fullURLs)-1]+`"`, `"fullUrl": "`+focus+`"`),
		// The ServiceRequest's and the Patient's elements that the
		// response message copies.
		r(`"intent": "order"`, `"intent": 5`),
		r(`"intent": "order"`, `"intent": null`),
		r(`"intent": "order"`, `"intent": ""`),
		r(`"intent": "order"`, `"Intent": "plan"`),
		r(`"intent": "order"`, `"intent": "order", "intent": "plan"`),
		r(`"intent": "order"`, `"intent": "\u006frder"`),
		r(`"intent": "order"`, `"intent": "ordér <&>"`),
		r(`"intent": "order"`, `"x": "order"`),
		r(`"identifier": [`, `"identifier": null, "x": [`),
		r(`"identifier": [`, `"Identifier": [`),
		r(`"identifier": [`, `"identifier": [], "identifier": [`),
		r(`"identifier": [`, `"identifier": "x", "x": [`),
		r(`"identifier": [`, `"x": [`),
		r(`"category": [`, `"category": {"a": [1, 2]}, "x": [`),
		r(`"category": [`, `"categor\u0079": [`),
		r(`"code": {`, `"code": "x", "x": {`),
		r(`"code": {`, `"code": {"text": "<b> & \u2028"}, "x": {`),
		r(`"code": {`, `"CODE": {`),
		r(`"subject": {`, `"subject": null, "x": {`),
		r(`"subject": {`, `"Subject": {`),
		r(`"subject": {`, `"subject": "x", "x": {`),
		r(`"subject": {`, `"subject": {"reference": 5}, "x": {`),
		r(`"subject": {`, `"subject": {"Reference": "x", "display": "y"}, "x": {`),
		r(`"subject": {`, `"subject": {"reference": "x"}, "subject": {`),
		r(`"subject": {"reference": "`, `"subject": {"reference": "x", "reference": "`),
		r(`"subject": {"reference": "`, `"subject": {"reference": "\u0075`),
		nth(2, `"id": "`, `"id": 1, "x": "`),
		nth(2, `"id": "`, `"id": null, "x": "`),
		nth(2, `"id": "`, `"id": "x", "id": "`),
		nth(2, `"id": "`, `"ID": "x", "id": "`),
		nth(2, `"id": "`, `"id": "\u0041`),
		nth(2, `"id": "`, `"x": "`),
		nth(3, `"id": "`, `"id": 1, "x": "`),
		nth(3, `"id": "`, `"id": "", "x": "`),
		nth(3, `"id": "`, `"id": "x", "iD": "`),
		nth(3, `"id": "`, `"id": "é<`),
		nth(3, `"id": "`, `"x": "`),
		all(`"name": "`, `"name": "<b> & \u2028 é `),
		all(`"value": "`, `"value": "\u003c&`),
		// Not JSON, or not one object.
		b[:len(b)-2],
		b[:len(b)/2],
		append(append([]byte{}, b...), '}'),
		append(append([]byte{}, b...), []byte(" {}")...),
		append([]byte("\xef\xbb\xbf"), b...),
		append(append([]byte("["), b...), ']'),
		all(`"`, `'`),
	}
	return vs
}

// minimalVariants are small bodies: shapes the golden Bundles do not have.
var minimalVariants = []string{
	minimalMessage,
	``, ` `, `{}`, `[]`, `null`, `"x"`, `1`, `{"resourceType":"Bundle"}`,
	`{"resourceType":"Bundle","type":"message","entry":[]}`,
	`{"resourceType":"Bundle","type":"message","entry":null}`,
	`{"resourceType":"Bundle","type":"message","entry":[{}]}`,
	`{"resourceType":"Bundle","type":"message","entry":[{"resource":{}}]}`,
	`{"resourceType":"Bundle","type":"message","entry":[{"fullUrl":"h","resource":null}]}`,
	`{"resourceType":"Bundle","type":"message","entry":[{"fullUrl":"h","resource":{"resourceType":"MessageHeader","eventCoding":{"code":"x"}}}]}`,
	strings.Replace(minimalMessage, `"destination":[{"endpoint":"T"}]`, `"destination":[]`, 1),
	strings.Replace(minimalMessage, `"destination":[{"endpoint":"T"}]`, `"destination":[{"endpoint":"U"},{"endpoint":"T"}]`, 1),
	strings.Replace(minimalMessage, `"status":"active"`, `"status":"revoked"`, 1),
	strings.Replace(minimalMessage, `{"fullUrl":"s","resource":{"resourceType":"ServiceRequest","status":"active"}}`,
		`{"fullUrl":"s","resource":{"resourceType":"ServiceRequest","status":"active"}},{"fullUrl":"s","resource":{"resourceType":"Patient","status":"revoked"}}`, 1),
	strings.Replace(minimalMessage, `{"fullUrl":"s","resource":{"resourceType":"ServiceRequest","status":"active"}}`,
		`{"fullUrl":"s","resource":{"resourceType":"Patient"}},{"fullUrl":"s","resource":{"resourceType":"ServiceRequest","status":"revoked"}}`, 1),
	strings.Replace(minimalMessage, `{"fullUrl":"s","resource":{"resourceType":"ServiceRequest","status":"active"}}`,
		`{"fullUrl":"s","resource":{"resourceType":"ServiceRequest","status":"active"}},{"fullUrl":"s","resource":{"resourceType":"ServiceRequest","status":"draft"}}`, 1),
	strings.Replace(minimalMessage, `"fullUrl":"h"`, `"fullUrl":"s"`, 1),
	strings.Replace(minimalMessage, `"fullUrl":"h"`, `"fullUrl":""`, 1),
	strings.Replace(minimalMessage, `"id":"b"`, `"id":"b","id":""`, 1),
	strings.Replace(minimalMessage, `"resource":{"resourceType":"ServiceRequest","status":"active"}`, `"resource":{"resourceType":"ServiceRequest","status":"active","status":null}`, 1),
	strings.Replace(minimalMessage, `"resource":{"resourceType":"ServiceRequest","status":"active"}`, `"resource":{"resourceType":"ServiceRequest","status":"revoked","status":"\u0061ctive"}`, 1),
	strings.Replace(minimalMessage, `"resource":{"resourceType":"ServiceRequest","status":"active"}`, `"resource":{"resourceType":"ServiceRequest","resourceType":null,"status":"active"}`, 1),
}

// checkReadMessage holds readMessage to readMessageRef on one body: the
// same problem, and the same request (the request's types, which the
// reference does not have, are checked against a decode of each entry).
func checkReadMessage(t *testing.T, body []byte, target string) {
	t.Helper()
	got := request{requestID: "r", correlationID: "c", target: target, body: body}
	want := got
	gp := readMessage(&got)
	wp := readMessageRef(&want)
	if !reflect.DeepEqual(gp, wp) {
		t.Fatalf("problem %+v, want %+v\nbody %.300q", gp, wp, body)
	}
	types := got.types
	got.types = nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("request differs from the reference's:\n got %+v\nwant %+v\nbody %.300q", got, want, body)
	}
	if got.msg.Entry == nil {
		if types != nil {
			t.Fatalf("types %q without entries", types)
		}
		return
	}
	if len(types) != len(got.msg.Entry) {
		t.Fatalf("%d types for %d entries", len(types), len(got.msg.Entry))
	}
	for i, e := range got.msg.Entry {
		var r struct {
			ResourceType string `json:"resourceType"`
		}
		if err := json.Unmarshal(e.Resource, &r); err != nil || r.ResourceType != types[i] {
			t.Fatalf("entry %d: type %q, the decoder says %q (%v)", i, types[i], r.ResourceType, err)
		}
	}
}

// TestReadMessageMatchesRef holds readMessage to the whole-Bundle decode it
// replaced, on the golden Bundles (indented and compact) and variants of
// them, and on small bodies of other shapes.
func TestReadMessageMatchesRef(t *testing.T) {
	golden := goldenBundles(t)
	golden["request.json"] = fixture(t)
	accepted, fast := 0, 0
	for _, name := range slices.Sorted(maps.Keys(golden)) {
		doc := golden[name]
		target := goldenTarget(t, doc)
		for _, form := range [][]byte{doc, compactJSON(t, doc)} {
			for i, b := range readMessageVariants(form) {
				t.Run("", func(t *testing.T) {
					checkReadMessage(t, b, target)
					checkReadMessage(t, b, "https://fhir.nhs.uk/Id/dos-service-id|1")
				})
				if i == 0 {
					req := request{body: b, target: target}
					if p := readMessage(&req); p != nil || req.status != "active" {
						t.Errorf("%s: not accepted as a referral: %+v", name, p)
					}
					accepted++
				}
				if _, _, ok := scanBundle(b); ok {
					fast++
				}
			}
		}
	}
	for _, b := range minimalVariants {
		checkReadMessage(t, []byte(b), minimalTarget)
	}
	// The walk must read the real messages itself, not leave them to the
	// decoder.
	for _, name := range slices.Sorted(maps.Keys(golden)) {
		for _, form := range [][]byte{golden[name], compactJSON(t, golden[name])} {
			_, res, ok := scanBundle(form)
			if !ok {
				t.Errorf("%s: the walk left a golden Bundle to the decoder", name)
			}
			for i, r := range res {
				if !r.typKnown || !r.statusKnown {
					t.Errorf("%s: entry %d: the walk left the resource to the decoder", name, i)
				}
			}
		}
	}
	t.Logf("%d golden Bundles accepted; %d bodies read by the walk", accepted, fast)
}

// FuzzReadMessageEquiv holds readMessage to readMessageRef on any body and
// target: the same *problem (status, issue, code, message) and the same
// request.
func FuzzReadMessageEquiv(f *testing.F) {
	golden := goldenBundles(f)
	for _, name := range slices.Sorted(maps.Keys(golden))[:2] {
		doc := golden[name]
		target := goldenTarget(f, doc)
		for _, b := range readMessageVariants(compactJSON(f, doc)) {
			f.Add(b, target)
		}
	}
	for _, b := range minimalVariants {
		f.Add([]byte(b), minimalTarget)
	}
	f.Fuzz(func(t *testing.T, body []byte, target string) {
		checkReadMessage(t, body, target)
	})
}
