package mappings

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// The gateway publishes the definitions of what it invents (the decision
// extension and the data-category code system) under docs/fhir; these tests
// keep the mapping and the published definitions in step.

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestDataCategoryCodeSystem(t *testing.T) {
	var cs struct {
		URL     string `json:"url"`
		Concept []struct {
			Code    string `json:"code"`
			Display string `json:"display"`
		} `json:"concept"`
	}
	readJSON(t, "../docs/fhir/CodeSystem-data-category.json", &cs)
	if cs.URL != CodeSystemDataCategory {
		t.Errorf("url %s, want %s", cs.URL, CodeSystemDataCategory)
	}
	published := map[string]string{}
	for _, c := range cs.Concept {
		published[c.Code] = c.Display
	}
	for code, display := range categoryDisplays {
		t.Run(code, func(t *testing.T) {
			if published[code] != display {
				t.Errorf("published display %q, mapping uses %q", published[code], display)
			}
		})
	}
	if len(published) != len(categoryDisplays) {
		t.Errorf("published %d codes, mapping knows %d", len(published), len(categoryDisplays))
	}
}

// TestDecisionExtensionDefinition checks every emitted sub-extension against
// the published StructureDefinition: it is a declared slice, its value has
// the declared type, and every required slice is present.
func TestDecisionExtensionDefinition(t *testing.T) {
	var sd struct {
		URL      string `json:"url"`
		Snapshot struct {
			Element []struct {
				ID   string `json:"id"`
				Min  int    `json:"min"`
				Type []struct {
					Code string `json:"code"`
				} `json:"type"`
			} `json:"element"`
		} `json:"snapshot"`
	}
	readJSON(t, "../docs/fhir/StructureDefinition-sharing-decision.json", &sd)
	if sd.URL != ExtensionSharingDecision {
		t.Fatalf("url %s, want %s", sd.URL, ExtensionSharingDecision)
	}
	valueType, required := map[string]string{}, map[string]bool{}
	for _, e := range sd.Snapshot.Element {
		rest, ok := strings.CutPrefix(e.ID, "Extension.extension:")
		if !ok {
			continue
		}
		name, field, _ := strings.Cut(rest, ".")
		switch {
		case field == "" && e.Min > 0:
			required[name] = true
		case field == "value[x]" && len(e.Type) == 1:
			valueType[name] = e.Type[0].Code
		}
	}
	for _, name := range allowCases(t) {
		t.Run(name, func(t *testing.T) {
			sr := only(t, message(t, input(t, name)), "ServiceRequest")
			seen := map[string]bool{}
			for _, e := range sr["extension"].([]any) {
				ext := e.(map[string]any)
				if ext["url"] != ExtensionSharingDecision {
					continue
				}
				for _, s := range ext["extension"].([]any) {
					sub := s.(map[string]any)
					url := sub["url"].(string)
					seen[url] = true
					want, ok := valueType[url]
					if !ok {
						t.Errorf("sub-extension %q is not in the definition", url)
						continue
					}
					key := "value" + strings.ToUpper(want[:1]) + want[1:]
					if _, ok := sub[key]; !ok || len(sub) != 2 {
						t.Errorf("sub-extension %q: want only url and %s, got %v", url, key, sub)
					}
				}
			}
			for r := range required {
				if !seen[r] {
					t.Errorf("required sub-extension %q missing", r)
				}
			}
		})
	}
}

// TestDocNeedsTable keeps the copy of the needs table in docs/fhir-mapping.md
// equal to needs.csv, which is the source.
func TestDocNeedsTable(t *testing.T) {
	data, err := os.ReadFile("../docs/fhir-mapping.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 6 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		need := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if _, known := needCodes[need]; known {
			rows[need] = []string{strings.TrimSpace(cells[2]), strings.TrimSpace(cells[3]), strings.TrimSpace(cells[4])}
		}
	}
	for _, nc := range NeedCodes() {
		t.Run(nc.Need, func(t *testing.T) {
			want := []string{nc.Code, nc.Display, nc.Notes}
			if nc.Code == "" {
				want = []string{"—", "(text only)", nc.Notes}
			}
			got, ok := rows[nc.Need]
			if !ok {
				t.Fatal("no row in docs/fhir-mapping.md")
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("column %d: doc %q, needs.csv %q", i+2, got[i], want[i])
				}
			}
		})
	}
}
