package mappings

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/student-mh-referrals/gateway/gateway"
)

// stripFields returns the record with every field named by a strip-fields
// obligation removed. The input record is never changed: it is also what the
// audit trail hashes. Paths are the case record's JSON paths as the policies
// write them: "referral.riskAssessment.score", optionally starting "$.",
// with "[n]" or "[*]" after an array field ("referral.presentingNeeds[*].text").
// A path that names nothing in this record is a no-op; a path that cannot be
// parsed is an error, because an obligation the gateway cannot carry out must
// stop the message.
func stripFields(rec *gateway.CaseRecord, obs []gateway.Obligation) (*gateway.CaseRecord, error) {
	var paths [][]pathSeg
	for _, ob := range obs {
		if ob.Type != gateway.ObligationStripFields {
			continue
		}
		for _, p := range ob.Fields {
			segs, err := cachedPath(p)
			if err != nil {
				return nil, gateway.Internal(fmt.Errorf("mappings: strip-fields obligation: %w", err))
			}
			paths = append(paths, segs)
		}
	}
	if len(paths) == 0 {
		return rec, nil
	}
	// The record is copied and the paths removed on the typed copy. The
	// result is what a round trip through JSON gives (encode, delete the
	// keys, decode), which is how the paths are defined, at a tenth of the
	// cost: empty slices of omitempty fields become nil, as decoding a
	// missing key leaves them (strip_test.go checks the two agree).
	out := &gateway.CaseRecord{}
	copyValue(reflect.ValueOf(out).Elem(), reflect.ValueOf(rec).Elem())
	for _, segs := range paths {
		removeTyped(reflect.ValueOf(out).Elem(), segs)
	}
	return out, nil
}

// parsedPaths caches parsePath: obligations name the same few paths.
var parsedPaths sync.Map // string -> []pathSeg

func cachedPath(p string) ([]pathSeg, error) {
	if v, ok := parsedPaths.Load(p); ok {
		return v.([]pathSeg), nil
	}
	segs, err := parsePath(p)
	if err != nil {
		return nil, err
	}
	parsedPaths.Store(p, segs)
	return segs, nil
}

// jsonField is what encoding/json knows of a struct field.
type jsonField struct {
	index     int
	omitEmpty bool
}

// jsonFields caches, per struct type, its exported fields by JSON name.
var jsonFields sync.Map // reflect.Type -> map[string]jsonField

func fieldsOf(t reflect.Type) map[string]jsonField {
	if v, ok := jsonFields.Load(t); ok {
		return v.(map[string]jsonField)
	}
	m := map[string]jsonField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" && opts == "" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = jsonField{index: i, omitEmpty: strings.Contains(","+opts+",", ",omitempty,")}
	}
	jsonFields.Store(t, m)
	return m
}

// copyValue deep-copies src into dst (both of one type) as a JSON round trip
// would: exported fields only, and an empty slice of an omitempty field
// (left out when encoded) comes back nil.
func copyValue(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		p := reflect.New(src.Type().Elem())
		copyValue(p.Elem(), src.Elem())
		dst.Set(p)
	case reflect.Struct:
		for _, f := range fieldsOf(src.Type()) {
			sf := src.Field(f.index)
			if f.omitEmpty && sf.Kind() == reflect.Slice && sf.Len() == 0 {
				continue
			}
			copyValue(dst.Field(f.index), sf)
		}
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := 0; i < src.Len(); i++ {
			copyValue(s.Index(i), src.Index(i))
		}
		dst.Set(s)
	case reflect.Map, reflect.Interface, reflect.Array, reflect.Chan, reflect.Func:
		// A case record holds none of these; a new field of such a kind
		// must be given a copy here.
		panic("mappings: copyValue: unsupported kind " + src.Kind().String())
	default:
		dst.Set(src)
	}
}

// removeTyped deletes what segs name below v, as removePath does on the
// record's JSON: a removed member becomes its zero value; an array element
// the path ends at is dropped (an array emptied that way stays present,
// empty).
func removeTyped(v reflect.Value, segs []pathSeg) {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct || len(segs) == 0 {
		return
	}
	seg, rest := segs[0], segs[1:]
	f, ok := fieldsOf(v.Type())[seg.key]
	if !ok {
		return
	}
	fv := v.Field(f.index)
	switch {
	case len(seg.indexes) == 0 && len(rest) == 0:
		fv.SetZero()
	case len(seg.indexes) == 0:
		removeTyped(fv, rest)
	case fv.Kind() == reflect.Slice && fv.Len() > 0:
		fv.Set(removeInSlice(fv, seg.indexes, rest))
	}
}

func removeInSlice(arr reflect.Value, indexes []int, rest []pathSeg) reflect.Value {
	ix, more := indexes[0], indexes[1:]
	last := len(more) == 0 && len(rest) == 0
	out := reflect.MakeSlice(arr.Type(), 0, arr.Len())
	for i := 0; i < arr.Len(); i++ {
		el := arr.Index(i)
		switch {
		case ix != -1 && i != ix:
		case last:
			continue // the path ends at this element: drop it
		case len(more) > 0:
			if el.Kind() == reflect.Slice && el.Len() > 0 {
				el = removeInSlice(el, more, rest)
			}
		default:
			removeTyped(el, rest)
		}
		out = reflect.Append(out, el)
	}
	return out
}

// pathSeg is one step of a strip path: an object key, then any number of
// array steps (an index, or -1 for every element).
type pathSeg struct {
	key     string
	indexes []int
}

var (
	segPattern   = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9]*)((?:\[(?:[0-9]+|\*)\])*)$`)
	indexPattern = regexp.MustCompile(`\[([0-9]+|\*)\]`)
)

func parsePath(p string) ([]pathSeg, error) {
	p = strings.TrimPrefix(strings.TrimSpace(p), "$.")
	if p == "" {
		return nil, fmt.Errorf("empty path")
	}
	var segs []pathSeg
	for _, part := range strings.Split(p, ".") {
		m := segPattern.FindStringSubmatch(part)
		if m == nil {
			return nil, fmt.Errorf("path %q: cannot parse %q", p, part)
		}
		seg := pathSeg{key: m[1]}
		for _, ix := range indexPattern.FindAllStringSubmatch(m[2], -1) {
			if ix[1] == "*" {
				seg.indexes = append(seg.indexes, -1)
				continue
			}
			n, err := strconv.Atoi(ix[1])
			if err != nil {
				return nil, fmt.Errorf("path %q: index %q", p, ix[1])
			}
			seg.indexes = append(seg.indexes, n)
		}
		segs = append(segs, seg)
	}
	return segs, nil
}
