package fhirvalidator

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
)

// The validator reads JSON into a small tree of its own, built from
// jsontext's tokens, rather than with encoding/json, because FHIR's JSON
// rules need what a generic decoder throws away: the order and duplication
// of keys, the literal text of numbers (decimal precision is significant in
// FHIR), the difference between null and absent, and the byte offset of a
// fault.

// kind is the JSON type of a node.
type kind uint8

const (
	kNull kind = iota
	kBool
	kNumber
	kString
	kArray
	kObject
	// kNone marks "not a primitive" where a kind is expected.
	kNone kind = 255
)

func (k kind) String() string {
	return [...]string{"null", "boolean", "number", "string", "array", "object"}[k]
}

// node is one JSON value. s holds a string's unescaped text, a number's
// literal text, or "true"/"false".
type node struct {
	k      kind
	s      string
	fields []field
	items  []*node
}

// field is one key of an object, in document order.
type field struct {
	key string
	val *node
}

// get returns the value of key, or nil.
func (n *node) get(key string) *node {
	if n == nil || n.k != kObject {
		return nil
	}
	for i := range n.fields {
		if n.fields[i].key == key {
			return n.fields[i].val
		}
	}
	return nil
}

// str returns the string value of key, or "" when it is absent or not a string.
func (n *node) str(key string) string {
	if v := n.get(key); v != nil && v.k == kString {
		return v.s
	}
	return ""
}

// list returns the items of key when it is an array, or the value itself
// as a one-item list.
func (n *node) list(key string) []*node {
	v := n.get(key)
	if v == nil {
		return nil
	}
	if v.k == kArray {
		return v.items
	}
	return []*node{v}
}

// maxDepth bounds nesting so that hostile input cannot exhaust the stack.
const maxDepth = 200

// syntaxError is a fault in the JSON text itself.
type syntaxError struct {
	off int64
	msg string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("invalid JSON at byte %d: %s", e.off, e.msg) }

// dupKeys are the keys that appear more than once in each object; the
// validator reports duplicates as issues rather than refusing the document.
type dupKeys map[*node][]string

// parseJSON parses data as one JSON value. A UTF-8 byte order mark is
// rejected: RFC 8259 forbids emitting one and FHIR's JSON is plain UTF-8.
func parseJSON(data []byte) (*node, dupKeys, error) {
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		return nil, nil, &syntaxError{0, "byte order mark before the JSON value"}
	}
	d := jsontext.NewDecoder(bytes.NewReader(data), jsontext.AllowDuplicateNames(true))
	dups := dupKeys{}
	n, err := readNode(d, dups)
	if err == nil {
		if off := d.InputOffset(); len(bytes.TrimLeft(data[off:], " \t\r\n")) > 0 {
			return nil, nil, &syntaxError{off, "unexpected data after the JSON value"}
		}
		return n, dups, nil
	}
	var se *jsontext.SyntacticError
	switch {
	case errors.As(err, &se) && se.Err == io.ErrUnexpectedEOF:
		return nil, nil, &syntaxError{se.ByteOffset, "unexpected end of input"}
	case errors.As(err, &se):
		return nil, nil, &syntaxError{se.ByteOffset, se.Err.Error()}
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return nil, nil, &syntaxError{d.InputOffset(), "unexpected end of input"}
	}
	return nil, nil, err
}

// readNode reads the next value from d, noting duplicate keys in dups.
func readNode(d *jsontext.Decoder, dups dupKeys) (*node, error) {
	tok, err := d.ReadToken()
	if err != nil {
		return nil, err
	}
	if d.StackDepth() > maxDepth {
		return nil, &syntaxError{d.InputOffset(), "nested too deeply"}
	}
	switch tok.Kind() {
	case 'n':
		return &node{k: kNull, s: "null"}, nil
	case 't', 'f':
		return &node{k: kBool, s: tok.String()}, nil
	case '0':
		return &node{k: kNumber, s: tok.String()}, nil
	case '"':
		return &node{k: kString, s: tok.String()}, nil
	case '[':
		n := &node{k: kArray}
		for d.PeekKind() != ']' {
			v, err := readNode(d, dups)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, v)
		}
		_, err := d.ReadToken()
		return n, err
	default: // '{'
		n := &node{k: kObject}
		seen := map[string]bool{}
		for d.PeekKind() != '}' {
			k, err := d.ReadToken()
			if err != nil {
				return nil, err
			}
			key := k.String()
			v, err := readNode(d, dups)
			if err != nil {
				return nil, err
			}
			if seen[key] {
				dups[n] = append(dups[n], key)
			}
			seen[key] = true
			n.fields = append(n.fields, field{key, v})
		}
		_, err := d.ReadToken()
		return n, err
	}
}

// equalJSON reports whether a and b are the same JSON value. Numbers compare
// by value (1.0 equals 1.00), as the JSON tools that fhircheck uses do.
func equalJSON(a, b *node) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.k != b.k {
		return false
	}
	switch a.k {
	case kNumber:
		return numEqual(a.s, b.s)
	case kArray:
		return slices.EqualFunc(a.items, b.items, equalJSON)
	case kObject:
		if len(a.fields) != len(b.fields) {
			return false
		}
		for _, f := range a.fields {
			if !equalJSON(f.val, b.get(f.key)) {
				return false
			}
		}
		return true
	default:
		return a.s == b.s
	}
}

// includesJSON reports whether v matches pattern p in the sense of FHIR's
// pattern[x]: every property of p is in v with a matching value, and every
// item of an array in p matches some item of the array in v.
func includesJSON(v, p *node) bool {
	if v == nil || p == nil {
		return p == nil
	}
	switch p.k {
	case kObject:
		if v.k != kObject {
			return false
		}
		for _, f := range p.fields {
			if !includesJSON(v.get(f.key), f.val) {
				return false
			}
		}
		return true
	case kArray:
		if v.k != kArray {
			return false
		}
		for _, pi := range p.items {
			if !slices.ContainsFunc(v.items, func(vi *node) bool { return includesJSON(vi, pi) }) {
				return false
			}
		}
		return true
	default:
		return equalJSON(v, p)
	}
}

func numEqual(a, b string) bool {
	if a == b {
		return true
	}
	fa, err1 := strconv.ParseFloat(a, 64)
	fb, err2 := strconv.ParseFloat(b, 64)
	return err1 == nil && err2 == nil && fa == fb
}

// appendJSON writes n as compact JSON; used for fixed and pattern values in
// the rule files and in messages.
func appendJSON(b []byte, n *node) []byte {
	switch n.k {
	case kNull, kBool, kNumber:
		return append(b, n.s...)
	case kString:
		return appendJSONString(b, n.s)
	case kArray:
		b = append(b, '[')
		for i, it := range n.items {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, it)
		}
		return append(b, ']')
	default:
		b = append(b, '{')
		for i, f := range n.fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, f.key)
			b = append(b, ':')
			b = appendJSON(b, f.val)
		}
		return append(b, '}')
	}
}

// appendJSONString quotes s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	b, _ = jsontext.AppendQuote(b, s) // s came from valid JSON: valid UTF-8
	return b
}
