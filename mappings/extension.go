package mappings

import (
	"fmt"
	"strings"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/student-mh-referrals/gateway/gateway"
)

// decisionExtension records the sharing decision on the ServiceRequest, on
// every route, so that a receiving IG team can trace the data it holds to the
// decision id and policy revision in the gateway's audit trail. On the
// override route it also carries the lawful bases and who decided and
// approved; on the consent route the bases are the consent ones the decision
// names.
func (b *builder) decisionExtension() fhir.Extension {
	d := b.in.Decision
	ext := fhir.Extension{Url: ExtensionSharingDecision}
	add := func(url string, v fhir.Extension) {
		v.Url = url
		ext.Extension = append(ext.Extension, v)
	}
	addString := func(url, s string) {
		if p := str(s); p != nil {
			add(url, fhir.Extension{ValueString: p})
		}
	}
	add("route", fhir.Extension{ValueCode: ptr(trim(d.Route))})
	addString("decisionId", d.ID)
	addString("policyRevision", d.PolicyRevision)
	bases := b.lawfulBases()
	addString("article6", bases.Article6)
	addString("article9", bases.Article9)
	addString("dpaSchedule1", bases.DPASchedule1)
	if o := b.rec.Override; o != nil {
		addString("decidedBy", person(o.DecidedBy))
		addString("approvedBy", person(o.ApprovedBy))
	}
	return ext
}

// lawfulBases are the decision's (the policies decide them, L-01); a record's
// own override bases stand in only where the decision names none.
func (b *builder) lawfulBases() gateway.LawfulBasis {
	lb := b.in.Decision.LawfulBases
	if lb == (gateway.LawfulBasis{}) && b.rec.Override != nil && b.rec.Override.LawfulBasis != nil {
		lb = *b.rec.Override.LawfulBasis
	}
	return lb
}

func person(p *gateway.Person) string {
	if p == nil || trim(p.Name) == "" {
		return ""
	}
	if r := trim(p.Role); r != "" {
		return trim(p.Name) + " (" + r + ")"
	}
	return trim(p.Name)
}

// overrideNote says plainly, in the ServiceRequest's notes, that the data was
// shared without consent and what M-02 says the clinician must read: the
// ground, the grounds as recorded, why consent was not sought or not relied
// on, the capacity finding, the lawful bases, who decided and approved,
// whether the student knows and why telling is delayed, and the decision id.
// It is empty on the consent route.
func (b *builder) overrideNote() string {
	o := b.rec.Override
	if o == nil {
		return ""
	}
	d := b.in.Decision
	var s []string
	add := func(format, v string) { // a sentence about v, when there is a v
		if v = trim(v); v != "" {
			s = append(s, fmt.Sprintf(format, v))
		}
	}
	route := trim(d.Route)
	if route == "" || route == "consent" {
		route = trim(o.Ground)
	}
	add("Shared without the student's consent on the %s route.", route)
	add("Grounds as recorded: %s", o.Grounds)
	if cs := o.ConsentSought; cs != nil {
		sought := "Consent was not sought"
		if cs.Attempted == nil || *cs.Attempted {
			sought = "Consent was sought"
		}
		if at := trim(cs.At); at != "" {
			sought += " at " + at
		}
		add(sought+": %s.", word("outcome", cs.Outcome))
		add("Why consent was not sought or not relied on: %s", cs.Reason)
	}
	capacity := "no finding recorded"
	if c := b.rec.Consent.Capacity; c != nil && trim(c.Status) != "" {
		capacity = word("capacity", c.Status)
		if by := trim(c.AssessedBy); by != "" {
			capacity += ", assessed by " + by
		}
		if on := trim(c.AssessedOn); on != "" {
			capacity += " on " + on
		}
	}
	add("Capacity: %s.", capacity)
	lb := b.lawfulBases()
	var bases []string
	if a := trim(lb.Article6); a != "" {
		bases = append(bases, "UK GDPR Art. "+a)
	}
	if a := trim(lb.Article9); a != "" {
		bases = append(bases, "UK GDPR Art. "+a)
	}
	if a := trim(lb.DPASchedule1); a != "" {
		bases = append(bases, "DPA 2018 Sch. 1 "+a)
	}
	add("Lawful bases: %s.", strings.Join(bases, "; "))
	if p := person(o.DecidedBy); p != "" {
		line := "Decided by " + p
		if at := trim(o.DecidedAt); at != "" {
			line += " at " + at
		}
		s = append(s, line+".")
	}
	add("Approved by %s.", person(o.ApprovedBy))
	told := "not recorded"
	if si := o.StudentInformed; si != nil && trim(si.Status) != "" {
		told = word("informed", si.Status)
	}
	add("Does the student know: %s.", told)
	if si := o.StudentInformed; si != nil {
		add("Why telling is delayed: %s", si.ReasonDelayed)
	}
	if id := trim(d.ID); id != "" {
		line := "Sharing decision " + id
		if rev := trim(d.PolicyRevision); rev != "" {
			line += " (policy revision " + rev + ")"
		}
		s = append(s, line+".")
	}
	return strings.Join(s, " ")
}
