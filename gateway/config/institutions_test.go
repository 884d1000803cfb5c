package config

import (
	"strings"
	"testing"
)

// TestExampleInstitutions: every university of the demo case records has a
// wellbeing contact for its students' notices.
func TestExampleInstitutions(t *testing.T) {
	reg, err := mustParse(t, string(Example)).InstitutionRegistry()
	if err != nil {
		t.Fatal(err)
	}
	for _, ukprn := range []string{"10007164", "10006842", "10003957", "10007798", "10007784", "10007157"} {
		p, ok := reg.Lookup(ukprn)
		if !ok || p.Name == "" || p.WellbeingContact.Name == "" {
			t.Errorf("institution %s: %+v", ukprn, p)
		}
	}
}

// TestInstitutionsChecked: a configuration whose institutions the domain
// refuses (gateway.NewInstitutions, tested case by case there) does not load.
func TestInstitutionsChecked(t *testing.T) {
	y := strings.Replace(string(Example), `  - ukprn: "10006842"`, `  - ukprn: "10007164"`, 1)
	if _, err := Parse([]byte(y)); err == nil || !strings.Contains(err.Error(), "institutions[1] (10007164): UKPRN 10007164 is listed twice") {
		t.Fatalf("error %v, want the duplicate named", err)
	}
}

// TestInstitutionMissingIsWarned: a submitter's institution without an
// entry loads, with a warning, since its notices lack a contact.
func TestInstitutionMissingIsWarned(t *testing.T) {
	c := mustParse(t, strings.Replace(string(Example), `  - ukprn: "10006842"`, `  - ukprn: "10000001"`, 1))
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "liverpool-cms submits for institution 10006842, which institutions does not list") {
		t.Errorf("warnings %q", w)
	}
}
