package fhirvalidator

import (
	"fmt"
	"strings"
)

// Bundle rules beyond the bdl-* invariants:
//
//   - gw-fullurl-id: an entry's RESTful fullUrl (…/Type/id) agrees with its
//     resource's type and id (R4 bundle.html: "fullUrl SHALL NOT disagree
//     with the id in the resource").
//   - gw-ref-resolves: in a message Bundle every literal reference in an
//     entry resolves to another entry (R4 messaging: the receiver has only
//     the message), resolved as R4 bundle.html#references describes:
//     absolute references match a fullUrl, relative ones are resolved
//     against the RESTful base of the referring entry's fullUrl, or match
//     an entry's Type/id. The resolved resource must be of a target type
//     the reference allows.

type bundleFrame struct {
	message bool
	refs    []pendingRef
}

type pendingRef struct {
	ref  string
	loc  string
	t    *typeRef
	base string // fullUrl of the referring entry
}

func (c *vctx) bundleRules(f *frame) {
	byURL := map[string]*node{}
	byTypeID := map[string]*node{}
	for i, e := range f.n.list("entry") {
		res := e.get("resource")
		if res == nil || res.k != kObject {
			continue
		}
		rt, id, fu := res.str("resourceType"), res.str("id"), e.str("fullUrl")
		if fu != "" {
			if t, fid := c.restful(fu); t != "" && (t != rt || (id != "" && fid != id)) {
				c.fail(fmt.Sprintf("entry[%d].fullUrl", i), "invariant", "gw-fullurl-id",
					fmt.Sprintf("fullUrl %s disagrees with the resource's type and id (%s/%s)", fu, rt, id))
			}
			byURL[stripHistory(fu)] = res
		}
		if rt != "" && id != "" {
			byTypeID[rt+"/"+id] = res
		}
	}
	if !f.bundle.message {
		return
	}
	for _, r := range f.bundle.refs {
		target := resolveRef(r, byURL, byTypeID, c)
		if target == nil {
			c.add(SeverityError, "not-found", "gw-ref-resolves", r.loc,
				fmt.Sprintf("reference %s does not resolve to an entry of the message Bundle", r.ref))
			continue
		}
		if rt := target.str("resourceType"); r.t != nil && rt != "" && !c.targetAllowed(r.t, rt) {
			c.add(SeverityError, "structure", "reference-type", r.loc, fmt.Sprintf("refers to a %s; allowed: %s", rt, targetNames(r.t)))
		}
	}
}

func resolveRef(r pendingRef, byURL, byTypeID map[string]*node, c *vctx) *node {
	ref := stripHistory(r.ref)
	if strings.Contains(ref, "?") {
		return nil // a conditional reference cannot be resolved in a message
	}
	if isAbsolute(ref) {
		return byURL[ref]
	}
	if base, ok := restfulBase(r.base, c); ok {
		if t := byURL[base+ref]; t != nil {
			return t
		}
	}
	return byTypeID[ref]
}

func isAbsolute(ref string) bool {
	i := strings.IndexByte(ref, ':')
	return i > 0 && !strings.Contains(ref[:i], "/")
}

func stripHistory(u string) string {
	if i := strings.Index(u, "/_history/"); i >= 0 {
		return u[:i]
	}
	return u
}

// restful splits a RESTful URL …/Type/id into its type and id.
func (c *vctx) restful(u string) (typ, id string) {
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return "", ""
	}
	u = stripHistory(u)
	parts := strings.Split(u, "/")
	if len(parts) < 5 {
		return "", ""
	}
	typ, id = parts[len(parts)-2], parts[len(parts)-1]
	if !c.v.knownTypes[typ] {
		return "", ""
	}
	return typ, id
}

// restfulBase returns the service base of a RESTful fullUrl, with a trailing slash.
func restfulBase(fullURL string, c *vctx) (string, bool) {
	t, id := c.restful(fullURL)
	if t == "" {
		return "", false
	}
	u := stripHistory(fullURL)
	return strings.TrimSuffix(u, t+"/"+id), true
}
