package mappings

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/student-mh-referrals/gateway/gateway"
)

// stripFields returns the record with every field named by a strip-fields
// obligation removed. The input record is never changed: it is also what the
// audit trail hashes. Paths are the case record's JSON paths as the policies
// write them: "referral.riskAssessment.score", optionally starting "$.",
// with "[n]" or "[*]" after an array field ("referral.presentingNeeds[*].text").
// A path that names nothing in this record is a no-op; a path that cannot be
// parsed is an error, because an obligation the gateway cannot carry out must
// stop the message. The paths are removed from the record's JSON, which is
// how they are defined: encode, delete, decode.
func stripFields(rec *gateway.CaseRecord, obs []gateway.Obligation) (*gateway.CaseRecord, error) {
	var paths [][]pathSeg
	for _, ob := range obs {
		if ob.Type != gateway.ObligationStripFields {
			continue
		}
		for _, p := range ob.Fields {
			segs, err := parsePath(p)
			if err != nil {
				return nil, gateway.Internal(fmt.Errorf("mappings: strip-fields obligation: %w", err))
			}
			paths = append(paths, segs)
		}
	}
	if len(paths) == 0 {
		return rec, nil
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, gateway.Internal(fmt.Errorf("mappings: strip-fields: %w", err))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers come back as written
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, gateway.Internal(fmt.Errorf("mappings: strip-fields: %w", err))
	}
	for _, segs := range paths {
		removePath(tree, segs)
	}
	if data, err = json.Marshal(tree); err != nil {
		return nil, gateway.Internal(fmt.Errorf("mappings: strip-fields: %w", err))
	}
	out := &gateway.CaseRecord{}
	if err := json.Unmarshal(data, out); err != nil {
		return nil, gateway.Internal(fmt.Errorf("mappings: strip-fields: %w", err))
	}
	return out, nil
}

// removePath deletes what segs name below a JSON tree node. Arrays keep
// their length when something inside an element is removed, and lose the
// element when the path ends at it (an array emptied that way stays
// present, empty).
func removePath(node any, segs []pathSeg) {
	obj, ok := node.(map[string]any)
	if !ok || len(segs) == 0 {
		return
	}
	seg, rest := segs[0], segs[1:]
	child, ok := obj[seg.key]
	switch {
	case !ok:
	case len(seg.indexes) > 0:
		obj[seg.key] = removeInArray(child, seg.indexes, rest)
	case len(rest) == 0:
		delete(obj, seg.key)
	default:
		removePath(child, rest)
	}
}

func removeInArray(node any, indexes []int, rest []pathSeg) any {
	arr, ok := node.([]any)
	if !ok {
		return node
	}
	ix, more := indexes[0], indexes[1:]
	last := len(more) == 0 && len(rest) == 0
	out := []any{}
	for i, el := range arr {
		switch {
		case ix != -1 && i != ix:
		case last:
			continue // the path ends at this element: drop it
		case len(more) > 0:
			el = removeInArray(el, more, rest)
		default:
			removePath(el, rest)
		}
		out = append(out, el)
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
