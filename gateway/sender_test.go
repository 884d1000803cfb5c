package gateway

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// goldenBundles are the mapping's golden Bundles: what the gateway sends.
func goldenBundles(t testing.TB) [][]byte {
	t.Helper()
	files, err := filepath.Glob("../mappings/testdata/golden/*.bundle.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden bundles (%v)", err)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// senderVariants are bodies that the walk must leave to the decoder, or
// read as the decoder does: cased, escaped and repeated element names,
// elements of other types, references by id, broken JSON.
func senderVariants(b []byte) [][]byte {
	r := func(old, new string) []byte { return bytes.Replace(b, []byte(old), []byte(new), 1) }
	all := func(old, new string) []byte { return bytes.ReplaceAll(b, []byte(old), []byte(new)) }
	return [][]byte{
		b,
		r(`"entry"`, `"Entry"`),
		r(`"entry"`, `"entr\u0079"`),
		r(`"entry": [`, `"entry": [], "entry": [`),
		r(`"entry": [`, `"entry": null, "x": [`),
		r(`"fullUrl"`, `"fullURL"`),
		r(`"fullUrl"`, `"fullUrl": 1, "x"`),
		r(`"fullUrl": "`, `"fullUrl": "\u0075`),
		r(`"fullUrl": "`, `"fullUrl": "é`),
		r(`"resource"`, `"Resource"`),
		r(`"resource": {`, `"resource": null, "x": {`),
		r(`"resource": {`, `"request": {"method": "POST"}, "resource": {`),
		all(`"resourceType": "Organization"`, `"resourceType": "Organisation"`),
		all(`"name"`, `"Name"`),
		all(`"identifier"`, `"identifier": 1, "x"`),
		all(`"sender": {"reference": "urn:uuid:`, `"sender": {"reference": "Organization/`),
		all(`"fullUrl": "urn:uuid:`, `"fullUrl": "urn:uuid:x`),
		r(`"sender"`, `"Sender"`),
		b[:len(b)-2],
		append(append([]byte{}, b...), '}'),
		[]byte(`[]`), []byte(`null`), []byte(`{}`), []byte(`{"entry": []}`), []byte(`{"entry": [1]}`),
		[]byte(`{"entry": [{"fullUrl": "a", "resource": {"resourceType": "MessageHeader", "sender": {"reference": "a"}}}]}`),
		[]byte(`{"entry": [{"fullUrl": "a", "resource": {"resourceType": "MessageHeader", "sender": {"reference": "b"}}}, {"fullUrl": "b", "resource": {"resourceType": "Organization"}}, {"fullUrl": "b", "resource": {"resourceType": "Organization", "name": "n"}}]}`),
	}
}

// TestSenderMatchesDecode holds the walk to the whole-Bundle decode it
// replaced, on the golden Bundles and variants of them.
func TestSenderMatchesDecode(t *testing.T) {
	for i, g := range goldenBundles(t) {
		for j, b := range senderVariants(g) {
			ids, name, ok := sender(b)
			wids, wname, wok := senderDecode(b)
			if !reflect.DeepEqual(ids, wids) || name != wname || ok != wok {
				t.Errorf("bundle %d variant %d: sender = %v %q %v, decode = %v %q %v", i, j, ids, name, ok, wids, wname, wok)
			}
			if j == 0 && (!ok || len(ids) == 0 || name == "") {
				t.Errorf("bundle %d: no sender found (%v %q %v)", i, ids, name, ok)
			}
			if got, want := OrganisationHeader(b, "10007164"), organisationHeaderDecode(b, "10007164"); got != want {
				t.Errorf("bundle %d variant %d: header %s, want %s", i, j, got, want)
			}
		}
	}
}

// organisationHeaderDecode is OrganisationHeader as it was, with the
// whole-Bundle decode.
func organisationHeaderDecode(bundle []byte, institution string) string {
	org := map[string]any{"resourceType": "Organization"}
	if ids, name, ok := senderDecode(bundle); ok {
		if len(ids) > 0 {
			org["identifier"] = ids
		}
		if name != "" {
			org["name"] = name
		}
	} else {
		org["identifier"] = []any{map[string]string{"system": UKPRNSystem, "value": institution}}
	}
	return encode(org)
}

func FuzzSender(f *testing.F) {
	for _, g := range goldenBundles(f)[:2] {
		for _, b := range senderVariants(g) {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, name, ok := sender(b)
		wids, wname, wok := senderDecode(b)
		if !reflect.DeepEqual(ids, wids) || name != wname || ok != wok {
			t.Fatalf("sender = %v %q %v, decode = %v %q %v", ids, name, ok, wids, wname, wok)
		}
	})
}

func BenchmarkOrganisationHeader(b *testing.B) {
	bundle := goldenBundles(b)[0]
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			OrganisationHeader(bundle, "10007164")
		}
	})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			organisationHeaderDecode(bundle, "10007164")
		}
	})
}
