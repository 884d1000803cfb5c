package gateway

import (
	"strings"
	"testing"
)

func TestNewInstitutions(t *testing.T) {
	good := func() InstitutionProfile {
		return InstitutionProfile{UKPRN: "10007164", Name: "University of the West of England",
			WellbeingContact: WellbeingContact{Name: "Wellbeing Service", Email: "wellbeing@uwe.example.ac.uk", URL: "https://uwe.example.ac.uk/wellbeing"}}
	}
	for _, tt := range []struct {
		name   string
		change func(p *InstitutionProfile)
		want   string
	}{
		{"bad UKPRN", func(p *InstitutionProfile) { p.UKPRN = "0007164" }, "institutions[1].ukprn"},
		{"duplicate UKPRN", func(p *InstitutionProfile) {}, "listed twice"},
		{"no name", func(p *InstitutionProfile) { p.UKPRN, p.Name = "10006842", " " }, ".name: required"},
		{"bad ODS code", func(p *InstitutionProfile) { p.UKPRN, p.ODSCode = "10006842", "x" }, ".odsCode"},
		{"contact without a channel", func(p *InstitutionProfile) {
			p.UKPRN, p.WellbeingContact = "10006842", WellbeingContact{Name: "Wellbeing"}
		}, "at least one of email, phone or url"},
		{"contact without a name", func(p *InstitutionProfile) { p.UKPRN, p.WellbeingContact.Name = "10006842", "" }, "wellbeingContact.name"},
		{"bad email", func(p *InstitutionProfile) { p.UKPRN, p.WellbeingContact.Email = "10006842", "wellbeing" }, "not an email address"},
		{"plain http url", func(p *InstitutionProfile) { p.UKPRN, p.WellbeingContact.URL = "10006842", "http://x.example" }, "an https URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			second := good()
			tt.change(&second)
			_, err := NewInstitutions([]InstitutionProfile{good(), second})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	reg, err := NewInstitutions([]InstitutionProfile{good()})
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := reg.Lookup("10007164"); !ok || p.Name != "University of the West of England" {
		t.Errorf("lookup: %+v", p)
	}
	if _, ok := (*Institutions)(nil).Lookup("10007164"); ok {
		t.Error("a nil registry holds an institution")
	}
}
