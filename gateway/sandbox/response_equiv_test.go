package sandbox

import (
	"bytes"
	"maps"
	"slices"
	"testing"
)

// TestResponseToMatchesRef holds the response message to the bytes that
// responseToRef (entries found by decoding them again) builds, for every
// golden Bundle and every variant of it that readMessage accepts, accepted
// and rejected; and ResponseMessage (no types) likewise.
func TestResponseToMatchesRef(t *testing.T) {
	golden := goldenBundles(t)
	golden["request.json"] = fixture(t)
	built := 0
	for _, name := range slices.Sorted(maps.Keys(golden)) {
		doc := golden[name]
		target := goldenTarget(t, doc)
		for _, form := range [][]byte{doc, compactJSON(t, doc)} {
			for i, b := range readMessageVariants(form) {
				req := request{body: b, target: target}
				if readMessage(&req) != nil {
					continue
				}
				checkResponseTo(t, b, target)
				for _, accept := range []bool{true, false} {
					got, gi, gerr := responseMessage(b, accept, "", t0)
					want, wi, werr := responseToRef(req.msg, req.mh, accept, "", t0)
					if !bytes.Equal(got, want) || !bytes.Equal(gi.receiver, wi.receiver) || gi.id != wi.id || (gerr == nil) != (werr == nil) {
						t.Fatalf("%s variant %d accept=%v: responseMessage = %s %+v %v\nwant %s %+v %v", name, i, accept, got, gi, gerr, want, wi, werr)
					}
					if i == 0 && gerr != nil {
						t.Fatalf("%s: no response: %v", name, gerr)
					}
					if gerr == nil {
						built++
					}
				}
			}
		}
	}
	t.Logf("%d response messages compared", built)
}

// checkResponseTo holds responseTo, with the types readMessage read, to
// responseToRef on one body that readMessage accepts: the same bytes, id,
// receiver and error.
func checkResponseTo(t *testing.T, body []byte, target string) {
	t.Helper()
	req := request{body: body, target: target}
	if readMessage(&req) != nil {
		return
	}
	for _, accept := range []bool{true, false} {
		got, gi, gerr := responseTo(req.msg, req.types, req.mh, accept, "outside <our> catchment & area", t0)
		want, wi, werr := responseToRef(req.msg, req.mh, accept, "outside <our> catchment & area", t0)
		if !bytes.Equal(got, want) || !bytes.Equal(gi.receiver, wi.receiver) || gi.id != wi.id || (gerr == nil) != (werr == nil) ||
			(gerr != nil && gerr.Error() != werr.Error()) {
			t.Fatalf("accept=%v: responseTo = %s %+v %v\nwant %s %+v %v\nbody %.300q", accept, got, gi, gerr, want, wi, werr, body)
		}
	}
}

// FuzzResponseToEquiv holds the response message to responseToRef's for
// any body that readMessage accepts.
func FuzzResponseToEquiv(f *testing.F) {
	golden := goldenBundles(f)
	for _, name := range slices.Sorted(maps.Keys(golden))[:2] {
		doc := golden[name]
		target := goldenTarget(f, doc)
		for _, b := range readMessageVariants(compactJSON(f, doc)) {
			f.Add(b, target)
		}
	}
	f.Add([]byte(minimalResponseMessage), minimalTarget)
	f.Fuzz(func(t *testing.T, body []byte, target string) {
		checkResponseTo(t, body, target)
	})
}

// minimalResponseMessage is the smallest message that readMessage accepts
// and that can be answered: a seed the fuzzer can mutate quickly.
const minimalResponseMessage = `{"resourceType":"Bundle","id":"b","type":"message","entry":[` +
	`{"fullUrl":"h","resource":{"resourceType":"MessageHeader","id":"m","eventCoding":{"system":"https://fhir.nhs.uk/CodeSystem/message-events-bars","code":"servicerequest-request"},` +
	`"focus":[{"reference":"s"}],"destination":[{"endpoint":"T","receiver":{"reference":"o"}}],"sender":{"reference":"u"},"source":{"endpoint":"e"}}},` +
	`{"fullUrl":"s","resource":{"resourceType":"ServiceRequest","id":"s1","status":"active","identifier":[{"value":"<&>"}],"intent":"order","category":[],"code":{"text":"t"},"subject":{"reference":"p"}}},` +
	`{"fullUrl":"p","resource":{"resourceType":"Patient","id":"p1","name":[{"text":"n"}]}},` +
	`{"fullUrl":"o","resource":{"resourceType":"Organization","name":"r"}},` +
	`{"fullUrl":"u","resource":{"resourceType":"Organization","name":"s"}}]}`

// TestResponseWalksGolden: the response message reads the golden
// messages' ServiceRequest and Patient with the walk, not by decoding them.
func TestResponseWalksGolden(t *testing.T) {
	for name, doc := range goldenBundles(t) {
		req := request{body: compactJSON(t, doc), target: goldenTarget(t, doc)}
		if p := readMessage(&req); p != nil {
			t.Fatalf("%s: %s", name, p.msg)
		}
		walked := map[string]bool{}
		for i, e := range req.msg.Entry {
			switch req.types[i] {
			case "ServiceRequest":
				var v [6][]byte
				walked["ServiceRequest"] = topFields(e.Resource, serviceRequestElements, v[:]) && v[0] != nil && v[5] != nil
			case "Patient":
				var v [1][]byte
				walked["Patient"] = topFields(e.Resource, []string{"id"}, v[:]) && v[0] != nil
			}
		}
		if !walked["ServiceRequest"] || !walked["Patient"] {
			t.Errorf("%s: walked %v", name, walked)
		}
	}
}
