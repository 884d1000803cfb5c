package mappings

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway"
)

// m02Case is one row of testdata/m02.json: a case (and its decision
// fixture) changed by JSON merge patches, and checks at fixed places of the
// serialised Bundle (docs/fhir-mapping.md, "What a share without consent
// carries").
type m02Case struct {
	Name     string          `json:"name"`
	Case     string          `json:"case"`
	Record   json.RawMessage `json:"record"`
	Decision json.RawMessage `json:"decision"`
	Checks   []struct {
		Place  string   `json:"place"`
		Has    []string `json:"has"`
		Lacks  []string `json:"lacks"`
		Absent bool     `json:"absent"`
	} `json:"checks"`
}

// TestM02 proves, for each override ground and for the consent route, that
// the Bundle carries what M-02 names where a clinician reads it first, and
// that what must not travel (an unconsented trusted contact, a safe-contact
// warning with nothing to warn about) does not.
func TestM02(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "m02.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []m02Case
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			in := cloneInput(t, input(t, tc.Case))
			var rec gateway.CaseRecord
			var d gateway.Decision
			patch(t, in.Record, tc.Record, &rec)
			patch(t, in.Decision, tc.Decision, &d)
			in.Record, in.Decision = &rec, &d
			bundle := message(t, in)
			var doc any
			if err := json.Unmarshal(bundle, &doc); err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.Checks {
				got := at(doc, c.Place)
				text := strings.Join(got, "\n")
				switch {
				case c.Absent && len(got) > 0:
					t.Errorf("%s: want absent, got %q", c.Place, text)
				case !c.Absent && len(got) == 0:
					t.Errorf("%s: nothing there", c.Place)
				}
				for _, s := range c.Has {
					if !strings.Contains(text, s) {
						t.Errorf("%s: want %q in %q", c.Place, s, text)
					}
				}
				for _, s := range c.Lacks {
					if strings.Contains(text, s) {
						t.Errorf("%s: %q must not be there: %q", c.Place, s, text)
					}
				}
			}
			// The Flag, when there is one, is the ServiceRequest's supporting
			// information, so a receiver that follows references finds it.
			flags := at(doc, "Flag.id")
			refs := strings.Join(at(doc, "ServiceRequest.supportingInfo[*].reference"), " ")
			for _, id := range flags {
				if !strings.Contains(refs, "urn:uuid:"+id) {
					t.Errorf("Flag %s is not in ServiceRequest.supportingInfo (%s)", id, refs)
				}
			}
		})
	}
}

// patch applies a JSON merge patch (RFC 7386) to from, decoding into to.
func patch(t *testing.T, from any, p json.RawMessage, to any) {
	t.Helper()
	var doc, pv any
	roundTrip(t, from, &doc)
	if len(p) > 0 {
		if err := json.Unmarshal(p, &pv); err != nil {
			t.Fatal(err)
		}
		doc = mergePatch(doc, pv)
	}
	roundTrip(t, doc, to)
}

func mergePatch(doc, p any) any {
	pm, ok := p.(map[string]any)
	if !ok {
		return p
	}
	dm, ok := doc.(map[string]any)
	if !ok {
		dm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(dm, k)
		} else {
			dm[k] = mergePatch(dm[k], v)
		}
	}
	return dm
}

// at reads a place in a Bundle: a resource type, then members, each with an
// optional [n] or [*] ("ServiceRequest.note[0].text"). Every resource of the
// type is read; strings come back as they are, anything else as its JSON.
func at(bundle any, place string) []string {
	parts := strings.Split(place, ".")
	var nodes []any
	entries, _ := bundle.(map[string]any)["entry"].([]any)
	for _, e := range entries {
		r := e.(map[string]any)["resource"].(map[string]any)
		if r["resourceType"] == parts[0] {
			nodes = append(nodes, r)
		}
	}
	for _, part := range parts[1:] {
		key, index, _ := strings.Cut(strings.TrimSuffix(part, "]"), "[")
		var next []any
		for _, n := range nodes {
			v, ok := n.(map[string]any)[key]
			if !ok {
				continue
			}
			arr, isArr := v.([]any)
			switch {
			case index == "*" && isArr:
				next = append(next, arr...)
			case index != "" && isArr:
				if i, err := strconv.Atoi(index); err == nil && i < len(arr) {
					next = append(next, arr[i])
				}
			case index == "":
				next = append(next, v)
			}
		}
		nodes = next
	}
	var out []string
	for _, n := range nodes {
		if s, ok := n.(string); ok {
			out = append(out, s)
		} else {
			b, _ := json.Marshal(n)
			out = append(out, string(b))
		}
	}
	return out
}
