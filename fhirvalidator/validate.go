package fhirvalidator

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Options adjust one validation.
type Options struct {
	// Profiles are canonical URLs of profiles to apply to every resource of
	// the profile's type (Bundle entries included), as fhircheck's
	// --profile does, on top of the profiles each resource claims in
	// meta.profile. Unknown URLs are reported as warnings.
	Profiles []string
}

// Validate checks one FHIR R4 JSON document: the resource, and recursively
// every Bundle entry and contained resource, against the base definitions
// and the profiles they claim.
func (v *Validator) Validate(data []byte) Result {
	return v.ValidateWith(data, Options{})
}

// ValidateFile reads and validates one file. The error is for a file that
// cannot be read; a file that is not valid FHIR gives a Result with issues.
func (v *Validator) ValidateFile(name string) (Result, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return Result{}, err
	}
	return v.Validate(data), nil
}

// ValidateWith is Validate with options.
func (v *Validator) ValidateWith(data []byte, opts Options) Result {
	root, dups, err := parseJSON(data)
	if err != nil {
		return Result{Issues: []Issue{{Severity: SeverityError, Code: "structure", Rule: "json", Message: err.Error()}}}
	}
	c := &vctx{v: v, seen: map[Issue]bool{}, done: map[doneKey]bool{}, dups: dups}
	for _, u := range opts.Profiles {
		sd := v.byURL[stripVersion(u)]
		if sd == nil || !sd.profile {
			c.warn("", "not-supported", "profile", fmt.Sprintf("profile %s is not loaded; not checked", u))
			continue
		}
		c.forced = append(c.forced, sd)
	}
	c.resource(root, false, nil)
	if c.issues == nil {
		c.issues = []Issue{}
	}
	return Result{Issues: c.issues}
}

// vctx is the state of one validation.
type vctx struct {
	v      *Validator
	forced []*structDef
	issues []Issue
	seen   map[Issue]bool
	dups   dupKeys
	done   map[doneKey]bool
	// frames is the stack of resources being validated, innermost last.
	frames []*frame
	// entryURL is the fullUrl of the Bundle entry whose resource is about
	// to be validated.
	entryURL string
	// path is the location being validated; issues copy it, nothing else
	// does, so that a valid document costs no location strings.
	path []byte
}

func (c *vctx) push(name string) int {
	m := len(c.path)
	if m > 0 {
		c.path = append(c.path, '.')
	}
	c.path = append(c.path, name...)
	return m
}

func (c *vctx) pushIndex(i int) int {
	m := len(c.path)
	c.path = append(c.path, '[')
	c.path = strconv.AppendInt(c.path, int64(i), 10)
	c.path = append(c.path, ']')
	return m
}

func (c *vctx) pop(m int) { c.path = c.path[:m] }

// at returns the current location, extended by sub when it is not empty.
func (c *vctx) at(sub string) string {
	if sub == "" {
		return string(c.path)
	}
	if len(c.path) == 0 {
		return sub
	}
	return string(c.path) + "." + sub
}

type doneKey struct {
	n  *node
	sd *structDef
}

// frame is a resource being validated.
type frame struct {
	n         *node
	contained bool
	fullURL   string // of its Bundle entry, if any
	bundle    *bundleFrame
}

func (c *vctx) add(sev, code, rule, loc, msg string) {
	is := Issue{Severity: sev, Code: code, Location: loc, Message: msg, Rule: rule}
	if !c.seen[is] {
		c.seen[is] = true
		c.issues = append(c.issues, is)
	}
}

// fail reports an error at the current location extended by sub.
func (c *vctx) fail(sub, code, rule, msg string) { c.add(SeverityError, code, rule, c.at(sub), msg) }

// warn reports a warning at the current location extended by sub.
func (c *vctx) warn(sub, code, rule, msg string) { c.add(SeverityWarning, code, rule, c.at(sub), msg) }

// resource validates a resource held at the current location ("" at the
// top). extra are profiles that the holding element requires.
func (c *vctx) resource(n *node, contained bool, extra []string) {
	if n.k != kObject {
		c.fail("", "structure", "type", "a resource must be a JSON object, not a "+n.k.String())
		return
	}
	rtn := n.get("resourceType")
	if rtn == nil || rtn.k != kString {
		c.fail("", "required", "resource-type", "missing resourceType")
		return
	}
	rt := rtn.s
	sd := c.v.types[rt]
	if sd == nil || sd.kind != kindResource || sd.abstract {
		msg := fmt.Sprintf("unknown R4 resource type %q", rt)
		if c.v.knownTypes[rt] {
			msg = fmt.Sprintf("resource type %s is not covered by the %s rules; load the FHIR definitions to check it", rt, c.v.source)
		}
		c.fail("resourceType", "not-supported", "resource-type", msg)
		return
	}
	mark := c.push(rt)
	defer c.pop(mark)
	// The definitions to walk: the profiles that apply, or the base
	// definition when none does. A profile's snapshot holds every element
	// and constraint of its base (link completes generated snapshots that
	// leave elements out), so walking the base as well would only repeat
	// the same checks.
	var profiles []*structDef
	addProfile := func(p *structDef) {
		if !slices.Contains(profiles, p) {
			profiles = append(profiles, p)
		}
	}
	for _, p := range n.get("meta").list("profile") {
		if p.k != kString {
			continue
		}
		psd := c.v.byURL[stripVersion(p.s)]
		switch {
		case psd == nil:
			c.warn("meta.profile", "not-supported", "profile", fmt.Sprintf("profile %s is not known here; not checked against it", p.s))
		case psd.typ != rt:
			c.fail("meta.profile", "invalid", "profile", fmt.Sprintf("profile %s is for %s, not %s", p.s, psd.typ, rt))
		case !psd.profile:
			// the base definition itself: always checked
		default:
			addProfile(psd)
		}
	}
	for _, p := range c.forced {
		if p.typ == rt {
			addProfile(p)
		}
	}
	for _, u := range extra {
		if psd := c.v.byURL[u]; psd != nil && psd.typ == rt && psd.profile {
			addProfile(psd)
		}
	}
	defs := profiles
	if len(defs) == 0 {
		defs = []*structDef{sd}
	}
	f := &frame{n: n, contained: contained, fullURL: c.entryURL}
	c.entryURL = ""
	if rt == "Bundle" {
		f.bundle = &bundleFrame{message: n.str("type") == "message"}
	}
	c.frames = append(c.frames, f)
	var ran []string
	for _, d := range defs {
		if c.done[doneKey{n, d}] {
			continue
		}
		c.done[doneKey{n, d}] = true
		c.object(n, d.root, true)
		ran = c.invariants(ran, n, d.root.invs)
	}
	c.invariants(ran, n, sd.root.invs)
	if f.bundle != nil {
		c.bundleRules(f)
	}
	c.frames = c.frames[:len(c.frames)-1]
}

// invariants runs on n each invariant whose key is not in ran yet.
func (c *vctx) invariants(ran []string, n *node, invs []invariant) []string {
	for _, inv := range invs {
		if !slices.Contains(ran, inv.key) {
			ran = append(ran, inv.key)
			inv.fn(c, n)
		}
	}
	return ran
}

// object validates the properties of a JSON object against the children of h.
func (c *vctx) object(n *node, h *element, isRoot bool) {
	if h == nil {
		return
	}
	if n.k != kObject {
		c.fail("", "structure", "type", "must be a JSON object, not a "+n.k.String())
		return
	}
	if len(n.fields) == 0 {
		c.fail("", "structure", "json", "empty object is not allowed")
		return
	}
	if d := c.dups[n]; d != nil {
		for _, k := range d {
			c.fail(k, "structure", "json", fmt.Sprintf("property %q appears more than once", k))
		}
	}
	var cbuf [48]int // most elements have fewer children: no allocation
	var kbuf [48]string
	counts := append(cbuf[:0], make([]int, len(h.children))...)
	choices := append(kbuf[:0], make([]string, len(h.children))...)
	if h.entry {
		c.entryURL = n.str("fullUrl")
	}
	sliced := false
	for _, f := range n.fields {
		key := f.key
		if isRoot && key == "resourceType" {
			continue
		}
		ext := len(key) > 1 && key[0] == '_'
		if ext {
			key = key[1:]
		}
		cr, ok := h.index[key]
		if !ok {
			c.fail(f.key, "structure", "unknown-element", fmt.Sprintf("unknown element %q", f.key))
			continue
		}
		el := cr.el
		var t *typeRef
		if cr.typ < len(el.types) {
			t = &el.types[cr.typ]
		}
		if el.choice {
			if prev := choices[cr.pos]; prev != "" && prev != key {
				c.fail(f.key, "structure", "choice", fmt.Sprintf("only one of %s[x] is allowed, found %s and %s", el.name, prev, key))
			}
			choices[cr.pos] = key
		}
		if el.slicing != nil && len(el.slices) > 0 {
			sliced = true
		}
		if ext {
			if t == nil || t.prim == kNone {
				c.fail(f.key, "structure", "unknown-element", fmt.Sprintf("unknown element %q (%s is not a primitive)", f.key, key))
				continue
			}
			valueNode := n.get(key)
			m := c.push(f.key)
			cnt := c.primitiveExtensions(f.val, el, valueNode)
			c.pop(m)
			if valueNode == nil {
				counts[cr.pos] += cnt
			}
			continue
		}
		m := c.push(f.key)
		counts[cr.pos] += c.values(n, f, el, cr.typ)
		c.pop(m)
	}
	for pos, el := range h.children {
		cnt := counts[pos]
		if cnt < el.min {
			c.fail(el.jsonName(), "required", "cardinality", cardMsg(el, cnt))
		} else if el.max >= 0 && cnt > el.max {
			c.fail(el.jsonName(), "structure", "cardinality", cardMsg(el, cnt))
		}
	}
	if sliced {
		for pos, el := range h.children {
			if counts[pos] > 0 && el.slicing != nil && len(el.slices) > 0 {
				c.slices(n, h, el)
			}
		}
	}
}

func (e *element) jsonName() string {
	if e.choice {
		return e.name + "[x]"
	}
	return e.name
}

func cardMsg(el *element, n int) string {
	if n == 0 {
		return fmt.Sprintf("missing required element %s (cardinality %s)", el.jsonName(), el.card())
	}
	return fmt.Sprintf("%s has %d values; cardinality is %s", el.jsonName(), n, el.card())
}

// card is the element's cardinality as FHIR writes it, e.g. 0..*.
func (e *element) card() string {
	if e.max < 0 {
		return strconv.Itoa(e.min) + "..*"
	}
	return strconv.Itoa(e.min) + ".." + strconv.Itoa(e.max)
}

// values validates the value of one property (the current location) and
// returns how many values it has.
func (c *vctx) values(parent *node, f field, el *element, ti int) int {
	v := f.val
	if v.k == kNull {
		c.fail("", "structure", "json", "null is not allowed")
		return 0
	}
	if !el.array {
		if v.k == kArray {
			c.fail("", "structure", "type", fmt.Sprintf("%s takes a single value, not an array", f.key))
			return len(v.items)
		}
		c.value(v, el, ti)
		return 1
	}
	if v.k != kArray {
		c.fail("", "structure", "type", fmt.Sprintf("%s must be an array", f.key))
		c.value(v, el, ti)
		return 1
	}
	if len(v.items) == 0 {
		c.fail("", "structure", "json", "empty array is not allowed")
		return 0
	}
	cnt := 0
	for i, it := range v.items {
		m := c.pushIndex(i)
		if it.k == kNull {
			if nullAt(parent.get("_"+f.key), i) {
				c.fail("", "structure", "json", "null is not allowed")
			} else {
				cnt++
			}
		} else {
			c.value(it, el, ti)
			cnt++
		}
		c.pop(m)
	}
	return cnt
}

// nullAt reports whether item i of the companion array x is missing or null:
// a null in a repeating primitive or its _name array needs a partner.
func nullAt(x *node, i int) bool {
	return x == nil || x.k != kArray || i >= len(x.items) || x.items[i].k == kNull
}

// primitiveExtensions validates the _name companion of a primitive: an
// object with id and extension, or for a repeating element an array aligned
// with the values, null where a value has no extension.
func (c *vctx) primitiveExtensions(v *node, el *element, values *node) int {
	elem := c.v.types["Element"]
	check := func(x *node) {
		if elem != nil {
			c.object(x, elem.root, false)
			c.invariants(nil, x, elem.root.invs)
		}
	}
	switch {
	case v.k == kNull:
		c.fail("", "structure", "json", "null is not allowed")
	case el.array:
		if v.k != kArray {
			c.fail("", "structure", "type", "must be an array aligned with the values")
			return 0
		}
		if len(v.items) == 0 {
			c.fail("", "structure", "json", "empty array is not allowed")
			return 0
		}
		if values != nil && values.k == kArray && len(values.items) != len(v.items) {
			c.fail("", "structure", "json", "must have as many items as the values it extends")
		}
		cnt := 0
		for i, it := range v.items {
			m := c.pushIndex(i)
			if it.k == kNull {
				if nullAt(values, i) {
					c.fail("", "structure", "json", "null is not allowed")
				}
			} else {
				cnt++
				check(it)
			}
			c.pop(m)
		}
		return cnt
	default:
		check(v)
		return 1
	}
	return 0
}

// value validates one value (at the current location) of element el with
// its type number ti.
func (c *vctx) value(n *node, el *element, ti int) {
	var t *typeRef
	code := ""
	if ti < len(el.types) {
		t = &el.types[ti]
		code = t.code
	}
	switch {
	case t != nil && t.prim != kNone:
		if n.k != t.prim {
			c.fail("", "structure", "type", fmt.Sprintf("must be a JSON %s (FHIR %s), not a %s", t.prim, code, n.k))
			return
		}
		if msg := checkPrimitive(code, t.prim, n); msg != "" {
			c.fail("", "value", "format", msg)
			return
		}
		if el.maxLength > 0 && n.k == kString && utf8.RuneCountInString(n.s) > el.maxLength {
			c.fail("", "value", "format", fmt.Sprintf("is longer than %d characters", el.maxLength))
		}
		for _, inv := range el.invs {
			inv.fn(c, n)
		}
	case code == "Resource" || (t != nil && t.def != nil && t.def.kind == kindResource):
		if code != "Resource" && n.k == kObject && n.str("resourceType") != code && n.str("resourceType") != "" {
			c.fail("", "structure", "resource-type", fmt.Sprintf("must be a %s, not a %s", code, n.str("resourceType")))
		}
		var extra []string
		if t != nil {
			extra = t.profiles
		}
		c.resource(n, el.name == "contained", extra)
		return
	default:
		if n.k != kObject {
			c.fail("", "structure", "type", fmt.Sprintf("must be a JSON object (%s), not a %s", code, n.k))
			return
		}
		h := el.holder(ti)
		var extDef *structDef
		if code == "Extension" {
			// an extension with a known definition: when the element says no
			// more than "Extension", that definition (complete, as link makes
			// it) replaces the base one; otherwise both apply
			if ext := c.v.byURL[n.str("url")]; ext != nil && ext.profile && ext.typ == "Extension" && (t == nil || ext != t.def) {
				extDef = ext
				if t != nil && t.base != nil && h == t.base.root {
					h = nil
				}
			}
		}
		if h != nil {
			c.object(n, h, false)
		}
		ran := make([]string, 0, 8)
		ran = c.invariants(ran, n, el.invs)
		if t != nil && t.def != nil {
			ran = c.invariants(ran, n, t.def.root.invs)
			if t.base != nil {
				ran = c.invariants(ran, n, t.base.root.invs)
			}
		}
		if extDef != nil {
			c.object(n, extDef.root, false)
			c.invariants(ran, n, extDef.root.invs)
		}
		if code == "Reference" {
			c.reference(n, t)
		}
	}
	if el.fixed != nil && !equalJSON(n, el.fixed) {
		c.fail("", "value", "fixed", "must be exactly "+string(appendJSON(nil, el.fixed)))
	}
	if el.pattern != nil && !includesJSON(n, el.pattern) {
		c.fail("", "value", "pattern", "must match the pattern "+string(appendJSON(nil, el.pattern)))
	}
	if el.vs != nil {
		c.binding(n, el, code)
	}
}

// binding checks a value against its required value set.
func (c *vctx) binding(n *node, el *element, code string) {
	vs := el.vs
	switch code {
	case "code", "string", "uri":
		if !vs.has("", n.s) {
			c.fail("", "code-invalid", "binding", fmt.Sprintf("code %q is not in the required value set %s", n.s, vs.url))
		}
	case "Coding":
		if cd := n.str("code"); cd != "" && !vs.has(n.str("system"), cd) {
			c.fail("", "code-invalid", "binding", fmt.Sprintf("code %s is not in the required value set %s", sysCode(n), vs.url))
		}
	case "CodeableConcept":
		codings := n.list("coding")
		if len(codings) == 0 {
			return
		}
		var bad []string
		for _, cd := range codings {
			if cd.str("code") == "" {
				continue
			}
			if vs.has(cd.str("system"), cd.str("code")) {
				return
			}
			bad = append(bad, sysCode(cd))
		}
		if len(bad) > 0 {
			c.fail("", "code-invalid", "binding", fmt.Sprintf("none of the codes %s is in the required value set %s", strings.Join(bad, ", "), vs.url))
		}
	}
}

func sysCode(n *node) string {
	if s := n.str("system"); s != "" {
		return s + "|" + n.str("code")
	}
	return n.str("code")
}

// reference checks the target type of a literal reference and, inside a
// message Bundle, records it for resolution.
func (c *vctx) reference(n *node, t *typeRef) {
	ref := n.str("reference")
	if ref == "" || ref[0] == '#' {
		return
	}
	if rt := c.refType(ref); rt != "" && t != nil && !c.targetAllowed(t, rt) {
		c.fail("reference", "structure", "reference-type", fmt.Sprintf("refers to a %s; allowed: %s", rt, targetNames(t)))
	}
	for i := len(c.frames) - 1; i >= 0; i-- {
		if b := c.frames[i].bundle; b != nil {
			if b.message {
				// the resource that holds the reference is frames[i+1] or deeper;
				// its Bundle entry's fullUrl is the base for relative references
				base := ""
				if i+1 < len(c.frames) {
					base = c.frames[i+1].fullURL
				}
				b.refs = append(b.refs, pendingRef{ref: ref, loc: c.at("reference"), t: t, base: base})
			}
			break
		}
	}
}

// refType returns the resource type that a literal reference names, or ""
// when it names none (urn:uuid:, urn:oid:, other URLs).
func (c *vctx) refType(ref string) string {
	ref = stripHistory(ref)
	if i := strings.IndexByte(ref, '?'); i >= 0 {
		ref = ref[:i]
		if c.v.knownTypes[ref] {
			return ref
		}
		return ""
	}
	if strings.Contains(ref, ":") && !strings.HasPrefix(ref, "http://") && !strings.HasPrefix(ref, "https://") {
		return ""
	}
	end := strings.LastIndexByte(ref, '/')
	if end <= 0 {
		return ""
	}
	typ := ref[strings.LastIndexByte(ref[:end], '/')+1 : end]
	if c.v.knownTypes[typ] {
		return typ
	}
	return ""
}

func (c *vctx) targetAllowed(t *typeRef, rt string) bool {
	if len(t.targets) == 0 {
		return true
	}
	for _, u := range t.targets {
		if u == hl7SD+"Resource" || u == hl7SD+rt {
			return true
		}
		if sd := c.v.byURL[u]; sd != nil {
			if sd.typ == rt {
				return true
			}
			continue
		}
		if !strings.HasPrefix(u, hl7SD) {
			return true // a profile we do not know: cannot tell its type
		}
	}
	return false
}

func targetNames(t *typeRef) string {
	names := make([]string, len(t.targets))
	for i, u := range t.targets {
		names[i] = strings.TrimPrefix(u, hl7SD)
	}
	return strings.Join(names, ", ")
}
