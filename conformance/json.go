package conformance

import (
	"fmt"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// The validator reads JSON with its own small parser rather than
// encoding/json because FHIR's JSON rules need what a generic decoder throws
// away: the order and duplication of keys, the literal text of numbers
// (decimal precision is significant in FHIR), the difference between null and
// absent, and the byte offset of a fault. It also lets the validator walk the
// tree without allocating a map per object.

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
	switch k {
	case kNull:
		return "null"
	case kBool:
		return "boolean"
	case kNumber:
		return "number"
	case kString:
		return "string"
	case kArray:
		return "array"
	default:
		return "object"
	}
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
	off int
	msg string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("invalid JSON at byte %d: %s", e.off, e.msg) }

// parser reads one JSON document. Nodes, fields and items come from arenas
// that a parser keeps between documents (see parserPool), so that parsing
// a document allocates almost nothing but its source string.
type parser struct {
	src   string
	pos   int
	depth int
	nodes arena[node]
	flds  arena[field]
	itms  arena[*node]
	// fstack and istack hold the fields and items of the objects and
	// arrays being read, until their size is known.
	fstack []field
	istack []*node
	// dups collects the duplicate keys found; the validator reports them as
	// issues rather than refusing the document.
	dups []dupKey
}

type dupKey struct {
	obj *node
	key string
}

// arena hands out slices of large chunks; reset makes the chunks reusable.
type arena[T any] struct {
	chunks [][]T
	ci     int
	off    int
}

func (a *arena[T]) take(n int) []T {
	for {
		if a.ci < len(a.chunks) {
			c := a.chunks[a.ci]
			if a.off+n <= len(c) {
				s := c[a.off : a.off+n : a.off+n]
				a.off += n
				return s
			}
			a.ci++
			a.off = 0
			continue
		}
		a.chunks = append(a.chunks, make([]T, max(n, 512)))
	}
}

func (a *arena[T]) size() int {
	n := 0
	for _, c := range a.chunks {
		n += len(c)
	}
	return n
}

func (a *arena[T]) reset() { a.ci, a.off = 0, 0 }

func (p *parser) alloc() *node {
	n := &p.nodes.take(1)[0]
	*n = node{}
	return n
}

// parserPool keeps parsers with their arenas. A parsed tree must not be used
// after its parser is put back.
var parserPool = sync.Pool{New: func() any { return new(parser) }}

func getParser() *parser { return parserPool.Get().(*parser) }

func putParser(p *parser) {
	if p.nodes.size() > 1<<18 {
		return // do not keep the memory of an unusually large document
	}
	p.src, p.pos, p.depth, p.dups = "", 0, 0, p.dups[:0]
	p.nodes.reset()
	p.flds.reset()
	p.itms.reset()
	parserPool.Put(p)
}

// parseJSON parses data as one JSON value with a parser of its own; the
// tree stays valid for as long as the caller holds it.
func parseJSON(data []byte) (*node, []dupKey, error) {
	return new(parser).parse(data)
}

// parse parses data as one JSON value. A UTF-8 byte order mark is
// rejected: RFC 8259 forbids emitting one and FHIR's JSON is plain UTF-8.
func (p *parser) parse(data []byte) (*node, []dupKey, error) {
	p.src = string(data)
	if len(p.src) >= 3 && p.src[:3] == "\xef\xbb\xbf" {
		return nil, nil, &syntaxError{0, "byte order mark before the JSON value"}
	}
	p.skipWS()
	n, err := p.value()
	if err != nil {
		return nil, nil, err
	}
	p.skipWS()
	if p.pos != len(p.src) {
		return nil, nil, p.errf("unexpected data after the JSON value")
	}
	return n, p.dups, nil
}

func (p *parser) errf(format string, args ...any) error {
	return &syntaxError{p.pos, fmt.Sprintf(format, args...)}
}

func (p *parser) skipWS() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value() (*node, error) {
	if p.pos >= len(p.src) {
		return nil, p.errf("unexpected end of input")
	}
	switch c := p.src[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		s, err := p.string()
		if err != nil {
			return nil, err
		}
		n := p.alloc()
		n.k, n.s = kString, s
		return n, nil
	case c == 't':
		return p.literal("true", kBool)
	case c == 'f':
		return p.literal("false", kBool)
	case c == 'n':
		return p.literal("null", kNull)
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return nil, p.errf("unexpected character %q", c)
	}
}

func (p *parser) literal(word string, k kind) (*node, error) {
	if len(p.src)-p.pos < len(word) || p.src[p.pos:p.pos+len(word)] != word {
		return nil, p.errf("invalid literal")
	}
	p.pos += len(word)
	n := p.alloc()
	n.k, n.s = k, word
	return n, nil
}

func (p *parser) number() (*node, error) {
	start := p.pos
	if p.src[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		s := p.pos
		for p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
			p.pos++
		}
		return p.pos - s
	}
	if p.pos < len(p.src) && p.src[p.pos] == '0' {
		p.pos++
	} else if digits() == 0 {
		return nil, p.errf("invalid number")
	}
	if p.pos < len(p.src) && p.src[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return nil, p.errf("invalid number")
		}
	}
	if p.pos < len(p.src) && (p.src[p.pos] == 'e' || p.src[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.src) && (p.src[p.pos] == '+' || p.src[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return nil, p.errf("invalid number")
		}
	}
	n := p.alloc()
	n.k, n.s = kNumber, p.src[start:p.pos]
	return n, nil
}

// string reads a JSON string; without escapes it is a substring of the
// source and costs no allocation.
func (p *parser) string() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == '"':
			s := p.src[start:p.pos]
			p.pos++
			if !utf8.ValidString(s) {
				return "", &syntaxError{start, "string is not valid UTF-8"}
			}
			return s, nil
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			return "", p.errf("control character in string")
		}
		p.pos++
	}
	return "", p.errf("unterminated string")
}

func (p *parser) escaped(start int) (string, error) {
	buf := []byte(p.src[start:p.pos])
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == '"':
			p.pos++
			if !utf8.Valid(buf) {
				return "", &syntaxError{start, "string is not valid UTF-8"}
			}
			return string(buf), nil
		case c < 0x20:
			return "", p.errf("control character in string")
		case c != '\\':
			buf = append(buf, c)
			p.pos++
			continue
		}
		p.pos++
		if p.pos >= len(p.src) {
			break
		}
		e := p.src[p.pos]
		p.pos++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, err := p.hex4()
			if err != nil {
				return "", err
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if p.pos+1 < len(p.src) && p.src[p.pos] == '\\' && p.src[p.pos+1] == 'u' {
					p.pos += 2
					if r2, err = p.hex4(); err != nil {
						return "", err
					}
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return "", p.errf("invalid surrogate pair in string")
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", p.errf("invalid escape \\%c", e)
		}
	}
	return "", p.errf("unterminated string")
}

func (p *parser) hex4() (rune, error) {
	if len(p.src)-p.pos < 4 {
		return 0, p.errf("invalid \\u escape")
	}
	v, err := strconv.ParseUint(p.src[p.pos:p.pos+4], 16, 32)
	if err != nil {
		return 0, p.errf("invalid \\u escape")
	}
	p.pos += 4
	return rune(v), nil
}

func (p *parser) array() (*node, error) {
	if p.depth++; p.depth > maxDepth {
		return nil, p.errf("nested too deeply")
	}
	defer func() { p.depth-- }()
	p.pos++
	n := p.alloc()
	n.k = kArray
	p.skipWS()
	if p.pos < len(p.src) && p.src[p.pos] == ']' {
		p.pos++
		return n, nil
	}
	base := len(p.istack)
	for {
		p.skipWS()
		v, err := p.value()
		if err != nil {
			p.istack = p.istack[:base]
			return nil, err
		}
		p.istack = append(p.istack, v)
		p.skipWS()
		if p.pos >= len(p.src) {
			p.istack = p.istack[:base]
			return nil, p.errf("unterminated array")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			n.items = p.itms.take(len(p.istack) - base)
			copy(n.items, p.istack[base:])
			p.istack = p.istack[:base]
			return n, nil
		default:
			p.istack = p.istack[:base]
			return nil, p.errf("expected ',' or ']' in array")
		}
	}
}

func (p *parser) object() (*node, error) {
	if p.depth++; p.depth > maxDepth {
		return nil, p.errf("nested too deeply")
	}
	defer func() { p.depth-- }()
	p.pos++
	n := p.alloc()
	n.k = kObject
	p.skipWS()
	if p.pos < len(p.src) && p.src[p.pos] == '}' {
		p.pos++
		return n, nil
	}
	base := len(p.fstack)
	var keys map[string]struct{} // for objects too large for a linear search
	fail := func(err error) (*node, error) {
		p.fstack = p.fstack[:base]
		return nil, err
	}
	for {
		p.skipWS()
		if p.pos >= len(p.src) || p.src[p.pos] != '"' {
			return fail(p.errf("expected a string key in object"))
		}
		k, err := p.string()
		if err != nil {
			return fail(err)
		}
		p.skipWS()
		if p.pos >= len(p.src) || p.src[p.pos] != ':' {
			return fail(p.errf("expected ':' after key"))
		}
		p.pos++
		p.skipWS()
		v, err := p.value()
		if err != nil {
			return fail(err)
		}
		if keys == nil && len(p.fstack)-base > 16 {
			keys = make(map[string]struct{}, 32)
			for _, f := range p.fstack[base:] {
				keys[f.key] = struct{}{}
			}
		}
		if keys != nil {
			if _, dup := keys[k]; dup {
				p.dups = append(p.dups, dupKey{n, k})
			}
			keys[k] = struct{}{}
		} else {
			for _, f := range p.fstack[base:] {
				if f.key == k {
					p.dups = append(p.dups, dupKey{n, k})
					break
				}
			}
		}
		p.fstack = append(p.fstack, field{k, v})
		p.skipWS()
		if p.pos >= len(p.src) {
			return fail(p.errf("unterminated object"))
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			n.fields = p.flds.take(len(p.fstack) - base)
			copy(n.fields, p.fstack[base:])
			p.fstack = p.fstack[:base]
			return n, nil
		default:
			return fail(p.errf("expected ',' or '}' in object"))
		}
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
		if len(a.items) != len(b.items) {
			return false
		}
		for i := range a.items {
			if !equalJSON(a.items[i], b.items[i]) {
				return false
			}
		}
		return true
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
			found := false
			for _, vi := range v.items {
				if includesJSON(vi, pi) {
					found = true
					break
				}
			}
			if !found {
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
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
