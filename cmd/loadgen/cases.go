package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// Outcomes a generated case is expected to get.
const (
	expectAllow = "allow"
	expectDeny  = "deny"
)

// caseIDPlaceholder stands in every generated body for the case id, which
// is written in place per request (see Variant.Body). It is as long as the ids
// newCaseID makes, so a body needs no re-encoding.
const caseIDPlaceholder = "LG-@@@@@@@@-@@@@@@@@@@"

// newCaseID is the case id of request n of run run (8 hex digits).
func newCaseID(run string, n uint64) string { return fmt.Sprintf("LG-%s-%010d", run, n) }

// Variant is one generated case record, ready to post under any case id.
type Variant struct {
	// Institution is the UKPRN the record names (and whose token posts it).
	Institution string
	Service     string
	// Expect is the outcome the sharing policies should give it.
	Expect string
	// Kind says how it was made (consent, override, or the deny it
	// provokes), for reports.
	Kind string
	body []byte
	at   int // offset of the case id placeholder in body
}

// Body returns the record with caseID written in place of the placeholder.
func (v *Variant) Body(caseID string) []byte {
	b := make([]byte, len(v.body))
	copy(b, v.body)
	copy(b[v.at:], caseID)
	return b
}

// institutionNames are the universities the demo tokens cover, and the
// services each may refer to (from the example registry's eligibility).
var institutionNames = map[string]string{
	"10007164": "University of the West of England",
	"10006842": "University of Liverpool",
}

var servicesOf = map[string][]string{
	"10007164": {"bristol-awp", "icope-camden"},
	"10006842": {"u-cope", "liverpool-liaison", "icope-camden"},
}

// needRules mirror the example registry's eligibility: one of anyOf must be
// present and none of excluded; secondary care excludes where noSecondary.
type needRule struct {
	anyOf, excluded []string
	noSecondary     bool
	consentOnly     bool
}

var needRules = map[string]needRule{
	"u-cope":       {anyOf: []string{"self-harm"}, excluded: []string{"psychosis-concern"}, noSecondary: true, consentOnly: true},
	"icope-camden": {anyOf: []string{"low-mood", "anxiety", "trauma", "other"}, excluded: []string{"psychosis-concern"}, noSecondary: true, consentOnly: true},
}

// needTexts are made-up descriptions in a student's words (no real person).
var needTexts = map[string][]string{
	"self-harm":           {"Has been cutting when overwhelmed, most recently this week", "Scratches her arms during exam stress"},
	"suicidal-thoughts":   {"Has thoughts of not wanting to be here, no plan", "Passive thoughts of ending things at night"},
	"low-mood":            {"Low most days since the start of term", "Stopped going to lectures and seeing friends"},
	"anxiety":             {"Panic attacks before seminars", "Cannot sleep for worrying about money"},
	"eating-difficulties": {"Skipping meals and counting everything", "Eating very little since moving into halls"},
	"psychosis-concern":   {"Hears a voice commenting on what he does", "Believes flatmates are monitoring her"},
	"substance-use":       {"Using cannabis daily to get to sleep", "Drinking heavily most nights"},
	"trauma":              {"Flashbacks after an assault last year", "Nightmares since a car crash in the summer"},
	"other":               {"Struggling after a bereavement", "Finding it hard to cope with a long-term illness"},
}

var optionalCategories = []string{"contact", "gp", "risk-formulation", "safety-plan", "trusted-contact", "context"}

var givenNames = []string{"Alex", "Sam", "Jordan", "Riley", "Morgan", "Casey", "Taylor", "Jamie", "Robin", "Charlie"}
var familyNames = []string{"Okafor", "Carter", "Nguyen", "Patel", "Evans", "Murphy", "Kowalski", "Ahmed", "Jones", "Silva"}

// caseTemplates are the example cases that generated records start from:
// their structure and narrative are realistic, and the generator changes
// the institution, service, needs, categories, consent and student.
var consentTemplates = []string{
	"allow-liverpool-u-cope", "allow-liverpool-liaison-update", "allow-uwe-bristol-awp-trusted-contact",
	"allow-icope-camden", "allow-gm-limited-categories", "allow-sheffield-no-nhs-number",
}

const overrideTemplate = "allow-uwe-safeguarding-override"

// Mix is the share of each kind of generated case; the rest are allowed on
// the consent route.
type Mix struct {
	Override float64 // allowed without consent (safeguarding override)
	Deny     float64 // refused by a sharing rule
}

// DefaultMix is roughly what a region would see: most referrals with
// consent, a few overrides, and some that the rules refuse.
var DefaultMix = Mix{Override: 0.05, Deny: 0.10}

// Generate builds n varied case records for the given institutions from the
// example cases in dir, as of now, deterministically from seed.
func Generate(dir string, institutions []string, n int, mix Mix, now time.Time, seed uint64) ([]*Variant, error) {
	if len(institutions) == 0 {
		return nil, fmt.Errorf("no institution to generate cases for")
	}
	for _, inst := range institutions {
		if _, ok := servicesOf[inst]; !ok {
			return nil, fmt.Errorf("institution %s: the generator knows only %s", inst, strings.Join(knownInstitutions(), ", "))
		}
	}
	templates := map[string]map[string]any{}
	for _, name := range append(slices.Clone(consentTemplates), overrideTemplate) {
		data, err := os.ReadFile(filepath.Join(dir, name+".json"))
		if err != nil {
			return nil, fmt.Errorf("case template: %w", err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("case template %s: %w", name, err)
		}
		templates[name] = m
	}
	g := &generator{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: now.UTC(), templates: templates, mix: mix}
	out := make([]*Variant, 0, n)
	for i := 0; i < n; i++ {
		v, err := g.variant(institutions[i%len(institutions)])
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func knownInstitutions() []string {
	var out []string
	for k := range servicesOf {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

type generator struct {
	r         *rand.Rand
	now       time.Time
	templates map[string]map[string]any
	mix       Mix
}

func (g *generator) pick(ss []string) string { return ss[g.r.IntN(len(ss))] }

func (g *generator) instant(d time.Duration) string {
	return g.now.Add(d).Truncate(time.Minute).Format("2006-01-02T15:04:05Z")
}

func (g *generator) variant(inst string) (*Variant, error) {
	x := g.r.Float64()
	var rec map[string]any
	var svc, kind, expect string
	switch {
	case x < g.mix.Override:
		rec, svc = g.override(inst)
		kind, expect = "override", expectAllow
	case x < g.mix.Override+g.mix.Deny:
		rec, svc, kind = g.deny(inst)
		expect = expectDeny
	default:
		svc = g.pick(servicesOf[inst])
		rec = g.consent(inst, svc)
		kind, expect = "consent", expectAllow
	}
	rec["caseId"] = caseIDPlaceholder
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	at := bytes.Index(data, []byte(caseIDPlaceholder))
	if at < 0 {
		return nil, fmt.Errorf("generated case lost its id placeholder")
	}
	return &Variant{Institution: inst, Service: svc, Expect: expect, Kind: kind, body: data, at: at}, nil
}

// base is a deep copy of a template with the institution, student and
// referral details varied.
func (g *generator) base(name, inst, svc string) map[string]any {
	var rec map[string]any
	b, _ := json.Marshal(g.templates[name])
	_ = json.Unmarshal(b, &rec)
	rec["institution"] = map[string]any{"name": institutionNames[inst], "ukprn": inst}
	st := rec["student"].(map[string]any)
	if g.r.IntN(10) == 0 {
		delete(st, "nhsNumber")
	} else {
		st["nhsNumber"] = g.nhsNumber()
	}
	st["studentId"] = fmt.Sprintf("%08d", g.r.IntN(100000000))
	st["name"] = map[string]any{"given": []string{g.pick(givenNames)}, "family": g.pick(familyNames)}
	st["gender"] = g.pick(gateway.Genders)
	ref := rec["referral"].(map[string]any)
	ref["service"] = svc
	ref["priority"] = g.pick([]string{"routine", "routine", "urgent"})
	ref["presentingNeeds"] = g.needs(svc)
	if needRules[svc].noSecondary {
		ref["underSecondaryCare"] = false
	}
	return rec
}

// consent is a record allowed on the consent route for svc.
func (g *generator) consent(inst, svc string) map[string]any {
	rec := g.base(g.pick(consentTemplates), inst, svc)
	c := rec["consent"].(map[string]any)
	c["decision"] = "given"
	c["recipients"] = []string{svc}
	c["purposes"] = []string{"direct-care"}
	cats := []string{"demographics", "needs"}
	for _, oc := range optionalCategories {
		if g.r.IntN(3) != 0 {
			cats = append(cats, oc)
		}
	}
	c["dataCategories"] = cats
	c["recordedAt"] = g.instant(-time.Duration(1+g.r.IntN(20)) * 24 * time.Hour)
	if g.r.IntN(4) == 0 {
		delete(c, "expiresAt")
	} else {
		c["expiresAt"] = g.instant(time.Duration(30+g.r.IntN(300)) * 24 * time.Hour)
	}
	c["method"] = g.pick(gateway.ConsentMethods)
	return rec
}

// override is the safeguarding override of an under-18 student who refused
// consent, to a service that accepts the override route.
func (g *generator) override(inst string) (map[string]any, string) {
	svc := "bristol-awp"
	if inst == "10006842" {
		svc = "liverpool-liaison"
	}
	rec := g.base(overrideTemplate, inst, svc)
	st := rec["student"].(map[string]any)
	// 17 years and some months old at the decision time.
	st["dateOfBirth"] = g.now.AddDate(-17, -1-g.r.IntN(10), 0).Format("2006-01-02")
	rec["consent"].(map[string]any)["recordedAt"] = g.instant(-26 * time.Hour)
	o := rec["override"].(map[string]any)
	o["consentSought"].(map[string]any)["at"] = g.instant(-26 * time.Hour)
	o["decidedAt"] = g.instant(-2 * time.Hour)
	return rec, svc
}

// deny is a record that one sharing rule refuses, and which.
func (g *generator) deny(inst string) (map[string]any, string, string) {
	svc := g.pick(servicesOf[inst])
	rec := g.consent(inst, svc)
	c := rec["consent"].(map[string]any)
	switch kind := g.pick([]string{"consent-refused", "consent-expired", "recipient-not-consented", "emergency"}); kind {
	case "consent-refused":
		rec["consent"] = map[string]any{"decision": "refused", "recordedAt": c["recordedAt"], "method": "verbal", "recordedBy": c["recordedBy"]}
		return rec, svc, kind
	case "consent-expired":
		c["recordedAt"] = g.instant(-200 * 24 * time.Hour)
		c["expiresAt"] = g.instant(-time.Duration(1+g.r.IntN(20)) * 24 * time.Hour)
		return rec, svc, kind
	case "recipient-not-consented":
		for _, other := range servicesOf[inst] {
			if other != svc {
				c["recipients"] = []string{other}
				break
			}
		}
		return rec, svc, kind
	default:
		rec["referral"].(map[string]any)["priority"] = "emergency"
		return rec, svc, kind
	}
}

// needs picks one to three needs that the service's eligibility accepts.
func (g *generator) needs(svc string) []map[string]any {
	rule := needRules[svc]
	var codes []string
	if len(rule.anyOf) > 0 {
		codes = append(codes, g.pick(rule.anyOf))
	}
	want := 1 + g.r.IntN(3)
	for tries := 0; len(codes) < want && tries < 20; tries++ {
		c := g.pick(gateway.NeedCodes)
		if !slices.Contains(codes, c) && !slices.Contains(rule.excluded, c) {
			codes = append(codes, c)
		}
	}
	out := make([]map[string]any, 0, len(codes))
	for _, c := range codes {
		n := map[string]any{"code": c}
		if g.r.IntN(5) != 0 {
			n["text"] = g.pick(needTexts[c])
		}
		out = append(out, n)
	}
	return out
}

// nhsNumber is a random NHS number with a valid modulus 11 check digit, in
// the 999 range reserved for testing.
func (g *generator) nhsNumber() string {
	for {
		d := []int{9, 9, 9}
		for len(d) < 9 {
			d = append(d, g.r.IntN(10))
		}
		sum := 0
		for i, v := range d {
			sum += v * (10 - i)
		}
		check := 11 - sum%11
		if check == 11 {
			check = 0
		}
		if check == 10 {
			continue
		}
		var sb strings.Builder
		for _, v := range append(d, check) {
			sb.WriteByte(byte('0' + v))
		}
		return sb.String()
	}
}
