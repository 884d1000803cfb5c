package fhirvalidator

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Load reads FHIR definitions from one or more directories and compiles them
// once into the validator's indexed form. A directory may hold definition
// Bundles (R4's profiles-types.json, profiles-resources.json, valuesets.json),
// single StructureDefinition, ValueSet and CodeSystem files (UK Core
// snapshots), or FHIR NPM package folders; subdirectories are searched too.
// Other resources in those files (examples, CapabilityStatements) are
// ignored. StructureDefinitions without a snapshot are skipped: validation
// needs snapshots.
func Load(dirs ...string) (*Validator, error) {
	if len(dirs) == 0 {
		return nil, errors.New("fhirvalidator: no definitions directory given")
	}
	var files []string
	for _, dir := range dirs {
		st, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("fhirvalidator: %w", err)
		}
		if !st.IsDir() {
			files = append(files, dir)
			continue
		}
		err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "node_modules" || (strings.HasPrefix(d.Name(), ".") && path != dir) {
					return filepath.SkipDir
				}
				return nil
			}
			name := d.Name()
			if strings.HasSuffix(name, ".json") && name != "package.json" && !strings.HasPrefix(name, ".") {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("fhirvalidator: %w", err)
		}
	}
	sort.Strings(files)
	col, err := collect(files)
	if err != nil {
		return nil, err
	}
	v := newValidator(strings.Join(dirs, string(os.PathListSeparator)))
	for _, sd := range col.sds {
		v.add(sd)
	}
	if len(v.types) == 0 {
		return nil, fmt.Errorf("fhirvalidator: no StructureDefinitions with a snapshot in %s", v.source)
	}
	expandRequired(v, byURL(col.vs), byURL(col.cs))
	if err := v.link(); err != nil {
		return nil, fmt.Errorf("fhirvalidator: %w", err)
	}
	return v, nil
}

// collection is what the definition files hold, in file order.
type collection struct {
	sds    []*structDef
	vs, cs []*node // ValueSets and CodeSystems
	err    error
}

// collect parses the files in parallel (the R4 definitions are 50 MB of
// JSON) and compiles their StructureDefinitions.
func collect(files []string) (*collection, error) {
	results := make([]collection, len(files))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, file := range files {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			results[i] = readDefinitions(file)
		})
	}
	wg.Wait()
	col := &collection{}
	for _, r := range results {
		if r.err != nil {
			return nil, fmt.Errorf("fhirvalidator: %w", r.err)
		}
		col.sds = append(col.sds, r.sds...)
		col.vs = append(col.vs, r.vs...)
		col.cs = append(col.cs, r.cs...)
	}
	return col, nil
}

// readDefinitions reads the definitions of one file. A file that is not
// JSON is skipped: definitions folders hold other files (indexes) too.
func readDefinitions(file string) (r collection) {
	data, err := os.ReadFile(file)
	if err != nil {
		return collection{err: err}
	}
	root, _, err := parseJSON(data)
	if err != nil {
		return r
	}
	var visit func(n *node)
	visit = func(n *node) {
		switch n.str("resourceType") {
		case "Bundle":
			for _, e := range n.list("entry") {
				if res := e.get("resource"); res != nil {
					visit(res)
				}
			}
		case "StructureDefinition":
			sd, err := compileSD(n)
			if err != nil {
				r.err = fmt.Errorf("%s: %w", file, err)
			} else if sd != nil {
				r.sds = append(r.sds, sd)
			}
		case "ValueSet":
			r.vs = append(r.vs, n)
		case "CodeSystem":
			r.cs = append(r.cs, n)
		}
	}
	visit(root)
	return r
}

// compileSD turns a StructureDefinition with a snapshot into a structDef. It
// returns nil for definitions the validator does not use (logical models,
// definitions without a snapshot).
func compileSD(n *node) (*structDef, error) {
	sd := &structDef{
		url:      stripVersion(n.str("url")),
		name:     n.str("name"),
		typ:      n.str("type"),
		profile:  n.str("derivation") == "constraint",
		abstract: n.get("abstract") != nil && n.get("abstract").s == "true",
	}
	k := slices.Index(kindNames[:], strings.TrimSuffix(n.str("kind"), "-type"))
	snap := n.get("snapshot")
	if k < 0 || snap == nil {
		return nil, nil
	}
	sd.kind = sdKind(k)
	for i, en := range snap.list("element") {
		e, err := compileElement(en, i == 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sd.url, err)
		}
		sd.elems = append(sd.elems, e)
	}
	if len(sd.elems) == 0 {
		return nil, nil
	}
	if sd.kind == kindResource {
		// Resource.id is an id; R4's snapshots give its type as a plain
		// string (the FHIRPath system type), which would let any text pass.
		for _, e := range sd.elems {
			if e.path == sd.elems[0].path+".id" && len(e.types) == 1 && e.types[0].code == "string" {
				e.types[0].code = "id"
			}
		}
	}
	return sd, nil
}

func compileElement(n *node, root bool) (*element, error) {
	e := &element{id: n.str("id"), path: n.str("path"), sliceName: n.str("sliceName")}
	if e.id == "" {
		e.id = e.path
		if e.sliceName != "" {
			e.id += ":" + e.sliceName
		}
	}
	if e.path == "" {
		return nil, errors.New("element without path")
	}
	e.setName()
	if m := n.get("min"); m != nil && m.k == kNumber {
		e.min, _ = strconv.Atoi(m.s)
	}
	e.max = parseMax(n.str("max"))
	baseMax := e.max
	if b := n.get("base"); b != nil && b.str("max") != "" {
		baseMax = parseMax(b.str("max"))
	}
	e.array = !root && baseMax != 1 && baseMax != 0
	if ml := n.get("maxLength"); ml != nil && ml.k == kNumber {
		e.maxLength, _ = strconv.Atoi(ml.s)
	}
	if cr := n.str("contentReference"); cr != "" {
		e.contentRef = cr[strings.IndexByte(cr, '#')+1:]
	}
	for _, t := range n.list("type") {
		code := t.str("code")
		if strings.HasPrefix(code, "http://hl7.org/fhirpath/System.") {
			// R4 writes the type of id, url and primitive values as a
			// FHIRPath system type with the FHIR type in an extension.
			code = "string"
			for _, x := range t.list("extension") {
				if x.str("url") == hl7SD+"structuredefinition-fhir-type" {
					code = cmp.Or(x.str("valueUrl"), x.str("valueUri"), "string")
				}
			}
		}
		tr := typeRef{code: code}
		for _, p := range t.list("profile") {
			tr.profiles = append(tr.profiles, stripVersion(p.s))
		}
		for _, p := range t.list("targetProfile") {
			tr.targets = append(tr.targets, stripVersion(p.s))
		}
		e.types = append(e.types, tr)
	}
	for _, f := range n.fields {
		switch {
		case isTypedKey(f.key, "fixed"):
			e.fixed = f.val
		case isTypedKey(f.key, "pattern"):
			e.pattern = f.val
		}
	}
	if b := n.get("binding"); b != nil && b.str("strength") == "required" {
		e.binding = stripVersion(cmp.Or(b.str("valueSet"), b.str("valueSetCanonical")))
	}
	if s := n.get("slicing"); s != nil {
		sl := &slicing{rules: cmp.Or(s.str("rules"), "open"), ordered: s.get("ordered") != nil && s.get("ordered").s == "true"}
		for _, d := range s.list("discriminator") {
			sl.discs = append(sl.discs, discriminator{typ: d.str("type"), path: d.str("path")})
		}
		e.slicing = sl
	}
	for _, c := range n.list("constraint") {
		if sev := c.str("severity"); sev != "" && sev != "error" {
			continue
		}
		if k := c.str("key"); invariants[k] != nil && !slices.Contains(e.invKeys, k) {
			e.invKeys = append(e.invKeys, k)
		}
	}
	return e, nil
}

// isTypedKey reports whether key is prefix followed by a type name, as in
// fixedUri or patternCodeableConcept.
func isTypedKey(key, prefix string) bool {
	return len(key) > len(prefix) && strings.HasPrefix(key, prefix) && key[len(prefix)] >= 'A' && key[len(prefix)] <= 'Z'
}

func parseMax(s string) int {
	if s == "*" || s == "" {
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// byURL indexes resources by url; the first one with a URL wins.
func byURL(list []*node) map[string]*node {
	m := map[string]*node{}
	for _, n := range list {
		if u := n.str("url"); u != "" && m[u] == nil {
			m[u] = n
		}
	}
	return m
}
