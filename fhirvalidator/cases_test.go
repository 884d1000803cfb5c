package fhirvalidator

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validatorCase is one entry of testdata/validator/cases.json: an input
// document, the check it exercises (the rule of an expected error, or ""
// for a valid document), and the validators it runs under. Its full result
// is compared with testdata/validator/golden/<name>.json (-update rewrites).
type validatorCase struct {
	Name       string   `json:"name"`
	File       string   `json:"file"`
	Check      string   `json:"check"`
	Profiles   []string `json:"profiles,omitempty"`
	Validators []string `json:"validators,omitempty"`
	Note       string   `json:"note,omitempty"`
}

func readCases(t testing.TB) []validatorCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "validator", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []validatorCase
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cases); err != nil {
		t.Fatalf("cases.json: %v", err)
	}
	return cases
}

// canonical renders v as the golden files hold it.
func canonical(t testing.TB, v any) []byte {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(data, '\n')
}

// TestCases validates every case with the built-in rules and, when
// ../shared is there, with the full definitions: both must give the golden
// result, so the two rule sets agree on every case they share.
func TestCases(t *testing.T) {
	cases := readCases(t)
	checks := map[string]bool{}
	for _, tc := range cases {
		checks[tc.Check] = true
	}
	// every kind of check the validator makes has at least one case
	for _, kind := range []string{"", "json", "type", "unknown-element", "resource-type", "cardinality", "choice",
		"format", "binding", "fixed", "pattern", "slice", "reference-type", "gw-ref-resolves", "gw-fullurl-id",
		"gw-nhs-number", "profile", "bdl-1", "bdl-2", "bdl-3", "bdl-5", "bdl-7", "bdl-8", "bdl-9", "bdl-12",
		"prr-1", "ppc-1", "ppc-2", "pat-1", "dom-2", "dom-3", "ref-1", "per-1", "ext-1", "cpt-2", "org-1", "cpl-3", "tim-9"} {
		if !checks[kind] {
			t.Errorf("cases.json has no case for check %q", kind)
		}
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "validator", "cases", tc.File))
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "validator", "golden", tc.Name+".json")
			validators := tc.Validators
			if len(validators) == 0 {
				validators = []string{"builtin", "full"}
			}
			for i, which := range validators {
				var v *Validator
				switch which {
				case "builtin":
					v = Builtin()
				case "full":
					if os.Getenv("CI") != "true" {
						if _, err := os.Stat(filepath.Join(moduleDir(t), "..", "shared", "fhir", "r4")); err != nil {
							t.Logf("full definitions not available; %s checked with the built-in rules only", tc.Name)
							continue
						}
					}
					v = fullValidator(t)
				default:
					t.Fatalf("unknown validator %q", which)
				}
				r := v.ValidateWith(data, Options{Profiles: tc.Profiles})
				if tc.Check == "" && !r.OK() {
					t.Errorf("%s: want valid, got:\n%s", which, r)
				}
				if tc.Check != "" {
					found := false
					for _, is := range r.Errors() {
						found = found || is.Rule == tc.Check
					}
					if !found {
						t.Errorf("%s: want an error of rule %s, got:\n%s", which, tc.Check, r)
					}
				}
				got := canonical(t, r)
				if *update && i == 0 {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s: result differs from %s:\ngot:\n%s\nwant:\n%s", which, golden, got, want)
				}
			}
		})
	}
}

// TestBuiltinAgreesWithFull runs fhircheck's broken example sets through the
// built-in rules and the full definitions: for every file the built-in rules
// cover, both must report exactly the same issues.
func TestBuiltinAgreesWithFull(t *testing.T) {
	shared := sharedDir(t)
	full := fullValidator(t)
	compared := 0
	for _, s := range agreementSets {
		if !strings.HasPrefix(s.name, "broken") || s.profiles == "uscore" {
			continue // the built-in rules know no US Core
		}
		// the profiles both know (the built-in rules have no UKCore-Encounter)
		var opts Options
		for _, u := range profileURLs(t, profileFiles(t, shared, s.profiles)) {
			if Builtin().byURL[u] != nil {
				opts.Profiles = append(opts.Profiles, u)
			}
		}
		for _, f := range setFiles(t, shared, s) {
			t.Run(s.name+"/"+filepath.Base(f), func(t *testing.T) {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				b := Builtin().ValidateWith(data, opts)
				for _, is := range b.Issues {
					if is.Rule == "resource-type" && strings.Contains(is.Message, "not covered") {
						t.Skipf("not covered by the built-in rules: %s", is.Message)
					}
				}
				fr := full.ValidateWith(data, opts)
				if b.String() != fr.String() {
					t.Errorf("built-in rules:\n%s\nfull definitions:\n%s", b, fr)
				}
				compared++
			})
		}
	}
	if compared < 30 {
		t.Errorf("only %d files compared", compared)
	}
}

// TestMappingGoldens validates the golden Bundles of package mappings (the
// gateway's actual output) with the built-in rules, as the output gate does.
func TestMappingGoldens(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(moduleDir(t), "mappings", "testdata", "golden", "*.bundle.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Skip("no golden Bundles in mappings/testdata/golden yet")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := Builtin().ValidateFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Issues) > 0 {
				t.Errorf("issues:\n%s", r)
			}
		})
	}
}
