package fhirvalidator

import (
	"fmt"
	"sort"
	"strings"
)

// The model is the indexed in-memory form of the definitions: one structDef
// per StructureDefinition, each a tree of elements with a per-element map
// from JSON property name to child. Both sources (FHIR definition files and
// the compact rule text of rules.go) fill the same flat element lists, and
// link() builds the trees once, so validation never decodes a definition.

// sdKind is what a StructureDefinition defines.
type sdKind uint8

const (
	kindPrimitive sdKind = iota
	kindComplex
	kindResource
)

// kindNames are the kinds as the rule format writes them (R4 adds "-type"
// to the first two).
var kindNames = [...]string{"primitive", "complex", "resource"}

// structDef is one compiled StructureDefinition: a base type or a profile.
type structDef struct {
	url      string
	name     string
	typ      string // the type it defines or constrains, e.g. "Patient"
	kind     sdKind
	profile  bool // derivation = constraint
	abstract bool
	elems    []*element // snapshot order; elems[0] is the root
	root     *element
}

// typeRef is one allowed type of an element.
type typeRef struct {
	code     string   // FHIR type code, e.g. "string", "Reference", "Patient"
	profiles []string // type.profile canonicals (version stripped)
	targets  []string // targetProfile canonicals of a Reference or canonical
	// def is the definition that describes values of this type: the first
	// loaded profile in profiles, else the base type; base is the base
	// type; prim is the JSON kind of a primitive type, kNone for others.
	// Set by link.
	def  *structDef
	base *structDef
	prim kind
}

// discriminator is one slicing discriminator.
type discriminator struct {
	typ  string // value, pattern, exists, type, profile
	path string
}

// slicing is an element's slicing rules.
type slicing struct {
	discs   []discriminator
	rules   string // open, closed, openAtEnd
	ordered bool
}

// element is one compiled ElementDefinition.
type element struct {
	id         string
	path       string
	name       string // JSON name; for a choice, the prefix ("value" of value[x])
	min        int
	max        int // -1 for *
	array      bool
	choice     bool
	types      []typeRef
	fixed      *node
	pattern    *node
	binding    string // required value set canonical (version stripped), or ""
	slicing    *slicing
	sliceName  string
	invKeys    []string // constraint keys that have a Go implementation
	contentRef string   // id of the element whose children this one reuses
	maxLength  int

	// Filled by link.
	children []*element
	index    map[string]childRef
	slices   []*element
	invs     []invariant
	vs       *valueSet
	ref      *element // resolved contentRef
	entry    bool     // Bundle.entry, whose fullUrl the validator notes
}

// childRef is what a JSON property name resolves to.
type childRef struct {
	el  *element
	pos int // position in the parent's children
	typ int // index into el.types (the chosen type of a choice)
}

// Validator checks FHIR R4 JSON against a set of compiled definitions. It is
// safe for concurrent use: validation never mutates it.
type Validator struct {
	// source says where the definitions came from, for messages.
	source string
	types  map[string]*structDef // base definitions by type name
	byURL  map[string]*structDef // every definition by canonical URL
	vsets  map[string]*valueSet  // expanded required value sets by URL
	defs   []*structDef          // in load order, for WriteRules
	// knownTypes are all R4 resource type names, including those a
	// built-in rule set does not define (to tell "not covered" from
	// "unknown", and to read the type in a reference).
	knownTypes map[string]bool
}

func newValidator(source string) *Validator {
	return &Validator{
		source: source,
		types:  map[string]*structDef{},
		byURL:  map[string]*structDef{},
		vsets:  map[string]*valueSet{},

		knownTypes: map[string]bool{},
	}
}

// add registers a definition; the first one with a URL wins.
func (v *Validator) add(sd *structDef) {
	if sd.url == "" || v.byURL[sd.url] != nil || len(sd.elems) == 0 {
		return
	}
	v.byURL[sd.url] = sd
	if !sd.profile {
		if v.types[sd.typ] == nil {
			v.types[sd.typ] = sd
		}
		if sd.kind == kindResource && !sd.abstract {
			v.knownTypes[sd.typ] = true
		}
	}
	v.defs = append(v.defs, sd)
}

const hl7SD = "http://hl7.org/fhir/StructureDefinition/"

// typeDef returns the definition for values of type code under the given
// type profiles.
func (v *Validator) typeDef(code string, profiles []string) *structDef {
	for _, p := range profiles {
		if sd := v.byURL[p]; sd != nil && sd.typ == code {
			return sd
		}
	}
	if sd := v.types[code]; sd != nil {
		return sd
	}
	return v.byURL[code]
}

// link builds every definition's element tree and resolves types, value sets
// and invariants. It runs once, after all definitions are added.
func (v *Validator) link() error {
	for _, sd := range v.defs {
		if err := sd.linkTree(); err != nil {
			return err
		}
	}
	for _, sd := range v.defs {
		for _, e := range sd.elems {
			for i := range e.types {
				t := &e.types[i]
				t.def = v.typeDef(t.code, t.profiles)
				t.base = v.types[t.code]
				t.prim = kNone
				if k, ok := primitiveJSON[t.code]; ok {
					t.prim = k
				}
			}
			if e.binding != "" {
				e.vs = v.vsets[e.binding]
			}
			e.invs = e.invs[:0]
			for _, k := range e.invKeys {
				if f := invariants[k]; f != nil {
					e.invs = append(e.invs, invariant{k, f})
				}
			}
		}
		if !sd.profile && sd.root != nil {
			sd.root.invs = append(sd.root.invs, typeRules[sd.typ]...)
		}
	}
	for _, sd := range v.defs {
		// A profile's element that leaves children out inherits them from
		// the same element of the base definition, or else from its type.
		var basePath map[string]*element
		if base := v.types[sd.typ]; sd.profile && base != nil && base != sd {
			basePath = make(map[string]*element, len(base.elems))
			for _, b := range base.elems {
				if b.sliceName == "" {
					basePath[b.path] = b
				}
			}
		}
		for _, e := range sd.elems {
			e.entry = e.path == "Bundle.entry"
			if b := basePath[e.path]; b != nil && len(b.children) > 0 {
				e.completeFrom(b)
			} else {
				e.complete()
			}
			e.buildIndex()
		}
	}
	return nil
}

// complete adds to an element that spells out some of its children the
// children of its type that it leaves out. A snapshot lists every child of
// an element it constrains, but generated snapshots (such as the UK Core
// ones made by fhircheck's snapgen) list only the constrained ones, e.g. the
// url of an extension slice; the rest keep their base definition.
func (e *element) complete() {
	if len(e.children) == 0 || len(e.types) == 0 {
		return
	}
	code := e.types[0].code
	for _, t := range e.types[1:] {
		if t.code != code {
			return
		}
	}
	if def := e.types[0].def; def != nil {
		e.completeFrom(def.root)
	}
}

// completeFrom adds the children of base that e does not define itself.
func (e *element) completeFrom(base *element) {
	if base == e {
		return
	}
	have := make(map[string]bool, len(e.children))
	for _, c := range e.children {
		have[c.name] = true
	}
	for _, c := range base.children {
		if !have[c.name] {
			e.children = append(e.children, c)
		}
	}
}

func (e *element) buildIndex() {
	if len(e.children) == 0 {
		return
	}
	e.index = make(map[string]childRef, len(e.children)+4)
	for pos, c := range e.children {
		if !c.choice {
			e.index[c.name] = childRef{c, pos, 0}
			continue
		}
		for ti, t := range c.types {
			e.index[c.name+upperFirst(t.code)] = childRef{c, pos, ti}
		}
	}
}

// linkTree builds the tree of one definition from its flat element list.
func (sd *structDef) linkTree() error {
	byID := make(map[string]*element, len(sd.elems))
	sd.root = sd.elems[0]
	for _, e := range sd.elems {
		e.children, e.slices, e.index = nil, nil, nil
		if _, dup := byID[e.id]; dup {
			return fmt.Errorf("%s: duplicate element id %s", sd.url, e.id)
		}
		byID[e.id] = e
		if e == sd.root {
			continue
		}
		if e.sliceName != "" && strings.HasSuffix(e.id, ":"+e.sliceName) {
			if base := byID[strings.TrimSuffix(e.id, ":"+e.sliceName)]; base != nil {
				base.slices = append(base.slices, e)
			}
			continue
		}
		dot := strings.LastIndexByte(e.id, '.')
		if dot < 0 {
			continue
		}
		parent := byID[e.id[:dot]]
		if parent == nil {
			continue // a generated snapshot may leave out a parent; ignore the orphan
		}
		parent.children = append(parent.children, e)
	}
	for _, e := range sd.elems {
		if e.contentRef == "" {
			continue
		}
		e.ref = byID[e.contentRef]
		if e.ref == nil {
			// a content reference may name the path rather than the id
			for _, o := range sd.elems {
				if o.path == e.contentRef && o.sliceName == "" {
					e.ref = o
					break
				}
			}
		}
	}
	return nil
}

// setName derives the JSON name of the element from its path.
func (e *element) setName() {
	e.name = e.path[strings.LastIndexByte(e.path, '.')+1:]
	e.name, e.choice = strings.CutSuffix(e.name, "[x]")
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// holder returns the element whose children describe an object value of
// element e with its type number ti: e itself when the definition spells
// out the children, else the referenced element, else the type's root.
func (e *element) holder(ti int) *element {
	if len(e.children) > 0 {
		return e
	}
	if e.ref != nil {
		return e.ref
	}
	if ti < len(e.types) && e.types[ti].def != nil {
		return e.types[ti].def.root
	}
	return nil
}

// ResourceTypes lists the resource types the validator has definitions for;
// the gateway uses it to say what a built-in rule set covers.
func (v *Validator) ResourceTypes() []string {
	var out []string
	for t, sd := range v.types {
		if sd.kind == kindResource && !sd.abstract {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// stripVersion removes a "|version" suffix from a canonical.
func stripVersion(u string) string {
	if i := strings.IndexByte(u, '|'); i >= 0 {
		return u[:i]
	}
	return u
}
