package fhirvalidator

import (
	"fmt"
	"slices"
	"strings"
)

// Slicing: every value of a sliced element is assigned to the first slice
// whose discriminators it matches; each slice's count is checked against
// the slice's cardinality, and each assigned value is validated against the
// slice's own definition (the part that stock validators skip, e.g. the
// UK Core NHS number identifier's value 1..1). Discriminators of type value,
// pattern, exists and type are supported; slicing by profile or by a
// FHIRPath function is not enforced.

type sliceItem struct {
	n   *node
	key string
	idx int // -1 for a single value
	ti  int
}

func (c *vctx) slices(n *node, h, el *element) {
	sl := el.slicing
	if !sliceSupported(sl) {
		return
	}
	var items []sliceItem
	for _, f := range n.fields {
		if strings.HasPrefix(f.key, "_") {
			continue
		}
		cr, ok := h.index[f.key]
		if !ok || cr.el != el {
			continue
		}
		if f.val.k == kArray {
			for i, it := range f.val.items {
				if it.k != kNull {
					items = append(items, sliceItem{it, f.key, i, cr.typ})
				}
			}
		} else if f.val.k != kNull {
			items = append(items, sliceItem{f.val, f.key, -1, cr.typ})
		}
	}
	counts := make([]int, len(el.slices))
	last, unmatched := -1, false
	for _, it := range items {
		m := c.push(it.key)
		if it.idx >= 0 {
			c.pushIndex(it.idx)
		}
		si := -1
		for i, s := range el.slices {
			if c.matchSlice(it, el, s, sl) {
				si = i
				break
			}
		}
		switch {
		case si < 0:
			if sl.rules == "closed" {
				c.fail("", "structure", "slice", fmt.Sprintf("matches none of the slices of %s, and the slicing is closed", el.jsonName()))
			}
			unmatched = true
		default:
			s := el.slices[si]
			if sl.rules == "openAtEnd" && unmatched {
				c.fail("", "structure", "slice", fmt.Sprintf("slice %q must come before values that match no slice", s.sliceName))
			}
			if sl.ordered && si < last {
				c.fail("", "structure", "slice", fmt.Sprintf("slice %q is out of order", s.sliceName))
			}
			last = max(last, si)
			counts[si]++
			want := ""
			if it.ti < len(el.types) {
				want = el.types[it.ti].code
			}
			c.value(it.n, s, max(0, slices.IndexFunc(s.types, func(t typeRef) bool { return t.code == want })))
		}
		c.pop(m)
	}
	for i, s := range el.slices {
		if counts[i] < s.min || (s.max >= 0 && counts[i] > s.max) {
			code := "structure"
			if counts[i] < s.min {
				code = "required"
			}
			c.fail(el.jsonName(), code, "slice", fmt.Sprintf("slice %q has %d values; cardinality is %s", s.sliceName, counts[i], s.card()))
		}
	}
}

func sliceSupported(sl *slicing) bool {
	if len(sl.discs) == 0 {
		return false
	}
	for _, d := range sl.discs {
		switch d.typ {
		case "value", "pattern", "exists", "type":
		default:
			return false
		}
		if strings.ContainsAny(d.path, "()") && d.path != "$this" {
			return false
		}
	}
	return true
}

// matchSlice reports whether a value matches every discriminator of slice s.
func (c *vctx) matchSlice(it sliceItem, el, s *element, sl *slicing) bool {
	for _, d := range sl.discs {
		target := descend(s, d.path)
		if target == nil {
			return false
		}
		vals := valuesAt(it.n, d.path)
		switch d.typ {
		case "value", "pattern":
			want, pattern := target.fixed, false
			if want == nil && target.pattern != nil {
				want, pattern = target.pattern, true
			}
			if want == nil && d.path == "url" && len(s.types) > 0 && len(s.types[0].profiles) > 0 {
				want = &node{k: kString, s: s.types[0].profiles[0]}
			}
			if want == nil {
				if target.vs != nil {
					if !anyInValueSet(vals, target) {
						return false
					}
					continue
				}
				return false
			}
			if !slices.ContainsFunc(vals, func(v *node) bool { return (pattern && includesJSON(v, want)) || (!pattern && equalJSON(v, want)) }) {
				return false
			}
		case "exists":
			if (target.min > 0 && len(vals) == 0) || (target.max == 0 && len(vals) > 0) {
				return false
			}
		case "type":
			got := ""
			if d.path == "$this" {
				if it.n.k == kObject && it.n.str("resourceType") != "" {
					got = it.n.str("resourceType")
				} else if it.ti < len(el.types) {
					got = el.types[it.ti].code
				}
			} else if len(vals) == 1 && vals[0].k == kObject {
				got = vals[0].str("resourceType")
			}
			if !slices.ContainsFunc(target.types, func(t typeRef) bool { return t.code == got }) {
				return false
			}
		}
	}
	return true
}

func anyInValueSet(vals []*node, e *element) bool {
	for _, v := range vals {
		switch v.k {
		case kString:
			if e.vs.has("", v.s) {
				return true
			}
		case kObject:
			for _, cd := range append(v.list("coding"), v) {
				if cd.str("code") != "" && e.vs.has(cd.str("system"), cd.str("code")) {
					return true
				}
			}
		}
	}
	return false
}

// descend finds the element at a discriminator path below slice s.
func descend(s *element, path string) *element {
	if path == "$this" || path == "" {
		return s
	}
	cur := s
	for _, seg := range strings.Split(path, ".") {
		name := strings.TrimSuffix(seg, "[x]")
		h := cur.holder(0)
		if h == nil {
			return nil
		}
		i := slices.IndexFunc(h.children, func(ch *element) bool { return ch.name == name })
		if i < 0 {
			return nil
		}
		cur = h.children[i]
	}
	return cur
}

// valuesAt returns the values at a dotted path below n, flattening arrays.
func valuesAt(n *node, path string) []*node {
	if path == "$this" || path == "" {
		return []*node{n}
	}
	cur := []*node{n}
	for _, seg := range strings.Split(path, ".") {
		var next []*node
		choice := strings.HasSuffix(seg, "[x]")
		name := strings.TrimSuffix(seg, "[x]")
		for _, x := range cur {
			if x.k != kObject {
				continue
			}
			for _, f := range x.fields {
				if f.key == name || (choice && isTypedKey(f.key, name)) {
					if f.val.k == kArray {
						next = append(next, f.val.items...)
					} else {
						next = append(next, f.val)
					}
				}
			}
		}
		cur = next
	}
	return cur
}
