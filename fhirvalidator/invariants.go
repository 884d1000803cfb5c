package fhirvalidator

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Invariants are FHIR constraints implemented in Go rather than evaluated as
// FHIRPath: the validator has no FHIRPath engine, and the few invariants that
// matter for the gateway's messages are short. Each is keyed by its FHIR key
// and attached, at load time, to the elements whose definitions carry that
// key, so that profiles inherit them as FHIR intends. Error-level R4
// invariants not listed here are not evaluated (docs/conformance.md).
//
// ppc-2..ppc-5 are implemented as R4 intends them ("a privacy, research,
// ADR or treatment consent names its patient"): R4's expressions compare
// scope with system 'something' and never fire.

// invariant is one Go-implemented constraint attached to an element.
type invariant struct {
	key string
	fn  func(c *vctx, n *node)
}

// invFunc checks one value (at the current location of c) and reports
// through c.
type invFunc = func(c *vctx, n *node)

// invariants maps constraint keys to their Go implementation.
var invariants = map[string]invFunc{
	"dom-2": check("dom-2", "a contained resource must not contain resources", func(c *vctx, n *node) bool {
		return !slices.ContainsFunc(n.list("contained"), func(r *node) bool { return r.get("contained") != nil })
	}),
	"dom-3": dom3,
	"dom-4": check("dom-4", "a contained resource must not have meta.versionId or meta.lastUpdated", func(c *vctx, n *node) bool {
		return !slices.ContainsFunc(n.list("contained"), func(r *node) bool {
			return r.get("meta").get("versionId") != nil || r.get("meta").get("lastUpdated") != nil
		})
	}),
	"dom-5": check("dom-5", "a contained resource must not have security labels", func(c *vctx, n *node) bool {
		return !slices.ContainsFunc(n.list("contained"), func(r *node) bool { return r.get("meta").get("security") != nil })
	}),
	"ext-1": check("ext-1", "an extension must have either extensions or a value, not both", func(c *vctx, n *node) bool {
		return (n.get("extension") != nil) != hasPrefixed(n, "value")
	}),
	"per-1": check("per-1", "a period's start must not be after its end", func(c *vctx, n *node) bool {
		return !after(n.str("start"), n.str("end"))
	}),
	"ref-1": ref1,
	"cpt-2": needs("cpt-2", "a contact point with a value must have a system", "value", "system"),
	"att-1": needs("att-1", "an attachment with data must have a contentType", "data", "contentType"),
	"qty-3": needs("qty-3", "a quantity with a code must have a system", "code", "system"),
	"sqty-1": check("sqty-1", "a simple quantity must not have a comparator", func(c *vctx, n *node) bool {
		return n.get("comparator") == nil
	}),
	"drt-1": check("drt-1", "a duration with a code must be a UCUM duration with a value", func(c *vctx, n *node) bool {
		return n.get("code") == nil || (n.str("system") == ucum && n.get("value") != nil)
	}),
	"age-1": check("age-1", "an age must be a positive UCUM quantity with a code", func(c *vctx, n *node) bool {
		v := n.get("value")
		return (n.get("code") != nil || v == nil) && (n.get("system") == nil || n.str("system") == ucum) &&
			(v == nil || v.k != kNumber || num(v.s) > 0)
	}),
	"cnt-3": check("cnt-3", "a count must be a whole number with UCUM code 1", func(c *vctx, n *node) bool {
		v := n.get("value")
		return (n.get("code") != nil || v == nil) && (n.get("system") == nil || n.str("system") == ucum) &&
			(n.get("code") == nil || n.str("code") == "1") && (v == nil || !strings.Contains(v.s, "."))
	}),
	"dis-1": check("dis-1", "a distance must be a UCUM quantity with a code", func(c *vctx, n *node) bool {
		return (n.get("code") != nil || n.get("value") == nil) && (n.get("system") == nil || n.str("system") == ucum)
	}),
	"mqty-1": check("mqty-1", "a money quantity must use ISO 4217 currency codes", func(c *vctx, n *node) bool {
		return (n.get("code") != nil || n.get("value") == nil) && (n.get("system") == nil || n.str("system") == "urn:iso:std:iso:4217")
	}),
	"drq-1": check("drq-1", "a code filter has either a path or a searchParam", pathXorSearchParam),
	"drq-2": check("drq-2", "a date filter has either a path or a searchParam", pathXorSearchParam),
	"exp-1": check("exp-1", "an expression needs an expression or a reference", func(c *vctx, n *node) bool {
		return n.get("expression") != nil || n.get("reference") != nil
	}),
	"trd-1": check("trd-1", "a trigger has either data or timing, not both", func(c *vctx, n *node) bool {
		return n.get("data") == nil || !hasPrefixed(n, "timing")
	}),
	"trd-2": needs("trd-2", "a trigger condition needs data", "condition", "data"),
	"trd-3": check("trd-3", "a named-event trigger needs a name, a periodic one a timing, a data trigger data", func(c *vctx, n *node) bool {
		t := n.str("type")
		return (t != "named-event" || n.get("name") != nil) && (t != "periodic" || hasPrefixed(n, "timing")) &&
			(!strings.HasPrefix(t, "data-") || n.get("data") != nil)
	}),
	"rng-2": check("rng-2", "a range's low must not be above its high", func(c *vctx, n *node) bool {
		lo, hi := n.get("low").get("value"), n.get("high").get("value")
		return lo == nil || hi == nil || lo.k != kNumber || hi.k != kNumber || num(lo.s) <= num(hi.s)
	}),
	"rat-1": check("rat-1", "a ratio needs both numerator and denominator, or neither with an extension", func(c *vctx, n *node) bool {
		num, den := n.get("numerator") != nil, n.get("denominator") != nil
		return num == den && (num || n.get("extension") != nil)
	}),
	"tim-1": needs("tim-1", "a duration needs a durationUnit", "duration", "durationUnit"),
	"tim-2": needs("tim-2", "a period needs a periodUnit", "period", "periodUnit"),
	"tim-4": nonNegative("tim-4", "duration"),
	"tim-5": nonNegative("tim-5", "period"),
	"tim-6": needs("tim-6", "periodMax needs a period", "periodMax", "period"),
	"tim-7": needs("tim-7", "durationMax needs a duration", "durationMax", "duration"),
	"tim-8": needs("tim-8", "countMax needs a count", "countMax", "count"),
	// tim-9 as corrected after R4 (R4's own expression cannot be
	// evaluated when `when` repeats; fhircheck applies the same errata).
	"tim-9": check("tim-9", "an offset needs a when that is not C, CM, CD or CV", func(c *vctx, n *node) bool {
		when := n.list("when")
		return n.get("offset") == nil || len(when) > 0 &&
			!slices.ContainsFunc(when, func(w *node) bool { return slices.Contains([]string{"C", "CM", "CD", "CV"}, w.s) })
	}),
	"tim-10": check("tim-10", "timeOfDay and when must not both be present", func(c *vctx, n *node) bool {
		return n.get("timeOfDay") == nil || n.get("when") == nil
	}),
	"bdl-1": check("bdl-1", "total is only for search and history Bundles", func(c *vctx, n *node) bool {
		t := n.str("type")
		return n.get("total") == nil || t == "searchset" || t == "history"
	}),
	"bdl-2": check("bdl-2", "entry.search is only for search Bundles", func(c *vctx, n *node) bool {
		return n.str("type") == "searchset" || !slices.ContainsFunc(n.list("entry"), func(e *node) bool { return e.get("search") != nil })
	}),
	"bdl-3": entriesHave("bdl-3", "request", "batch", "transaction", "history"),
	"bdl-4": entriesHave("bdl-4", "response", "batch-response", "transaction-response", "history"),
	"bdl-5": check("bdl-5", "an entry must have a resource, a request or a response", func(c *vctx, n *node) bool {
		return n.get("resource") != nil || n.get("request") != nil || n.get("response") != nil
	}),
	"bdl-7": bdl7,
	"bdl-8": check("bdl-8", "fullUrl must not be a version-specific reference", func(c *vctx, n *node) bool {
		return !strings.Contains(n.str("fullUrl"), "/_history/")
	}),
	"bdl-9": check("bdl-9", "a document Bundle must have an identifier with a system and a value", func(c *vctx, n *node) bool {
		id := n.get("identifier")
		return n.str("type") != "document" || (id.get("system") != nil && id.get("value") != nil)
	}),
	"bdl-10": check("bdl-10", "a document Bundle must have a timestamp", func(c *vctx, n *node) bool {
		return n.str("type") != "document" || n.str("timestamp") != ""
	}),
	"bdl-11": check("bdl-11", "a document Bundle must start with a Composition", func(c *vctx, n *node) bool {
		return n.str("type") != "document" || firstEntryType(n) == "Composition"
	}),
	"bdl-12": check("bdl-12", "a message Bundle must start with a MessageHeader", func(c *vctx, n *node) bool {
		return n.str("type") != "message" || firstEntryType(n) == "MessageHeader"
	}),
	"prr-1": needs("prr-1", "orderDetail is only allowed when there is a code", "orderDetail", "code"),
	"ppc-1": check("ppc-1", "a consent must have a policy or a policyRule", func(c *vctx, n *node) bool {
		return n.get("policy") != nil || n.get("policyRule") != nil
	}),
	"ppc-2": consentNeedsPatient("ppc-2", "patient-privacy", "a privacy consent must name its patient"),
	"ppc-3": consentNeedsPatient("ppc-3", "research", "a research consent must name its patient"),
	"ppc-4": consentNeedsPatient("ppc-4", "adr", "an advance directive must name its patient"),
	"ppc-5": consentNeedsPatient("ppc-5", "treatment", "a treatment consent must name its patient"),
	"pat-1": check("pat-1", "a contact must have a name, telecom, address or organization", func(c *vctx, n *node) bool {
		return n.get("name") != nil || n.get("telecom") != nil || n.get("address") != nil || n.get("organization") != nil
	}),
	"org-1": check("org-1", "an organization must have an identifier or a name", func(c *vctx, n *node) bool {
		return n.get("identifier") != nil || n.get("name") != nil
	}),
	"org-2": check("org-2", "an organization's address must not be a home address", notHome),
	"org-3": check("org-3", "an organization's telecom must not be a home contact", notHome),
	"cpl-3": check("cpl-3", "an activity has either a detail or a reference, not both", func(c *vctx, n *node) bool {
		return n.get("detail") == nil || n.get("reference") == nil
	}),
}

const ucum = "http://unitsofmeasure.org"

// needs is an invariant that element a, when present, comes with element b.
func needs(key, msg, a, b string) invFunc {
	return check(key, msg, func(c *vctx, n *node) bool { return n.get(a) == nil || n.get(b) != nil })
}

// nonNegative is an invariant that a number element is not negative.
func nonNegative(key, name string) invFunc {
	return check(key, name+" must not be negative", func(c *vctx, n *node) bool {
		d := n.get(name)
		return d == nil || d.k != kNumber || num(d.s) >= 0
	})
}

// entriesHave is bdl-3 and bdl-4: every entry has part in Bundles of the
// given types, and none has it in others.
func entriesHave(key, part string, types ...string) invFunc {
	msg := fmt.Sprintf("entry.%s is required in %s, %s and %s Bundles, and prohibited in others", part, types[0], types[1], types[2])
	return check(key, msg, func(c *vctx, n *node) bool {
		want := slices.Contains(types, n.str("type"))
		return !slices.ContainsFunc(n.list("entry"), func(e *node) bool { return (e.get(part) != nil) != want })
	})
}

func pathXorSearchParam(c *vctx, n *node) bool {
	return (n.get("path") != nil) != (n.get("searchParam") != nil)
}

func notHome(c *vctx, n *node) bool { return n.str("use") != "home" }

// check makes an invariant from a predicate and its message.
func check(key, msg string, ok func(c *vctx, n *node) bool) invFunc {
	return func(c *vctx, n *node) {
		if n.k == kObject && !ok(c, n) {
			c.fail("", "invariant", key, fmt.Sprintf("%s (%s)", msg, key))
		}
	}
}

func hasPrefixed(n *node, prefix string) bool {
	return slices.ContainsFunc(n.fields, func(f field) bool { return isTypedKey(strings.TrimPrefix(f.key, "_"), prefix) })
}

func firstEntryType(n *node) string {
	entries := n.list("entry")
	if len(entries) == 0 {
		return ""
	}
	return entries[0].get("resource").str("resourceType")
}

func num(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

const consentScope = "http://terminology.hl7.org/CodeSystem/consentscope"

func consentNeedsPatient(key, scope, msg string) invFunc {
	return check(key, msg, func(c *vctx, n *node) bool {
		if n.get("patient") != nil {
			return true
		}
		for _, cd := range n.get("scope").list("coding") {
			if cd.str("system") == consentScope && cd.str("code") == scope {
				return false
			}
		}
		return true
	})
}

// bdl7: fullUrl is unique in a Bundle unless the entries differ in
// meta.versionId (history Bundles are exempt).
func bdl7(c *vctx, n *node) {
	if n.k != kObject || n.str("type") == "history" {
		return
	}
	seen := map[string]int{}
	for i, e := range n.list("entry") {
		fu := e.str("fullUrl")
		if fu == "" {
			continue
		}
		key := fu + "\x00" + e.get("resource").get("meta").str("versionId")
		if j, dup := seen[key]; dup {
			c.fail(fmt.Sprintf("entry[%d].fullUrl", i), "invariant", "bdl-7",
				fmt.Sprintf("fullUrl %s is already used by entry[%d]; fullUrl must be unique in a Bundle (bdl-7)", fu, j))
			continue
		}
		seen[key] = i
	}
}

// dom3: every contained resource is referred to from elsewhere in the
// resource, or refers to its container with "#".
func dom3(c *vctx, n *node) {
	contained := n.list("contained")
	if n.k != kObject || len(contained) == 0 {
		return
	}
	refs := map[string]bool{}
	var walk func(x *node)
	walk = func(x *node) {
		switch x.k {
		case kObject:
			for _, f := range x.fields {
				walk(f.val)
			}
		case kArray:
			for _, it := range x.items {
				walk(it)
			}
		case kString:
			if strings.HasPrefix(x.s, "#") {
				refs[x.s] = true
			}
		}
	}
	for _, f := range n.fields {
		if f.key != "contained" {
			walk(f.val)
		}
	}
	for _, r := range contained {
		walk(r) // contained resources may refer to each other
	}
	for i, r := range contained {
		if id := r.str("id"); id != "" && refs["#"+id] {
			continue
		}
		back := map[string]bool{}
		saved := refs
		refs = back
		walk(r)
		refs = saved
		if back["#"] {
			continue
		}
		c.fail(fmt.Sprintf("contained[%d]", i), "invariant", "dom-3",
			"a contained resource must be referred to from elsewhere in the resource, or refer to it (dom-3)")
	}
}

// ref1: a local reference "#id" names a contained resource of the resource
// that holds it ("#" alone, from a contained resource, names the container).
func ref1(c *vctx, n *node) {
	ref := n.str("reference")
	if n.k != kObject || !strings.HasPrefix(ref, "#") {
		return
	}
	for i := len(c.frames) - 1; i >= 0; i-- {
		f := c.frames[i]
		if f.contained {
			if ref == "#" {
				return
			}
			continue
		}
		for _, r := range f.n.list("contained") {
			if "#"+r.str("id") == ref {
				return
			}
		}
		break
	}
	c.fail("reference", "invariant", "ref-1",
		fmt.Sprintf("local reference %s does not name a contained resource (ref-1)", ref))
}

// after reports whether dateTime a is certainly after dateTime b, taking
// each as the interval its precision covers. Times without a zone are read
// as UTC.
func after(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	alo, _, ok1 := interval(a)
	_, bhi, ok2 := interval(b)
	return ok1 && ok2 && alo.After(bhi)
}

func interval(s string) (lo, hi time.Time, ok bool) {
	for _, l := range []struct {
		layout  string
		y, m, d int
	}{{"2006", 1, 0, 0}, {"2006-01", 0, 1, 0}, {"2006-01-02", 0, 0, 1}} {
		if len(s) == len(l.layout) {
			t, err := time.Parse(l.layout, s)
			return t, t.AddDate(l.y, l.m, l.d).Add(-time.Nanosecond), err == nil
		}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, t, err == nil
}

// Gateway rules that no FHIR definition carries, attached by type in link.
var typeRules = map[string][]invariant{
	"Identifier": {{"gw-nhs-number", nhsNumberRule}, {"gw-system-case", systemCaseRule}},
}

const nhsNumberSystem = "https://fhir.nhs.uk/Id/nhs-number"

// nhsNumberRule: an identifier under the NHS number system is ten digits
// with a valid Modulus 11 check digit (NHS Data Dictionary). Some official
// NHS examples fail it; a receiver's PDS lookup would.
func nhsNumberRule(c *vctx, n *node) {
	if n.k != kObject || n.str("system") != nhsNumberSystem || n.get("value") == nil {
		return
	}
	if v := n.str("value"); !validNHSNumber(v) {
		// the number itself is personal data: the message does not repeat it
		c.fail("value", "value", "gw-nhs-number", "is not a valid NHS number (10 digits with a Modulus 11 check digit)")
	}
}

func validNHSNumber(s string) bool {
	if len(s) != 10 || !allDigits(s) {
		return false
	}
	sum := 0
	for i := 0; i < 9; i++ {
		sum += int(s[i]-'0') * (10 - i)
	}
	check := 11 - sum%11
	if check == 11 {
		check = 0
	}
	return check != 10 && check == int(s[9]-'0')
}

// knownSystems are NHS identifier systems that receivers match exactly.
var knownSystems = []string{
	nhsNumberSystem,
	"https://fhir.nhs.uk/Id/ods-organization-code",
	"https://fhir.nhs.uk/Id/ods-site-code",
	"https://fhir.hl7.org.uk/Id/gmc-number",
	"https://fhir.hl7.org.uk/Id/nmc-number",
	"https://fhir.hl7.org.uk/Id/hcpc-number",
	"https://fhir.nhs.uk/Id/sds-user-id",
	"https://fhir.nhs.uk/Id/sds-role-profile-id",
}

// systemCaseRule warns about an identifier system that differs from a
// known NHS system only in case (…/id/ods-organization-code): a different
// URI to a receiver, so the identifier would not match.
func systemCaseRule(c *vctx, n *node) {
	sys := n.str("system")
	if n.k != kObject || sys == "" {
		return
	}
	for _, k := range knownSystems {
		if sys != k && strings.EqualFold(sys, k) {
			c.warn("system", "value", "gw-system-case", fmt.Sprintf("%s differs from the NHS system %s only in case", sys, k))
		}
	}
}
