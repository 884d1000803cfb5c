package fhirvalidator

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestRulesRoundTrip writes the full definitions in the rule format, reads
// them back and writes them again: the two texts must be identical, and the
// reloaded validator must give the same results on every case.
func TestRulesRoundTrip(t *testing.T) {
	full := fullValidator(t)
	var a, b bytes.Buffer
	if err := full.WriteRules(&a); err != nil {
		t.Fatal(err)
	}
	again, err := parseRules(a.Bytes(), "rules")
	if err != nil {
		t.Fatal(err)
	}
	if err := again.WriteRules(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("rules written from a reloaded rules file differ from the original")
	}
	for _, tc := range readCases(t) {
		data, err := os.ReadFile(filepath.Join("testdata", "validator", "cases", tc.File))
		if err != nil {
			t.Fatal(err)
		}
		opts := Options{Profiles: tc.Profiles}
		if x, y := full.ValidateWith(data, opts).String(), again.ValidateWith(data, opts).String(); x != y {
			t.Errorf("%s: definitions:\n%s\nrules:\n%s", tc.Name, x, y)
		}
	}
}

// TestElementPaths checks what the rule format relies on: an element's path
// is its id without slice names.
func TestElementPaths(t *testing.T) {
	for _, sd := range fullValidator(t).defs {
		for _, e := range sd.elems {
			if pathOf(e.id) != e.path {
				t.Errorf("%s: element %s has path %s", sd.url, e.id, e.path)
			}
		}
	}
}

// TestOpenRulesFile loads a rules file through Open, as the gateway does
// with a cache.
func TestOpenRulesFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "builtin.rules")
	if err := os.WriteFile(file, builtinRules, 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := Open(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(v.ResourceTypes(), ","); got != strings.Join(sortedCopy(builtinResources), ",") {
		t.Errorf("resource types %s", got)
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// TestBadRules checks that malformed rule files are refused with a message
// naming the line, never half-loaded.
func TestBadRules(t *testing.T) {
	var cases []struct {
		Name  string `json:"name"`
		Rules string `json:"rules"`
		Error string `json:"error"`
	}
	data, err := os.ReadFile(filepath.Join("testdata", "validator", "bad-rules.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			_, err := parseRules([]byte(tc.Rules), "rules")
			if err == nil || !strings.Contains(err.Error(), tc.Error) {
				t.Errorf("got %v, want an error containing %q", err, tc.Error)
			}
		})
	}
}

// TestLoadPackageFolder loads definitions laid out as a FHIR NPM package
// (package/package.json and one resource per file) next to R4.
func TestLoadPackageFolder(t *testing.T) {
	shared := sharedDir(t)
	pkg := filepath.Join(t.TempDir(), "package")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pkg, "package.json"), []byte(`{"name":"uk.core.test","version":"0.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(shared, "fhir", "ukcore", "UKCore-Patient.json")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pkg, "StructureDefinition-UKCore-Patient.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := Load(filepath.Join(shared, "fhir", "r4"), filepath.Dir(pkg))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("testdata", "validator", "cases", "slice-two-nhs-numbers.json"))
	if err != nil {
		t.Fatal(err)
	}
	r := v.Validate(doc)
	if r.OK() || r.Errors()[0].Rule != "slice" {
		t.Errorf("the profile from the package folder was not applied:\n%s", r)
	}
}
