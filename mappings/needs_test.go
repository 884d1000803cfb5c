package mappings

import (
	"strings"
	"testing"

	"github.com/student-mh-referrals/gateway/gateway"
)

// TestNeedsTableCoversVocabulary: every need a case record may carry has a
// row that a clinician has reviewed, so that no need is silently dropped.
func TestNeedsTableCoversVocabulary(t *testing.T) {
	for _, need := range gateway.NeedCodes {
		t.Run(need, func(t *testing.T) {
			row, ok := needCodes[need]
			if !ok {
				t.Fatalf("needs.csv has no row for %q", need)
			}
			if !strings.Contains(row.Notes, "For clinical review") {
				t.Errorf("notes of %q do not say the code is for clinical review", need)
			}
		})
	}
	if got := len(NeedCodes()); got != len(gateway.NeedCodes) {
		t.Errorf("NeedCodes() has %d rows, vocabulary %d", got, len(gateway.NeedCodes))
	}
}

func TestLoadNeedsRejects(t *testing.T) {
	const header = "need,snomed_code,snomed_display,notes\n"
	tests := map[string]string{
		"wrong header":         "need,code,display,notes\n",
		"unknown need":         header + "sadness,366979004,Depressed mood,x\n",
		"duplicate need":       header + "anxiety,48694002,Anxiety,x\nanxiety,48694002,Anxiety,x\n",
		"not a concept id":     header + "anxiety,ABC,Anxiety,x\n",
		"code without display": header + "anxiety,48694002,,x\n",
		"no notes":             header + "anxiety,48694002,Anxiety,\n",
		"wrong column count":   header + "anxiety,48694002,Anxiety\n",
	}
	for name, csv := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := loadNeeds([]byte(csv)); err == nil {
				t.Error("accepted")
			}
		})
	}
	t.Run("text-only row", func(t *testing.T) {
		m, err := loadNeeds([]byte(header + "trauma,,,Text only. For clinical review.\n"))
		if err != nil || m["trauma"].Code != "" {
			t.Errorf("%v %+v", err, m)
		}
	})
}

// TestReasonCodes: coded needs carry their SNOMED CT finding and the
// student's words; text-only needs carry words alone.
func TestReasonCodes(t *testing.T) {
	got := reasonCodes([]gateway.Need{
		{Code: "self-harm", Text: "in my words"},
		{Code: "trauma", Text: "a crash in April"},
		{Code: "other"},
		{Code: "anxiety"},
	})
	if len(got) != 4 {
		t.Fatalf("%d reason codes", len(got))
	}
	if c := got[0].Coding; len(c) != 1 || *c[0].Code != "248062006" || *c[0].System != "http://snomed.info/sct" || *got[0].Text != "in my words" {
		t.Errorf("self-harm: %+v", got[0])
	}
	if got[1].Coding != nil || *got[1].Text != "a crash in April" {
		t.Errorf("trauma: %+v", got[1])
	}
	if got[2].Coding != nil || *got[2].Text != "Other presenting need" {
		t.Errorf("other: %+v", got[2])
	}
	if got[3].Text != nil || *got[3].Coding[0].Code != "48694002" {
		t.Errorf("anxiety: %+v", got[3])
	}
}
