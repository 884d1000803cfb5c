// Package bundlescan reads what the gateway's delivery and its sandbox
// receiver need of a FHIR Bundle (its resourceType, id and type, and of each
// entry the fullUrl, the resource's bytes and the resource's resourceType
// and status) in one walk of the JSON, which also validates it exactly as
// encoding/json does (jsonscan).
//
// Both read every message on the outbox drain's path, where decoding whole
// Bundles with encoding/json was a tenth of the gateway's CPU and a fifth
// of the sandbox's. The walk is sure of what it reads only for plainly
// written JSON: where a Bundle holds anything encoding/json might read
// differently (an escaped, differently cased or repeated element name, an
// element of another JSON type, an entry that is not an object), Scan says
// so and the caller decodes with encoding/json instead, so that callers give
// the same result for every body (their fuzz targets, FuzzSender and
// FuzzReadMessageEquiv, hold them to the decoders they replaced).
package bundlescan

import (
	"encoding/json"
	"strings"

	"github.com/student-mh-referrals/gateway/gateway/jsonscan"
)

// Bundle is what Scan finds in a Bundle.
type Bundle struct {
	// ResourceType, ID and Type are the Bundle's elements of those names
	// ("" when absent).
	ResourceType, ID, Type string
	// Entries is nil when the Bundle has no entry element, and empty for
	// an empty list, as encoding/json would decode them.
	Entries []Entry
}

// Entry is one element of Bundle.entry.
type Entry struct {
	FullURL string
	// HasFullURL is false when the entry has no fullUrl element at all.
	HasFullURL bool
	// Resource is the resource's JSON, sliced from the body (not copied,
	// and with its capacity clipped, so that appending to it cannot write
	// over the body).
	Resource []byte
	// ResourceType and Status are the resource's elements of those names
	// as encoding/json would decode them into string fields, when Known.
	ResourceType, Status Field
}

// Field is one string element of a resource. Known is false where the walk
// cannot be sure what encoding/json would decode (an escaped, differently
// cased or repeated element name, a value that is not a string); the caller
// then decodes that resource itself.
type Field struct {
	Value string
	Known bool
}

// resourceField is one element of a resource that the walk reads.
type resourceField struct {
	val       string
	seen, bad bool
}

// known reports whether val is what encoding/json would decode: the element
// was absent, or there once, plainly named, with a string value.
func (f resourceField) known() bool { return !f.bad }

// Scan walks body once. ok is false for invalid JSON, for a body that is not
// an object, and where the Bundle's own elements or its entries are not
// plainly written (see the package comment); b is then empty. An entry must
// have a resource that is an object; its fullUrl may be absent
// (HasFullURL).
func Scan(body []byte) (b Bundle, ok bool) {
	const (
		top      = iota // in the Bundle, outside entry
		list            // in entry's list, between entries
		inEntry         // in an entry object
		resource        // inside the resource of an entry
	)
	var (
		state          = top
		want           string // the Bundle or entry element whose value comes next
		seen           [4]bool
		cur            Entry
		sawURL, sawRes bool
		resStart       int
		rtype, rstatus resourceField
		rwant          *resourceField // the resource element whose value comes next
		bad, first     = false, true
	)
	topNames := [...]string{"resourceType", "id", "type", "entry"}
	valid, _ := jsonscan.Walk(body, func(k jsonscan.Kind, start, end, depth int) bool {
		if first {
			first = false
			if k != jsonscan.BeginObject {
				bad = true
				return false
			}
			return true
		}
		switch state {
		case top:
			if depth != 1 {
				return true // inside an element that is not read
			}
			if k == jsonscan.Key {
				want = ""
				name := body[start:end]
				if !jsonscan.Plain(name) {
					bad = true
					return false
				}
				n := string(name[1 : len(name)-1])
				for i, w := range topNames {
					if strings.EqualFold(n, w) {
						if n != w || seen[i] {
							bad = true
							return false
						}
						seen[i], want = true, w
					}
				}
				return true
			}
			switch want {
			case "":
			case "entry":
				if k != jsonscan.BeginArray {
					bad = true
					return false
				}
				b.Entries, state = []Entry{}, list
			default:
				s, ok := stringValue(body, k, start, end)
				if !ok {
					bad = true
					return false
				}
				switch want {
				case "resourceType":
					b.ResourceType = s
				case "id":
					b.ID = s
				case "type":
					b.Type = s
				}
			}
			want = ""
		case list:
			switch k {
			case jsonscan.EndArray:
				state = top
			case jsonscan.BeginObject:
				cur, sawURL, sawRes, state = Entry{}, false, false, inEntry
			default:
				bad = true
				return false
			}
		case inEntry:
			if depth == 2 { // the entry's end
				if k != jsonscan.EndObject || !sawRes {
					bad = true
					return false
				}
				cur.HasFullURL = sawURL
				cur.ResourceType = Field{Value: rtype.val, Known: rtype.known()}
				cur.Status = Field{Value: rstatus.val, Known: rstatus.known()}
				b.Entries = append(b.Entries, cur)
				state = list
				return true
			}
			if depth != 3 {
				return true // inside an element that is not read
			}
			switch k {
			case jsonscan.EndObject, jsonscan.EndArray:
				return true // the end of an element that is not read
			case jsonscan.Key:
				want = ""
				name := body[start:end]
				if !jsonscan.Plain(name) {
					bad = true
					return false
				}
				n := string(name[1 : len(name)-1])
				for _, w := range [...]string{"fullUrl", "resource"} {
					if strings.EqualFold(n, w) {
						if n != w || (w == "fullUrl" && sawURL) || (w == "resource" && sawRes) {
							bad = true
							return false
						}
						want = w
					}
				}
				return true
			}
			switch want {
			case "fullUrl":
				s, ok := stringValue(body, k, start, end)
				if !ok {
					bad = true
					return false
				}
				cur.FullURL, sawURL = s, true
			case "resource":
				if k != jsonscan.BeginObject {
					bad = true
					return false
				}
				resStart, sawRes, state = start, true, resource
				rtype, rstatus, rwant = resourceField{}, resourceField{}, nil
			}
			want = ""
		case resource:
			switch {
			case depth == 3: // the resource's end
				// The full slice expression keeps an append to the
				// resource from writing over the body.
				cur.Resource = body[resStart:end:end]
				state = inEntry
			case depth != 4:
				// inside an element of the resource
			case k == jsonscan.Key:
				rwant = nil
				name := body[start:end]
				if !jsonscan.Plain(name) {
					// It may unescape to a name read: decode this resource.
					rtype.bad, rstatus.bad = true, true
					return true
				}
				n := string(name[1 : len(name)-1])
				for _, f := range [...]struct {
					name string
					f    *resourceField
				}{{"resourceType", &rtype}, {"status", &rstatus}} {
					if strings.EqualFold(n, f.name) {
						if n != f.name || f.f.seen {
							f.f.bad = true
						}
						f.f.seen, rwant = true, f.f
					}
				}
			case k == jsonscan.EndObject || k == jsonscan.EndArray:
				// the end of an element of the resource
			default: // a value of the resource
				if rwant != nil {
					if s, ok := stringValue(body, k, start, end); ok {
						rwant.val = s
					} else {
						rwant.bad = true
					}
					rwant = nil
				}
			}
		}
		return true
	})
	if bad || !valid {
		return Bundle{}, false
	}
	return b, true
}

// stringValue is the string token data[start:end] as encoding/json decodes
// it into a string; ok is false for a token of another kind.
func stringValue(data []byte, k jsonscan.Kind, start, end int) (string, bool) {
	if k != jsonscan.String {
		return "", false
	}
	s := data[start:end]
	if jsonscan.Plain(s) {
		return string(s[1 : len(s)-1]), true
	}
	var v string
	if json.Unmarshal(s, &v) != nil {
		return "", false
	}
	return v, true
}
