package sandbox

import (
	"encoding/json"
	"strings"

	"github.com/student-mh-referrals/gateway/gateway/jsonscan"
)

// resourceScan is what scanBundle learnt of one entry's resource: its
// resourceType and status as encoding/json would decode them into string
// fields. A field is known only where the walk is sure of that; where it is
// not (an escaped, differently cased or repeated element name, a value that
// is not a string), readMessage decodes that resource as before.
type resourceScan struct {
	typ, status           string
	typKnown, statusKnown bool
}

// resourceField is one element of a resource that the walk reads.
type resourceField struct {
	val       string
	seen, bad bool
}

// known reports whether val is what encoding/json would decode: the element
// was absent, or there once, plainly named, with a string value.
func (f resourceField) known() bool { return !f.bad }

// scanBundle reads a message Bundle as readMessage needs it with one walk
// of the body (jsonscan, which validates exactly as encoding/json does):
// the Bundle's resourceType, id and type, its entries' fullUrl and resource
// (the resource's bytes as json.RawMessage would hold them, sliced from
// body rather than copied), and of each resource its resourceType and
// status.
//
// Decoding the Bundle with encoding/json (validate, then decode, then every
// resource again for its type and the focus again for its status) was a
// fifth of the sandbox's CPU in the outbox drain, which runs on the
// gateway's CPUs, more than anything else it did. ok is false where the Bundle holds anything that
// encoding/json might read differently from this walk (an escaped or
// differently cased element name, a repeated one, an element of another
// type, an entry that is not an object) and for invalid JSON; readMessage
// then decodes the body as before, so that its result is the same for every
// body (FuzzReadMessageEquiv holds it to readMessageRef, the code it
// replaced).
func scanBundle(body []byte) (b message, res []resourceScan, ok bool) {
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
		cur            rawEntry
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
				b.Entry, state = []rawEntry{}, list
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
				cur, sawURL, sawRes, state = rawEntry{}, false, false, inEntry
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
				b.Entry = append(b.Entry, cur)
				res = append(res, resourceScan{
					typ: rtype.val, typKnown: rtype.known(),
					status: rstatus.val, statusKnown: rstatus.known(),
				})
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
				cur.Resource = json.RawMessage(body[resStart:end:end])
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
		return message{}, nil, false
	}
	return b, res, true
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

// topFields finds the values of the named elements of the JSON object obj
// with one walk: vals[i] (len(names) of them, nil on entry) is set to the
// bytes of names[i]'s value, as json.RawMessage would hold them, or left
// nil when obj has no such element. ok is false, and the caller decodes obj
// with encoding/json instead, where obj is not a valid object, has an
// element name that is not plain (escaped, or not ASCII), or has one of
// names repeated or spelt with other case (which encoding/json would read
// as that element).
func topFields(obj []byte, names []string, vals [][]byte) (ok bool) {
	var (
		first, bad = true, false
		want       = -1 // the element whose value comes next
		start      int
	)
	valid, _ := jsonscan.Walk(obj, func(k jsonscan.Kind, s, e, depth int) bool {
		if first {
			first = false
			if k != jsonscan.BeginObject {
				bad = true
				return false
			}
			return true
		}
		if depth != 1 {
			return true // inside an element, or the object's end
		}
		switch k {
		case jsonscan.Key:
			want = -1
			name := obj[s:e]
			if !jsonscan.Plain(name) {
				bad = true
				return false
			}
			n := string(name[1 : len(name)-1])
			for i, w := range names {
				if strings.EqualFold(n, w) {
					if n != w || vals[i] != nil {
						bad = true
						return false
					}
					want = i
				}
			}
		case jsonscan.BeginObject, jsonscan.BeginArray:
			start = s
		case jsonscan.EndObject, jsonscan.EndArray:
			if want >= 0 {
				vals[want], want = obj[start:e:e], -1
			}
		default:
			if want >= 0 {
				vals[want], want = obj[s:e:e], -1
			}
		}
		return true
	})
	return valid && !bad
}

// decodeString decodes the JSON value v, if any, into the string *s as
// encoding/json decodes an element into a string field: a plain string
// without copying the work of the decoder, anything else by it.
func decodeString(v []byte, s *string) error {
	if v == nil {
		return nil
	}
	if len(v) >= 2 && v[0] == '"' && jsonscan.Plain(v) {
		*s = string(v[1 : len(v)-1])
		return nil
	}
	return json.Unmarshal(v, s)
}
