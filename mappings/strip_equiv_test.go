package mappings

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway"
)

// stripByJSON is the definition of strip-fields: encode the record, delete
// the paths from the JSON tree, decode. stripFields does the same on a
// typed copy, ten times faster; TestStripMatchesJSON holds it to this.
func stripByJSON(t *testing.T, rec *gateway.CaseRecord, paths []string) *gateway.CaseRecord {
	t.Helper()
	data, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		segs, err := parsePath(p)
		if err != nil {
			t.Fatal(err)
		}
		removePath(tree, segs)
	}
	if data, err = json.Marshal(tree); err != nil {
		t.Fatal(err)
	}
	out := &gateway.CaseRecord{}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// removePath deletes what segs name below a JSON tree node. Arrays keep
// their length when something inside an element is removed, and lose the
// element when the path ends at it.
func removePath(node any, segs []pathSeg) {
	obj, ok := node.(map[string]any)
	if !ok || len(segs) == 0 {
		return
	}
	seg, rest := segs[0], segs[1:]
	child, ok := obj[seg.key]
	if !ok {
		return
	}
	if len(seg.indexes) == 0 {
		if len(rest) == 0 {
			delete(obj, seg.key)
			return
		}
		removePath(child, rest)
		return
	}
	obj[seg.key] = removeInArray(child, seg.indexes, rest)
}

func removeInArray(node any, indexes []int, rest []pathSeg) any {
	arr, ok := node.([]any)
	if !ok {
		return node
	}
	ix, more := indexes[0], indexes[1:]
	last := len(more) == 0 && len(rest) == 0
	var out []any
	for i, el := range arr {
		if ix != -1 && i != ix {
			out = append(out, el)
			continue
		}
		if last {
			continue
		}
		if len(more) > 0 {
			out = append(out, removeInArray(el, more, rest))
			continue
		}
		removePath(el, rest)
		out = append(out, el)
	}
	if out == nil {
		out = []any{}
	}
	return out
}

// TestStripMatchesJSON strips sets of paths of every kind (leaves, whole
// objects, array elements by index and by wildcard, members inside
// elements, paths through arrays without an index, paths that name
// nothing) from every example case, and checks that the typed strip gives
// exactly the record of the JSON definition, leaving its input unchanged.
func TestStripMatchesJSON(t *testing.T) {
	pathSets := [][]string{
		{"referral.riskAssessment.level", "referral.riskAssessment.score"},
		{"referral.riskAssessment"},
		{"$.student.contact.phone", "student.address.lines[0]"},
		{"student.name.given[*]"},
		{"referral.presentingNeeds[*].text"},
		{"referral.presentingNeeds[1]"},
		{"referral.presentingNeeds[0]", "referral.presentingNeeds[0]"},
		{"referral.presentingNeeds[7].text", "referral.presentingNeeds[*].nothing"},
		{"referral.presentingNeeds.text", "referral.presentingNeeds[0][0]"},
		{"consent.dataCategories[*]", "consent.recipients[0]"},
		{"student.trustedContact", "student.gpPractice.name", "referral.safetyPlan.summary"},
		{"override.consentSought.at", "override.decidedBy", "override.lawfulBasis.article9"},
		{"referral.underSecondaryCare", "consent.capacity", "referral.currentSupport[*]"},
		{"not.there", "student.nothing.deeper", "institution[0]", "caseId.x"},
		{"student", "referral.summary"},
	}
	files, err := filepath.Glob(filepath.Join("..", "testdata", "cases", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases (%v)", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		for _, paths := range pathSets {
			t.Run(name+"/"+strings.Join(paths, ","), func(t *testing.T) {
				rec := loadCase(t, name)
				before, _ := json.Marshal(rec)
				want := stripByJSON(t, rec, paths)
				got, err := stripFields(rec, []gateway.Obligation{{Type: gateway.ObligationStripFields, Fields: paths}})
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					g, _ := json.Marshal(got)
					w, _ := json.Marshal(want)
					t.Errorf("typed strip differs from the JSON definition:\n got %s\nwant %s", g, w)
				}
				if after, _ := json.Marshal(rec); !bytes.Equal(before, after) {
					t.Error("stripping changed the input record")
				}
			})
		}
	}
}
