package fhirvalidator

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
)

// The rule format is the compiled model written as text: what validation
// needs of each StructureDefinition (element ids, cardinalities, types,
// fixed and pattern values, required bindings, slicing, invariant keys) and
// the expansions of the required value sets, and nothing else (no
// documentation, no mappings, no narrative). It serves two purposes:
//
//   - the built-in rule set (builtin.rules, embedded), written for the
//     resources the gateway emits, so that the gateway checks its output
//     without any definition files;
//   - a start-up cache of a definitions directory (`WriteRules`): R4 with
//     UK Core takes 570 KB instead of 50 MB of JSON, and about 6 ms to read
//     instead of 300 ms or more.
//
// It is line-oriented and tab-separated:
//
//	fhir-rules 1
//	resources <every R4 resource type name, space-separated>
//	sd <url> <type> <kind> [profile] [abstract] [name=<name>]
//	<element id> <min>..<max> [a] [t=<types>] [fixed=<json>] [pattern=<json>]
//	    [bind=<value set>] [slicing=<rules> <ordered|unordered> <type>@<path>...]
//	    [slice=<name>] [inv=<key>,...] [ref=<element id>] [maxlen=<n>]
//	vs <url>
//	c <system> <code> <code> ...
//
// An element line belongs to the sd line above it; "a" marks a JSON array.
// Types are separated by "|"; a type is code{profile,...}(target,...), and a
// canonical under http://hl7.org/fhir/StructureDefinition/ is written by its
// last segment.

const rulesHeader = "fhir-rules 1"

// WriteRules writes the validator's compiled definitions in the rule format,
// which Open reads back into an equivalent validator.
func (v *Validator) WriteRules(w io.Writer) error {
	return writeRules(w, v, v.defs)
}

func writeRules(w io.Writer, v *Validator, defs []*structDef) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s\nresources\t%s\n", rulesHeader, strings.Join(slices.Sorted(maps.Keys(v.knownTypes)), " "))
	var bindings []string
	for _, sd := range defs {
		fmt.Fprintf(bw, "sd\t%s\t%s\t%s", sd.url, sd.typ, kindNames[sd.kind])
		if sd.profile {
			bw.WriteString("\tprofile")
		}
		if sd.abstract {
			bw.WriteString("\tabstract")
		}
		if sd.name != "" {
			bw.WriteString("\tname=" + sd.name)
		}
		bw.WriteString("\n")
		for _, e := range sd.elems {
			writeElement(bw, e)
			if e.binding != "" && v.vsets[e.binding] != nil && !slices.Contains(bindings, e.binding) {
				bindings = append(bindings, e.binding)
			}
		}
	}
	slices.Sort(bindings)
	for _, u := range bindings {
		vs := v.vsets[u]
		fmt.Fprintf(bw, "vs\t%s\n", u)
		for _, sys := range slices.Sorted(maps.Keys(vs.systems)) {
			codes := slices.DeleteFunc(slices.Sorted(maps.Keys(vs.systems[sys])), func(c string) bool { return strings.ContainsAny(c, "\t\n\r") })
			fmt.Fprintf(bw, "c\t%s\t%s\n", sys, strings.Join(codes, "\t"))
		}
	}
	return bw.Flush()
}

func writeElement(w *bufio.Writer, e *element) {
	fmt.Fprintf(w, "%s\t%s", e.id, e.card())
	if e.array {
		w.WriteString("\ta")
	}
	var types []string
	for _, t := range e.types {
		s := t.code
		if len(t.profiles) > 0 {
			s += "{" + shortURLs(t.profiles) + "}"
		}
		if len(t.targets) > 0 {
			s += "(" + shortURLs(t.targets) + ")"
		}
		types = append(types, s)
	}
	attr := func(key, val string) {
		if val != "" {
			w.WriteString("\t" + key + "=" + val)
		}
	}
	attr("t", strings.Join(types, "|"))
	if e.fixed != nil {
		attr("fixed", string(appendJSON(nil, e.fixed)))
	}
	if e.pattern != nil {
		attr("pattern", string(appendJSON(nil, e.pattern)))
	}
	attr("bind", e.binding)
	if s := e.slicing; s != nil {
		val := s.rules + map[bool]string{true: " ordered", false: " unordered"}[s.ordered]
		for _, d := range s.discs {
			val += " " + d.typ + "@" + d.path
		}
		attr("slicing", val)
	}
	attr("slice", e.sliceName)
	attr("inv", strings.Join(e.invKeys, ","))
	attr("ref", e.contentRef)
	if e.maxLength > 0 {
		attr("maxlen", strconv.Itoa(e.maxLength))
	}
	w.WriteString("\n")
}

// shortURLs writes canonicals under hl7SD by their last segment.
func shortURLs(urls []string) string {
	short := make([]string, len(urls))
	for i, u := range urls {
		short[i] = strings.TrimPrefix(u, hl7SD)
	}
	return strings.Join(short, ",")
}

func expandURL(s string) string {
	if strings.Contains(s, ":") {
		return s
	}
	return hl7SD + s
}

// Open loads definitions from path: a directory of FHIR definitions (Load)
// or a file in the rule format, such as a cache written by WriteRules.
func Open(path string) (*Validator, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("fhirvalidator: %w", err)
	}
	if st.IsDir() {
		return Load(path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fhirvalidator: %w", err)
	}
	return parseRules(data, path)
}

func parseRules(data []byte, source string) (*Validator, error) {
	v := newValidator(source)
	var sd *structDef
	var vs *valueSet
	lineNo := 0
	fail := func(format string, args ...any) (*Validator, error) {
		return nil, fmt.Errorf("fhirvalidator: %s:%d: %s", source, lineNo, fmt.Sprintf(format, args...))
	}
	if len(data) == 0 {
		return fail("empty rules file")
	}
	for i, line := range strings.Split(string(data), "\n") {
		lineNo = i + 1
		if i == 0 && line != rulesHeader {
			return fail("not a rules file (want %q)", rulesHeader)
		}
		if i == 0 || line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Split(line, "\t")
		switch fields[0] {
		case "resources":
			if len(fields) > 1 {
				for _, t := range strings.Fields(fields[1]) {
					v.knownTypes[t] = true
				}
			}
		case "sd":
			if len(fields) < 4 {
				return fail("sd needs url, type and kind")
			}
			if sd != nil {
				v.add(sd)
			}
			vs = nil
			sd = &structDef{url: fields[1], typ: fields[2]}
			k := slices.Index(kindNames[:], fields[3])
			if k < 0 {
				return fail("unknown kind %q", fields[3])
			}
			sd.kind = sdKind(k)
			for _, f := range fields[4:] {
				switch {
				case f == "profile":
					sd.profile = true
				case f == "abstract":
					sd.abstract = true
				case strings.HasPrefix(f, "name="):
					sd.name = f[5:]
				}
			}
		case "vs":
			if len(fields) != 2 {
				return fail("vs needs a url")
			}
			if sd != nil {
				v.add(sd)
				sd = nil
			}
			vs = &valueSet{url: fields[1]}
			v.vsets[vs.url] = vs
		case "c":
			if vs == nil || len(fields) < 2 {
				return fail("c outside a vs")
			}
			for _, code := range fields[2:] {
				vs.add(fields[1], code)
			}
		default:
			if sd == nil {
				return fail("element outside an sd")
			}
			e, err := parseElement(fields)
			if err != nil {
				return fail("%v", err)
			}
			sd.elems = append(sd.elems, e)
		}
	}
	if sd != nil {
		v.add(sd)
	}
	if len(v.types) == 0 {
		return fail("no definitions")
	}
	if err := v.link(); err != nil {
		return nil, fmt.Errorf("fhirvalidator: %s: %w", source, err)
	}
	return v, nil
}

func parseElement(fields []string) (*element, error) {
	if len(fields) < 2 {
		return nil, errors.New("element needs an id and a cardinality")
	}
	e := &element{id: fields[0]}
	lo, hi, ok := strings.Cut(fields[1], "..")
	if !ok {
		return nil, fmt.Errorf("bad cardinality %q", fields[1])
	}
	var err error
	if e.min, err = strconv.Atoi(lo); err != nil {
		return nil, fmt.Errorf("bad cardinality %q", fields[1])
	}
	e.max = parseMax(hi)
	for _, f := range fields[2:] {
		key, val, _ := strings.Cut(f, "=")
		switch key {
		case "a":
			e.array = true
		case "t":
			for _, ts := range strings.Split(val, "|") {
				var t typeRef
				t.code, ts, _ = strings.Cut(ts, "{")
				if i := strings.IndexByte(t.code, '('); i >= 0 {
					t.code, ts = t.code[:i], t.code[i:]
				} else if ts != "" {
					var profs string
					profs, ts, _ = strings.Cut(ts, "}")
					for _, p := range strings.Split(profs, ",") {
						t.profiles = append(t.profiles, expandURL(p))
					}
				}
				if strings.HasPrefix(ts, "(") && strings.HasSuffix(ts, ")") {
					for _, p := range strings.Split(ts[1:len(ts)-1], ",") {
						t.targets = append(t.targets, expandURL(p))
					}
				}
				e.types = append(e.types, t)
			}
		case "fixed", "pattern":
			n, _, err := parseJSON([]byte(val))
			if err != nil {
				return nil, fmt.Errorf("%s of %s: %v", key, e.id, err)
			}
			if key == "fixed" {
				e.fixed = n
			} else {
				e.pattern = n
			}
		case "bind":
			e.binding = val
		case "slicing":
			parts := strings.Split(val, " ")
			if len(parts) < 2 {
				return nil, fmt.Errorf("bad slicing of %s", e.id)
			}
			s := &slicing{rules: parts[0], ordered: parts[1] == "ordered"}
			for _, d := range parts[2:] {
				typ, path, _ := strings.Cut(d, "@")
				s.discs = append(s.discs, discriminator{typ: typ, path: path})
			}
			e.slicing = s
		case "slice":
			e.sliceName = val
		case "inv":
			e.invKeys = strings.Split(val, ",")
		case "ref":
			e.contentRef = val
		case "maxlen":
			e.maxLength, _ = strconv.Atoi(val)
		default:
			return nil, fmt.Errorf("unknown attribute %q of %s", key, e.id)
		}
	}
	e.path = pathOf(e.id)
	e.setName()
	return e, nil
}

// pathOf removes the slice names from an element id.
func pathOf(id string) string {
	segs := strings.Split(id, ".")
	for i, seg := range segs {
		segs[i], _, _ = strings.Cut(seg, ":")
	}
	return strings.Join(segs, ".")
}
