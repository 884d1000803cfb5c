package fhirvalidator

// valueSet is the expansion of a value set bound with strength required:
// its codes by system. Only value sets that can be enumerated from the
// definitions are expanded (codes listed in the value set, or every code of
// a CodeSystem that is present and complete); the rest (SNOMED CT, BCP-47
// languages, MIME types, …) are not checked, as no local list can decide them.
type valueSet struct {
	url     string
	systems map[string]map[string]struct{}
}

// has reports whether system|code is in the value set; an empty system
// matches a code of any system (the case of a plain code element).
func (vs *valueSet) has(system, code string) bool {
	if system != "" {
		_, ok := vs.systems[system][code]
		return ok
	}
	for _, codes := range vs.systems {
		if _, ok := codes[code]; ok {
			return true
		}
	}
	return false
}

func (vs *valueSet) add(system, code string) {
	if vs.systems == nil {
		vs.systems = map[string]map[string]struct{}{}
	}
	m := vs.systems[system]
	if m == nil {
		m = map[string]struct{}{}
		vs.systems[system] = m
	}
	m[code] = struct{}{}
}

// expandRequired expands every value set that an element binds with
// strength required and stores the enumerable ones in v.vsets.
func expandRequired(v *Validator, vsets, csets map[string]*node) {
	x := &expander{vsets: vsets, csets: csets, memo: map[string]*valueSet{}, busy: map[string]bool{}}
	for _, sd := range v.defs {
		for _, e := range sd.elems {
			if vs := x.expand(e.binding); e.binding != "" && vs != nil {
				v.vsets[e.binding] = vs
			}
		}
	}
}

type expander struct {
	vsets, csets map[string]*node
	memo         map[string]*valueSet
	busy         map[string]bool
}

func (x *expander) expand(url string) *valueSet {
	url = stripVersion(url)
	if vs, ok := x.memo[url]; ok {
		return vs
	}
	if x.busy[url] {
		return nil
	}
	x.busy[url] = true
	defer delete(x.busy, url)
	var vs *valueSet
	if n := x.vsets[url]; n != nil {
		vs = x.expandNode(url, n)
	}
	x.memo[url] = vs
	return vs
}

func (x *expander) expandNode(url string, n *node) *valueSet {
	compose := n.get("compose")
	if compose == nil {
		// a value set published as an expansion only
		exp := n.get("expansion")
		if exp == nil || exp.get("contains") == nil {
			return nil
		}
		vs := &valueSet{url: url}
		var walk func(items []*node)
		walk = func(items []*node) {
			for _, c := range items {
				if c.str("code") != "" {
					vs.add(c.str("system"), c.str("code"))
				}
				walk(c.list("contains"))
			}
		}
		walk(exp.list("contains"))
		return vs
	}
	vs := &valueSet{url: url}
	for _, inc := range compose.list("include") {
		part := x.part(inc)
		if part == nil {
			return nil
		}
		for sys, codes := range part.systems {
			for c := range codes {
				vs.add(sys, c)
			}
		}
	}
	for _, exc := range compose.list("exclude") {
		part := x.part(exc)
		if part == nil {
			return nil // cannot tell what is excluded, so cannot enumerate
		}
		for sys, codes := range part.systems {
			for c := range codes {
				delete(vs.systems[sys], c)
			}
		}
	}
	if len(vs.systems) == 0 {
		return nil
	}
	return vs
}

// part expands one include or exclude clause, or returns nil when it cannot.
func (x *expander) part(inc *node) *valueSet {
	var fromSystem *valueSet
	if sys := inc.str("system"); sys != "" {
		fromSystem = &valueSet{}
		switch {
		case inc.get("concept") != nil:
			for _, c := range inc.list("concept") {
				fromSystem.add(sys, c.str("code"))
			}
		case inc.get("filter") != nil:
			cs := x.csets[sys]
			if cs == nil {
				return nil
			}
			for _, f := range inc.list("filter") {
				op := f.str("op")
				if f.str("property") != "concept" || (op != "is-a" && op != "descendent-of") {
					return nil
				}
				root := findConcept(cs.list("concept"), f.str("value"))
				if root == nil {
					return nil
				}
				if op == "is-a" {
					fromSystem.add(sys, root.str("code"))
				}
				addConcepts(fromSystem, sys, root.list("concept"))
			}
		default:
			cs := x.csets[sys]
			if cs == nil || (cs.str("content") != "" && cs.str("content") != "complete") {
				return nil
			}
			addConcepts(fromSystem, sys, cs.list("concept"))
			if len(fromSystem.systems) == 0 {
				return nil
			}
		}
	}
	var result *valueSet
	for _, ref := range inc.list("valueSet") {
		other := x.expand(ref.s)
		if other == nil {
			return nil
		}
		if result == nil {
			result = other
			continue
		}
		result = intersect(result, other)
	}
	switch {
	case result == nil && fromSystem == nil:
		return nil
	case result == nil:
		return fromSystem
	case fromSystem == nil:
		return result
	default:
		return intersect(result, fromSystem)
	}
}

func intersect(a, b *valueSet) *valueSet {
	out := &valueSet{url: a.url}
	for sys, codes := range a.systems {
		for c := range codes {
			if b.has(sys, c) {
				out.add(sys, c)
			}
		}
	}
	return out
}

func addConcepts(vs *valueSet, sys string, concepts []*node) {
	for _, c := range concepts {
		if code := c.str("code"); code != "" {
			vs.add(sys, code)
		}
		addConcepts(vs, sys, c.list("concept"))
	}
}

func findConcept(concepts []*node, code string) *node {
	for _, c := range concepts {
		if c.str("code") == code {
			return c
		}
		if f := findConcept(c.list("concept"), code); f != nil {
			return f
		}
	}
	return nil
}
