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

func TestInstitutionsRejected(t *testing.T) {
	base := string(Example)
	uwe := `  - ukprn: "10007164"
    name: University of the West of England
    wellbeingContact: { name: Wellbeing Service, email: wellbeing@uwe.example.ac.uk, phone: "0117 000 0164", url: "https://uwe.example.ac.uk/wellbeing" }`
	tests := []struct {
		name, to, want string
	}{
		{"bad UKPRN", strings.Replace(uwe, `"10007164"`, `"0007164"`, 1), "institutions[0].ukprn"},
		{"duplicate UKPRN", strings.Replace(uwe, `"10007164"`, `"10006842"`, 1) + "\n" + strings.Replace(uwe, `"10007164"`, `"10006842"`, 1), "listed twice"},
		{"no name", strings.Replace(uwe, "name: University of the West of England", "name: \"\"", 1), ".name: required"},
		{"bad ODS code", strings.Replace(uwe, "    name: University", "    odsCode: x\n    name: University", 1), ".odsCode"},
		{"contact without a channel", strings.Replace(uwe, `, email: wellbeing@uwe.example.ac.uk, phone: "0117 000 0164", url: "https://uwe.example.ac.uk/wellbeing"`, "", 1), "at least one of email, phone or url"},
		{"contact without a name", strings.Replace(uwe, "name: Wellbeing Service", `name: ""`, 1), "wellbeingContact.name"},
		{"bad email", strings.Replace(uwe, "wellbeing@uwe.example.ac.uk", "wellbeing", 1), "not an email address"},
		{"plain http url", strings.Replace(uwe, "https://uwe", "http://uwe", 1), "an https URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(base, uwe) {
				t.Fatal("the example no longer lists UWE as the fixture expects")
			}
			_, err := Parse([]byte(strings.Replace(base, uwe, tt.to, 1)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
