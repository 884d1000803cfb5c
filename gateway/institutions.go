package gateway

import (
	"fmt"
	"strings"
)

// InstitutionProfile is what the gateway is configured to know about a
// university: its identifiers and whom its students contact about their
// referral. It comes from configuration, never from a case record, so that a
// notice to a student names a contact the university vouches for.
type InstitutionProfile struct {
	UKPRN string `json:"ukprn"`
	Name  string `json:"name"`
	// ODSCode is the university's own ODS code where it has one (e.g. a
	// university with an NHS-registered health service); most have none.
	ODSCode          string           `json:"odsCode,omitempty"`
	WellbeingContact WellbeingContact `json:"wellbeingContact"`
}

// WellbeingContact is how a student reaches the university's wellbeing
// service about a referral; at least one channel is set.
type WellbeingContact struct {
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
	Phone string `json:"phone,omitempty"`
	URL   string `json:"url,omitempty"`
}

// Institutions is the configured set of universities, keyed by UKPRN: the
// student notice takes its contact from here, and delivery may take the ODS
// code for the NHSD-End-User-Organisation header.
type Institutions struct {
	byUKPRN map[string]*InstitutionProfile
}

// NewInstitutions checks and indexes the configured universities: each has a
// UKPRN of eight digits starting 1, a name, a valid ODS code or none, and a
// wellbeing contact with a name and at least one channel; no UKPRN twice.
func NewInstitutions(list []InstitutionProfile) (*Institutions, error) {
	r := &Institutions{byUKPRN: make(map[string]*InstitutionProfile, len(list))}
	for i := range list {
		p := list[i]
		if !ValidUKPRN(p.UKPRN) {
			return nil, fmt.Errorf("institutions[%d].ukprn %q: a UKPRN is eight digits starting with 1", i, p.UKPRN)
		}
		at := fmt.Sprintf("institutions[%d] (%s)", i, p.UKPRN)
		c := p.WellbeingContact
		switch {
		case r.byUKPRN[p.UKPRN] != nil:
			return nil, fmt.Errorf("%s: UKPRN %s is listed twice", at, p.UKPRN)
		case strings.TrimSpace(p.Name) == "":
			return nil, fmt.Errorf("%s.name: required", at)
		case p.ODSCode != "" && !ValidODSCode(p.ODSCode):
			return nil, fmt.Errorf("%s.odsCode %q: not an ODS code", at, p.ODSCode)
		case strings.TrimSpace(c.Name) == "":
			return nil, fmt.Errorf("%s.wellbeingContact.name: required (the team a student contacts)", at)
		case strings.TrimSpace(c.Email+c.Phone+c.URL) == "":
			return nil, fmt.Errorf("%s.wellbeingContact: give at least one of email, phone or url", at)
		case c.Email != "" && !strings.Contains(c.Email, "@"):
			return nil, fmt.Errorf("%s.wellbeingContact.email %q: not an email address", at, c.Email)
		case c.URL != "" && !strings.HasPrefix(c.URL, "https://"):
			return nil, fmt.Errorf("%s.wellbeingContact.url %q: an https URL", at, c.URL)
		}
		r.byUKPRN[p.UKPRN] = &p
	}
	return r, nil
}

// Lookup returns the university with the UKPRN; a nil registry holds none.
func (r *Institutions) Lookup(ukprn string) (*InstitutionProfile, bool) {
	if r == nil {
		return nil, false
	}
	p, ok := r.byUKPRN[ukprn]
	return p, ok
}
