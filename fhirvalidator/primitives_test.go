package fhirvalidator

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestPrimitives checks the format of every primitive type against the
// table in testdata/validator/primitives.json: a type, a JSON value, and
// whether R4 accepts it.
func TestPrimitives(t *testing.T) {
	var rows []struct {
		Type  string          `json:"type"`
		Value json.RawMessage `json:"value"`
		Valid bool            `json:"valid"`
		Why   string          `json:"why,omitempty"`
	}
	data, err := os.ReadFile(filepath.Join("testdata", "validator", "primitives.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rows); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, row := range rows {
		seen[row.Type] = true
		t.Run(row.Type+" "+string(row.Value), func(t *testing.T) {
			want, ok := primitiveJSON[row.Type]
			if !ok {
				t.Fatalf("%s is not a primitive type", row.Type)
			}
			n, _, err := parseJSON(row.Value)
			if err != nil {
				t.Fatal(err)
			}
			msg := checkPrimitive(row.Type, want, n)
			if (msg == "") != row.Valid {
				t.Errorf("valid=%v, want %v (%s): %q", msg == "", row.Valid, row.Why, msg)
			}
		})
	}
	for typ := range primitiveJSON {
		if !seen[typ] && typ != "integer64" {
			t.Errorf("primitives.json has no row for %s", typ)
		}
	}
}

// FuzzValidate feeds arbitrary bytes to both rule sets: validation must
// never panic, and a document it calls valid must have no error issue.
func FuzzValidate(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "validator", "cases", "*.json"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"resourceType":"Bundle","type":"message","entry":[{"fullUrl":"a","resource":{"resourceType":"Patient","_name":[null]}}]}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := Builtin().Validate(data)
		if r.OK() != (len(r.Errors()) == 0) {
			t.Fatal("OK disagrees with Errors")
		}
		for _, is := range r.Issues {
			if is.Severity != SeverityError && is.Severity != SeverityWarning {
				t.Fatalf("bad severity %q", is.Severity)
			}
			if is.Rule == "" || is.Message == "" {
				t.Fatalf("issue without rule or message: %+v", is)
			}
		}
	})
}
