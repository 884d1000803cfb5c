package sandbox

import (
	"encoding/json"
	"strings"

	"github.com/student-mh-referrals/gateway/gateway/bundlescan"
	"github.com/student-mh-referrals/gateway/gateway/jsonscan"
)

// resourceScan is what scanBundle learnt of one entry's resource: its
// resourceType and status as encoding/json would decode them into string
// fields, where the walk is sure of them (bundlescan.Field.Known).
type resourceScan struct {
	typ, status           string
	typKnown, statusKnown bool
}

// scanBundle reads a message Bundle as readMessage needs it with one walk
// of the body (bundlescan): the Bundle's resourceType, id and type, its
// entries' fullUrl and resource (sliced from body rather than copied), and
// of each resource its resourceType and status. Decoding the Bundle with
// encoding/json (validate, then decode, then every resource again for its
// type and the focus again for its status) was a fifth of the sandbox's
// CPU in the outbox drain, which runs on the gateway's CPUs. ok is false
// where bundlescan leaves the body to encoding/json; readMessage then
// decodes it as before, so that its result is the same for every body
// (FuzzReadMessageEquiv holds it to readMessageRef, the code it replaced).
func scanBundle(body []byte) (b message, res []resourceScan, ok bool) {
	sb, ok := bundlescan.Scan(body)
	if !ok {
		return message{}, nil, false
	}
	b = message{ResourceType: sb.ResourceType, ID: sb.ID, Type: sb.Type}
	if sb.Entries != nil {
		b.Entry = make([]rawEntry, 0, len(sb.Entries))
	}
	for _, e := range sb.Entries {
		b.Entry = append(b.Entry, rawEntry{FullURL: e.FullURL, Resource: json.RawMessage(e.Resource)})
		res = append(res, resourceScan{
			typ: e.ResourceType.Value, typKnown: e.ResourceType.Known,
			status: e.Status.Value, statusKnown: e.Status.Known,
		})
	}
	return b, res, true
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
