package bundlescan

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestScan(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		want   Bundle
		wantOK bool
	}{
		{name: "plain", wantOK: true,
			body: `{"resourceType":"Bundle","id":"b","type":"message","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"ServiceRequest","status":"active","x":{"status":"other"}}},{"resource":{"resourceType":"Patient"}}]}`,
			want: Bundle{ResourceType: "Bundle", ID: "b", Type: "message", Entries: []Entry{
				{FullURL: "urn:uuid:1", HasFullURL: true, Resource: []byte(`{"resourceType":"ServiceRequest","status":"active","x":{"status":"other"}}`),
					ResourceType: Field{"ServiceRequest", true}, Status: Field{"active", true}},
				{Resource: []byte(`{"resourceType":"Patient"}`), ResourceType: Field{"Patient", true}, Status: Field{"", true}},
			}}},
		{name: "no entry element", body: `{"resourceType":"Bundle"}`, wantOK: true, want: Bundle{ResourceType: "Bundle"}},
		{name: "empty entry list", body: `{"entry":[]}`, wantOK: true, want: Bundle{Entries: []Entry{}}},
		{name: "escaped fullUrl value is decoded", body: `{"entry":[{"fullUrl":"urn:\u0041","resource":{}}]}`, wantOK: true,
			want: Bundle{Entries: []Entry{{FullURL: "urn:A", HasFullURL: true, Resource: []byte(`{}`), ResourceType: Field{"", true}, Status: Field{"", true}}}}},
		{name: "resource's status not a string is not known", body: `{"entry":[{"resource":{"status":1,"resourceType":"\u0050atient"}}]}`, wantOK: true,
			want: Bundle{Entries: []Entry{{Resource: []byte(`{"status":1,"resourceType":"\u0050atient"}`), ResourceType: Field{"Patient", true}, Status: Field{"", false}}}}},
		{name: "escaped element name", body: `{"\u0065ntry":[]}`},
		{name: "recased element name", body: `{"Entry":[]}`},
		{name: "repeated element", body: `{"id":"a","id":"b"}`},
		{name: "id not a string", body: `{"id":1}`},
		{name: "entry not a list", body: `{"entry":{}}`},
		{name: "entry item not an object", body: `{"entry":[1]}`},
		{name: "entry without a resource", body: `{"entry":[{"fullUrl":"x"}]}`},
		{name: "resource not an object", body: `{"entry":[{"resource":[]}]}`},
		{name: "not an object", body: `[]`},
		{name: "invalid JSON", body: `{"entry":[}`},
		{name: "trailing data", body: `{} {}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Scan([]byte(tt.body))
			if ok != tt.wantOK || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Scan = %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantOK)
			}
			for _, e := range got.Entries {
				if cap(e.Resource) != len(e.Resource) {
					t.Errorf("a resource's capacity runs past it: appending would write over the body")
				}
			}
		})
	}
}

// TestScanGolden: every message the gateway builds is plain enough for the
// walk, so the drain never takes the slow path.
func TestScanGolden(t *testing.T) {
	files, _ := filepath.Glob("../../mappings/testdata/golden/*.bundle.json")
	if len(files) == 0 {
		t.Fatal("no golden Bundles")
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b, ok := Scan(body)
		if !ok || b.Type != "message" || len(b.Entries) < 5 {
			t.Errorf("%s: ok %v, type %q, %d entries", filepath.Base(f), ok, b.Type, len(b.Entries))
		}
		for _, e := range b.Entries {
			if !e.HasFullURL || !e.ResourceType.Known || e.ResourceType.Value == "" {
				t.Errorf("%s: entry %q not read plainly", filepath.Base(f), e.FullURL)
			}
		}
	}
}
