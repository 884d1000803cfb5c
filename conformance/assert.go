package conformance

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Bundle assertions are one line each, close to FHIRPath so that a FHIR
// reader can write them without learning a language:
//
//	PATH exists               at least one value
//	PATH absent               no value
//	PATH == VALUE             at least one value, and every value is VALUE
//	PATH != VALUE             no value is VALUE (none at all passes)
//	PATH contains VALUE       some value is VALUE or, as text, contains it
//	count(PATH) == N          exactly N values
//	text 'S'                  some string, number or boolean in the Bundle contains S,
//	no text 'S'               none does (both ignore case): what must not leave
//
// PATH starts with Bundle (the Bundle itself) or a resource type (every
// entry of that type), then names elements separated by dots; a list is
// walked into as FHIRPath does, and name[N] picks the N-th item (from 0).
// VALUE is a bare word or a 'quoted' or "quoted" string; values compare as
// text (true, 42 and "42" alike).
type assertion struct {
	src   string
	op    string // exists, absent, ==, !=, contains, count, text, no-text
	path  []step
	value string
	count int
}

type step struct {
	name  string
	index int // -1: every item
}

var (
	countRe   = regexp.MustCompile(`^count\((.+)\)\s*==\s*([0-9]+)$`)
	textRe    = regexp.MustCompile(`^(no\s+)?text\s+(.+)$`)
	pathRe    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*(\[[0-9]+\])?(\.[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])?)*$`)
	segmentRe = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)(?:\[([0-9]+)\])?$`)
)

// parseAssertion reads one assertion line.
func parseAssertion(src string) (assertion, error) {
	a := assertion{src: src}
	s := strings.TrimSpace(src)
	if m := countRe.FindStringSubmatch(s); m != nil {
		p, err := parsePath(strings.TrimSpace(m[1]))
		if err != nil {
			return a, err
		}
		a.op, a.path = "count", p
		a.count, _ = strconv.Atoi(m[2])
		return a, nil
	}
	if m := textRe.FindStringSubmatch(s); m != nil {
		v, rest, err := parseValue(m[2])
		if err != nil || rest != "" || v == "" {
			return a, errors.New("write text 'S' or no text 'S' with a non-empty quoted string")
		}
		a.op, a.value = "text", v
		if m[1] != "" {
			a.op = "no-text"
		}
		return a, nil
	}
	p, rest, _ := strings.Cut(s, " ")
	path, err := parsePath(p)
	if err != nil {
		return a, err
	}
	a.path = path
	rest = strings.TrimSpace(rest)
	op, arg, _ := strings.Cut(rest, " ")
	switch op {
	case "exists", "absent":
		if strings.TrimSpace(arg) != "" {
			return a, fmt.Errorf("%s takes no value", op)
		}
		a.op = op
		return a, nil
	case "==", "!=", "contains":
		v, tail, err := parseValue(strings.TrimSpace(arg))
		if err != nil {
			return a, err
		}
		if tail != "" {
			return a, fmt.Errorf("unexpected %q after the value", tail)
		}
		a.op, a.value = op, v
		return a, nil
	}
	return a, errors.New("use PATH exists|absent|== V|!= V|contains V, count(PATH) == N, text 'S' or no text 'S'")
}

func parsePath(p string) ([]step, error) {
	if !pathRe.MatchString(p) {
		return nil, fmt.Errorf("%q is not a path such as Patient.name.family or Bundle.entry[0].resource", p)
	}
	var out []step
	for _, seg := range strings.Split(p, ".") {
		m := segmentRe.FindStringSubmatch(seg)
		st := step{name: m[1], index: -1}
		if m[2] != "" {
			st.index, _ = strconv.Atoi(m[2])
		}
		out = append(out, st)
	}
	if first := out[0].name; first != "Bundle" && (first[0] < 'A' || first[0] > 'Z') {
		return nil, fmt.Errorf("%q must start with Bundle or a resource type", p)
	}
	return out, nil
}

// parseValue reads a bare or quoted value and returns what follows it.
func parseValue(s string) (string, string, error) {
	if s == "" {
		return "", "", errors.New("a value is missing")
	}
	if q := s[0]; q == '\'' || q == '"' {
		end := strings.IndexByte(s[1:], q)
		if end < 0 {
			return "", "", errors.New("an unterminated quoted value")
		}
		return s[1 : 1+end], strings.TrimSpace(s[2+end:]), nil
	}
	if strings.ContainsAny(s, " \t") {
		return "", "", fmt.Errorf("quote a value with spaces: '%s'", s)
	}
	return s, "", nil
}

// eval checks the assertion against a decoded Bundle; the message says what
// was found, for when it fails.
func (a assertion) eval(bundle any) (bool, string) {
	switch a.op {
	case "text":
		return findText(bundle, strings.ToLower(a.value), "Bundle") != "", "not found in the Bundle"
	case "no-text":
		where := findText(bundle, strings.ToLower(a.value), "Bundle")
		return where == "", "found at " + where
	}
	vals := a.values(bundle)
	texts := make([]string, 0, len(vals))
	for _, v := range vals {
		if t, ok := scalar(v); ok {
			texts = append(texts, t)
		} else {
			texts = append(texts, "(an element)")
		}
	}
	got := func() string {
		if len(texts) == 0 {
			return "no value"
		}
		return "got " + strings.Join(texts, ", ")
	}
	switch a.op {
	case "exists":
		return len(vals) > 0, got()
	case "absent":
		return len(vals) == 0, fmt.Sprintf("%d value(s) present", len(vals))
	case "count":
		return len(vals) == a.count, fmt.Sprintf("%d value(s)", len(vals))
	case "==":
		ok := len(vals) > 0
		for _, v := range vals {
			t, isScalar := scalar(v)
			ok = ok && isScalar && t == a.value
		}
		return ok, got()
	case "!=":
		for _, v := range vals {
			if t, ok := scalar(v); ok && t == a.value {
				return false, got()
			}
		}
		return true, ""
	case "contains":
		for _, v := range vals {
			if t, ok := scalar(v); ok && strings.Contains(t, a.value) {
				return true, ""
			}
		}
		return false, got()
	}
	return false, "unknown assertion"
}

// values walks the path from the Bundle.
func (a assertion) values(bundle any) []any {
	var cur []any
	root, rest := a.path[0], a.path[1:]
	if root.name == "Bundle" {
		cur = []any{bundle}
	} else {
		for _, e := range list(field(bundle, "entry")) {
			r := field(e, "resource")
			if rt, _ := field(r, "resourceType").(string); rt == root.name {
				cur = append(cur, r)
			}
		}
	}
	if root.index >= 0 {
		cur = pick(cur, root.index)
	}
	for _, st := range rest {
		var next []any
		for _, v := range cur {
			f := field(v, st.name)
			if f == nil {
				continue
			}
			items := list(f)
			if st.index >= 0 {
				items = pick(items, st.index)
			}
			next = append(next, items...)
		}
		cur = next
	}
	return cur
}

func field(v any, name string) any {
	m, _ := v.(map[string]any)
	return m[name]
}

// list is a value as a list: a JSON array's items, or the value alone.
func list(v any) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		return x
	}
	return []any{v}
}

func pick(vs []any, i int) []any {
	if i < len(vs) {
		return vs[i : i+1]
	}
	return nil
}

// scalar is the text of a string, number or boolean.
func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// findText returns the path of the first scalar whose lower-cased text
// contains needle, or "".
func findText(v any, needle, at string) string {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if p := findText(x[k], needle, at+"."+k); p != "" {
				return p
			}
		}
	case []any:
		for i, item := range x {
			if p := findText(item, needle, fmt.Sprintf("%s[%d]", at, i)); p != "" {
				return p
			}
		}
	default:
		if t, ok := scalar(v); ok && strings.Contains(strings.ToLower(t), needle) {
			return at
		}
	}
	return ""
}
