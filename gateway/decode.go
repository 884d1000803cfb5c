package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/student-mh-referrals/gateway/gateway/jsonscan"
)

// This file is the strict half of ParseCaseRecord: it walks the JSON token
// stream against the Go types of the contract, so that every problem with the
// shape of a body (unknown or duplicate fields, wrong JSON types, nulls,
// missing required fields, broken UTF-8, hostile nesting) is named by its JSON
// path, while filling in what it can so that validation can still run on the
// rest. encoding/json alone cannot do this: it stops at the first unknown
// field, matches keys case-insensitively and keeps the last of two duplicates.
//
// The tokens come from jsonscan, in one pass that also validates the body,
// rather than from encoding/json's Decoder.Token, which allocates for every
// token and scans a byte at a time: the walk was most of the cost of a parse.
// Strings are decoded exactly as encoding/json decodes them (unquote), and
// decode_ref_test.go keeps the Decoder-based walk as the reference that the
// tests and FuzzDecodeEquiv hold this one to, input for input.

// maxDepth bounds how deeply objects and lists may nest. The contract nests
// four levels at most; the bound is there so that a hostile body cannot make
// the gateway (or the libraries after it) work through thousands of levels.
const maxDepth = 32

// FHIR IssueType codes that the contract's issues use.
const (
	issueRequired  = "required"
	issueValue     = "value"
	issueStructure = "structure"
	issueTooLong   = "too-long"
	issueInvariant = "invariant"
)

// path is a JSON path as the issues show it, with a key that sorts issues in
// the order the contract declares its fields (which is the order of the
// documentation and of the example).
type path struct {
	expr string
	key  []int
}

// String names the path in a message; the root is "the case record".
func (p path) String() string {
	if p.expr == "" {
		return "the case record"
	}
	return p.expr
}

// finding is an issue on its way out: its sort key, and whether it blocks
// the issues that validation finds at or below the same path (a field with
// the wrong JSON type decodes as empty, and "required" on top of "must be a
// string" would only be noise).
type finding struct {
	Issue
	key    []int
	blocks bool
}

// fieldInfo is one JSON field of a contract struct. A field whose json tag
// has no omitempty is required: the tags are the one place that says so, and
// the schema test holds the JSON Schema to them.
type fieldInfo struct {
	name     string
	index    int
	required bool
}

type structInfo struct {
	fields []fieldInfo
	byName map[string]int
}

var structInfos sync.Map // reflect.Type -> *structInfo

func structInfoOf(t reflect.Type) *structInfo {
	if v, ok := structInfos.Load(t); ok {
		return v.(*structInfo)
	}
	info := &structInfo{byName: map[string]int{}}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		info.byName[name] = len(info.fields)
		info.fields = append(info.fields, fieldInfo{name: name, index: i, required: !strings.Contains(opts, "omitempty")})
	}
	v, _ := structInfos.LoadOrStore(t, info)
	return v.(*structInfo)
}

// token is one token of a body as jsonscan found it: its kind and its span
// data[start:end] (a string's or key's span includes its quotes). For the
// token that opens an object or a list, close is the index of the token that
// closes it, so that a list can be sized before it is filled. A string or a
// key is plain when it has no escape and is all ASCII (jsonscan.Plain): its
// text is then its value, and it is valid UTF-8.
type token struct {
	start, end int
	close      int
	kind       jsonscan.Kind
	plain      bool
}

// walker holds the state of one decode. Walkers are pooled (walkers): the
// token list and the buffers are what a decode would otherwise allocate
// afresh for every body.
type walker struct {
	data []byte
	// toks are the body's tokens in document order, and at is the index of
	// the next one to read. open holds, while the body is scanned, the
	// indexes of the tokens that opened the containers still open.
	toks []token
	at   int
	open []int
	// record is the jsonscan.Visit that fills toks, made once per walker
	// so that passing it to jsonscan.Walk costs no allocation.
	record jsonscan.Visit
	found  []finding
	// empty lists the strings that were present but "": validation reports
	// the required ones; the rest are reported after it (see ParseCaseRecord).
	empty []path
	// expr and key are the path of the value being walked, grown as the
	// walk goes in and cut back as it comes out. They become a path (here)
	// only for a finding: most paths are never shown, and building each
	// one as a string would cost an allocation per field.
	expr []byte
	key  []int
	// buf is scratch space for unescaping strings.
	buf []byte
}

var walkers = sync.Pool{New: func() any {
	w := &walker{}
	w.record = w.visit
	return w
}}

// Limits on what a pooled walker keeps, so that one huge or deeply nested
// body does not pin its buffers in the pool for good.
const (
	maxPooledTokens = 1 << 14
	maxPooledBytes  = 64 << 10
)

// release returns w to the pool. Nothing of the body stays reachable from
// it: the findings and empty paths are cleared, not just cut back.
func (w *walker) release() {
	w.data = nil
	clear(w.found)
	w.found = w.found[:0]
	clear(w.empty)
	w.empty = w.empty[:0]
	w.expr, w.key = w.expr[:0], w.key[:0]
	if cap(w.toks) > maxPooledTokens {
		w.toks = nil
	}
	if cap(w.open) > maxPooledTokens {
		w.open = nil
	}
	if cap(w.buf) > maxPooledBytes {
		w.buf = nil
	}
	if cap(w.expr) > maxPooledBytes {
		w.expr = nil
	}
	walkers.Put(w)
}

// visit records one token of the body; jsonscan.Walk calls it.
func (w *walker) visit(k jsonscan.Kind, start, end, _ int) bool {
	switch k {
	case jsonscan.BeginObject, jsonscan.BeginArray:
		w.open = append(w.open, len(w.toks))
	case jsonscan.EndObject, jsonscan.EndArray:
		n := len(w.open) - 1
		w.toks[w.open[n]].close = len(w.toks)
		w.open = w.open[:n]
	}
	t := token{start: start, end: end, kind: k}
	if k == jsonscan.String || k == jsonscan.Key {
		t.plain = jsonscan.Plain(w.data[start:end])
	}
	w.toks = append(w.toks, t)
	return true
}

func (w *walker) add(p path, typ string, blocks bool, format string, args ...any) {
	w.found = append(w.found, finding{
		Issue:  Issue{Severity: "error", Type: typ, Expression: p.expr, Message: fmt.Sprintf(format, args...)},
		key:    p.key,
		blocks: blocks,
	})
}

// here is the path of the value being walked.
func (w *walker) here() path {
	return path{expr: string(w.expr), key: slices.Clone(w.key)}
}

// name is how a message names the value being walked (path.String).
func (w *walker) name() string {
	if len(w.expr) == 0 {
		return "the case record"
	}
	return string(w.expr)
}

// enterField, enterItem and enterUnknown step the path into a field, a list
// item ("referral.presentingNeeds[0]") or a field that the contract does not
// have, which sorts after the known fields of its object and is quoted in
// brackets unless its name is plain; each returns the mark that leave steps
// back out to.
func (w *walker) enterField(name string, pos int) int {
	mark := len(w.expr)
	if mark > 0 {
		w.expr = append(w.expr, '.')
	}
	w.expr = append(w.expr, name...)
	w.key = append(w.key, pos)
	return mark
}

func (w *walker) enterItem(i int) int {
	mark := len(w.expr)
	w.expr = append(w.expr, '[')
	w.expr = strconv.AppendInt(w.expr, int64(i), 10)
	w.expr = append(w.expr, ']')
	w.key = append(w.key, i)
	return mark
}

func (w *walker) enterUnknown(key string, after int) int {
	if isPlainName(key) {
		return w.enterField(key, after)
	}
	mark := len(w.expr)
	w.expr = append(w.expr, '[')
	w.expr = strconv.AppendQuote(w.expr, clip(key))
	w.expr = append(w.expr, ']')
	w.key = append(w.key, after)
	return mark
}

func (w *walker) leave(mark int) {
	w.expr = w.expr[:mark]
	w.key = w.key[:len(w.key)-1]
}

// decodeRecord walks data into a CaseRecord. It returns an *Error for a body
// that is not JSON (EMALFORMED) or not a JSON object (EINVALID); otherwise the
// record as far as it decoded, and the walker with its findings, which the
// caller must release once it has read them.
func decodeRecord(data []byte) (*CaseRecord, *walker, error) {
	// The syntax is checked first, in one linear pass that also bounds the
	// nesting (at encoding/json's 10,000 levels) and lists the tokens that
	// the walk then reads, so that the walk never holds a deeper stack than
	// that and never starts on a body that will turn out not to be JSON.
	w := walkers.Get().(*walker)
	w.data, w.toks, w.open, w.at = data, w.toks[:0], w.open[:0], 0
	if valid, _ := jsonscan.Walk(data, w.record); !valid {
		w.release()
		return nil, nil, syntaxError(data)
	}
	if tok := w.next(); tok.kind != jsonscan.BeginObject {
		desc := w.describe(tok)
		w.release()
		return nil, nil, &Error{Code: EINVALID, Message: "the case record must be a JSON object", Issues: []Issue{{
			Severity: "error", Type: issueStructure,
			Message: fmt.Sprintf("the body is %s; the case record must be a JSON object", desc),
		}}}
	}
	rec := &CaseRecord{}
	if err := w.object(reflect.ValueOf(rec).Elem()); err != nil {
		w.release()
		return nil, nil, AsError(err)
	}
	return rec, w, nil
}

// syntaxError says why a body that is not exactly one JSON value is not,
// naming the byte offset (counted from 0) where it stops being JSON. It is
// only called once jsonscan has found the body invalid, so it can afford
// encoding/json's slower but precise account.
func syntaxError(data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return &Error{Code: EMALFORMED, Message: "the body is empty; send the case record as a JSON object"}
	}
	var raw json.RawMessage
	err := json.Unmarshal(data, &raw)
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return &Error{Code: EMALFORMED, Message: "the body is not valid JSON", Err: err}
	}
	msg := se.Error()
	at := se.Offset
	if strings.HasPrefix(msg, "invalid character") {
		at-- // the offset counts the offending byte
	}
	switch {
	case strings.HasSuffix(msg, "after top-level value"):
		msg = fmt.Sprintf("the body is not valid JSON: unexpected data after the JSON object at byte offset %d", at)
	case msg == "unexpected end of JSON input":
		msg = fmt.Sprintf("the body is not valid JSON: it ends early, at byte offset %d; was it cut off?", at)
	default:
		msg = fmt.Sprintf("the body is not valid JSON: %s at byte offset %d", msg, at)
	}
	return &Error{Code: EMALFORMED, Message: msg, Err: err}
}

// next reads one token. The body has been validated, so the walk, which
// follows its structure, never reads past the end.
func (w *walker) next() token {
	t := w.toks[w.at]
	w.at++
	return t
}

// more reports whether the container being read has another member.
func (w *walker) more() bool {
	k := w.toks[w.at].kind
	return k != jsonscan.EndObject && k != jsonscan.EndArray
}

// broken reports whether a string or key token is not valid UTF-8 text
// (encoding/json silently replaces broken UTF-8 with U+FFFD, which would
// corrupt a name) or escapes a lone surrogate. A plain token is neither.
func (w *walker) broken(t token) bool {
	if t.plain {
		return false
	}
	raw := w.data[t.start:t.end]
	return !utf8.Valid(raw) || loneSurrogate(raw)
}

// loneSurrogate reports whether raw JSON holds a \u escape of a UTF-16
// surrogate that is not half of a pair ("\ud800"): encoding/json decodes it
// as U+FFFD, silently changing the text, as it does with broken UTF-8.
func loneSurrogate(raw []byte) bool {
	isHex := func(b []byte) (rune, bool) {
		var r rune
		for _, c := range b {
			switch {
			case '0' <= c && c <= '9':
				r = r<<4 | rune(c-'0')
			case 'a' <= c && c <= 'f':
				r = r<<4 | rune(c-'a'+10)
			case 'A' <= c && c <= 'F':
				r = r<<4 | rune(c-'A'+10)
			default:
				return 0, false
			}
		}
		return r, true
	}
	// escape returns the code unit of a \uXXXX escape at raw[i:], or -1.
	escape := func(i int) rune {
		if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
			return -1
		}
		r, ok := isHex(raw[i+2 : i+6])
		if !ok {
			return -1
		}
		return r
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		r := escape(i)
		switch {
		case r < 0:
			i++ // another escape: skip the escaped character
		case 0xD800 <= r && r < 0xDC00:
			if lo := escape(i + 6); lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 11
		case 0xDC00 <= r && r <= 0xDFFF:
			return true
		default:
			i += 5
		}
	}
	return false
}

// str is the value of a string token, as encoding/json decodes it.
func (w *walker) str(t token) string {
	raw := w.data[t.start:t.end]
	if t.plain {
		return string(raw[1 : len(raw)-1])
	}
	return w.unquote(raw)
}

// unquote decodes a string token (quotes included) exactly as encoding/json
// does: escapes are expanded, a \u escape of a lone surrogate becomes U+FFFD,
// and so does each byte of broken UTF-8. The token has been validated, so
// every escape in it is well formed.
func (w *walker) unquote(raw []byte) string {
	s := raw[1 : len(raw)-1]
	r := 0
	for r < len(s) {
		c := s[r]
		if c == '\\' {
			break
		}
		if c < utf8.RuneSelf {
			r++
			continue
		}
		rr, size := utf8.DecodeRune(s[r:])
		if rr == utf8.RuneError && size == 1 {
			break
		}
		r += size
	}
	if r == len(s) {
		return string(s)
	}
	b := append(w.buf[:0], s[:r]...)
	for r < len(s) {
		switch c := s[r]; {
		case c == '\\' && r+1 < len(s):
			r++
			switch e := s[r]; e {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r--
				rr := getu4(s[r:])
				if rr < 0 {
					// Not reached on a validated token; keep the text.
					b = append(b, '\\')
					r++
					continue
				}
				r += 6
				if utf16.IsSurrogate(rr) {
					rr1 := getu4(s[r:])
					if dec := utf16.DecodeRune(rr, rr1); dec != unicode.ReplacementChar {
						// A valid pair; consume.
						r += 6
						b = utf8.AppendRune(b, dec)
						continue
					}
					// Invalid surrogate; fall back to replacement rune.
					rr = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // '"', '\\', '/'
				b = append(b, e)
			}
			r++
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			// Coerce to well-formed UTF-8.
			rr, size := utf8.DecodeRune(s[r:])
			r += size
			b = utf8.AppendRune(b, rr)
		}
	}
	w.buf = b
	return string(b)
}

// getu4 decodes \uXXXX from the beginning of s, returning the hex value,
// or it returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c = c - '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// isNull reports whether a token is the literal null.
func (w *walker) isNull(t token) bool {
	return t.kind == jsonscan.Literal && w.data[t.start] == 'n'
}

// value decodes the next JSON value into dst (settable), at the path being
// walked. It reports false when the value was null or had the wrong JSON
// type and was skipped.
func (w *walker) value(dst reflect.Value, required bool) (bool, error) {
	tok := w.next()
	if tok.kind == jsonscan.String && w.broken(tok) {
		p := w.here()
		w.add(p, issueStructure, true, "%s is not valid UTF-8 text", p)
	}
	t := dst.Type()
	if w.isNull(tok) {
		p := w.here()
		if required {
			w.add(p, issueStructure, true, "%s must be %s, not null", p, want(t))
		} else {
			w.add(p, issueStructure, true, "%s is null; omit the field instead of null", p)
		}
		return false, nil
	}
	if t.Kind() != reflect.Pointer {
		return w.fill(dst, tok)
	}
	elem := reflect.New(t.Elem())
	ok, err := w.fill(elem.Elem(), tok)
	if ok {
		dst.Set(elem)
	}
	return ok, err
}

func (w *walker) fill(dst reflect.Value, tok token) (bool, error) {
	switch dst.Kind() {
	case reflect.String:
		if tok.kind == jsonscan.String {
			s := w.str(tok)
			dst.SetString(s)
			if s == "" {
				w.empty = append(w.empty, w.here())
			}
			return true, nil
		}
	case reflect.Bool:
		if tok.kind == jsonscan.Literal && !w.isNull(tok) {
			dst.SetBool(w.data[tok.start] == 't')
			return true, nil
		}
	case reflect.Float64:
		if tok.kind == jsonscan.Number {
			f, err := strconv.ParseFloat(string(w.data[tok.start:tok.end]), 64)
			if err != nil {
				p := w.here()
				w.add(p, issueValue, true, "%s is too large a number", p)
				return false, nil
			}
			dst.SetFloat(f)
			return true, nil
		}
	case reflect.Slice:
		if tok.kind == jsonscan.BeginArray {
			return true, w.list(dst, tok)
		}
	case reflect.Struct:
		if tok.kind == jsonscan.BeginObject {
			return true, w.object(dst)
		}
	default:
		// The contract's types use only the kinds above; a new kind is a
		// programming error that the tests catch.
		return false, fmt.Errorf("gateway: case record field %s has unsupported kind %s", w.name(), dst.Kind())
	}
	p := w.here()
	w.add(p, issueStructure, true, "%s must be %s, not %s", p, want(dst.Type()), w.describe(tok))
	return false, w.skip(tok)
}

// list fills dst from the list that open opened. The items are counted
// first (each is one token, or a container that open.close jumps over), so
// that the slice is made once at its size.
func (w *walker) list(dst reflect.Value, open token) error {
	n := 0
	for i := w.at; i < open.close; i++ {
		if k := w.toks[i].kind; k == jsonscan.BeginObject || k == jsonscan.BeginArray {
			i = w.toks[i].close
		}
		n++
	}
	if n == 0 {
		// An empty list is an empty slice, not a nil one, as it always was.
		dst.Set(reflect.MakeSlice(dst.Type(), 0, 0))
		w.next() // ]
		return nil
	}
	// Grow a zero slice in place, which allocates the array alone (where
	// MakeSlice and Set would also allocate the slice header).
	dst.SetZero()
	dst.Grow(n)
	dst.SetLen(n)
	for i := range n {
		mark := w.enterItem(i)
		// Items of the wrong type stay as zero values so that the indexes
		// that validation reports still match the document.
		_, err := w.value(dst.Index(i), true)
		w.leave(mark)
		if err != nil {
			return err
		}
	}
	w.next() // ]
	return nil
}

func (w *walker) object(dst reflect.Value) error {
	info := structInfoOf(dst.Type())
	// seen marks the contract's fields met so far, which is also how a
	// second copy of one is found; unknown does that for the other keys,
	// and is made only when there is one.
	var seenBuf [16]bool
	var seen []bool
	if len(info.fields) <= len(seenBuf) {
		seen = seenBuf[:len(info.fields)]
	} else {
		seen = make([]bool, len(info.fields))
	}
	var unknown map[string]bool
	for w.more() {
		tok := w.next()
		raw, plain := w.data[tok.start:tok.end], tok.plain
		if w.broken(tok) {
			p := w.here()
			w.add(p, issueStructure, false, "%s has a field name that is not valid UTF-8 text", p)
		}
		var (
			key   string
			pos   int
			known bool
		)
		if plain {
			pos, known = info.byName[string(raw[1:len(raw)-1])] // no copy
		} else {
			key = w.unquote(raw)
			pos, known = info.byName[key]
		}
		if known && !seen[pos] {
			seen[pos] = true
			f := info.fields[pos]
			mark := w.enterField(f.name, pos)
			_, err := w.value(dst.Field(f.index), f.required)
			w.leave(mark)
			if err != nil {
				return err
			}
			continue
		}
		if plain {
			key = string(raw[1 : len(raw)-1])
		}
		parent := w.name()
		var mark int
		if known {
			mark = w.enterField(key, pos)
		} else {
			mark = w.enterUnknown(key, len(info.fields))
		}
		if known || unknown[key] {
			w.add(w.here(), issueStructure, false, "%s has the field %q twice; send each field once", parent, clip(key))
		} else {
			w.add(w.here(), issueStructure, false, "%s has an unknown field %q%s", parent, clip(key), suggest(key, info))
			if unknown == nil {
				unknown = map[string]bool{}
			}
			unknown[key] = true
		}
		err := w.skip(w.next())
		w.leave(mark)
		if err != nil {
			return err
		}
	}
	w.next() // }
	for pos, f := range info.fields {
		if f.required && !seen[pos] {
			mark := w.enterField(f.name, pos)
			p := w.here()
			w.add(p, issueRequired, true, "%s is required", p)
			w.leave(mark)
		}
	}
	return nil
}

func isPlainName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r == '$' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return false
		}
	}
	return true
}

// skip reads past the rest of a value whose first token was tok, at the
// path being walked, reporting nesting deeper than maxDepth once. It is a
// loop, not a recursion, so that depth costs no stack.
func (w *walker) skip(tok token) error {
	if tok.kind != jsonscan.BeginObject && tok.kind != jsonscan.BeginArray {
		return nil
	}
	base := len(w.key)
	depth := base + 1
	reported := false
	for depth > base {
		if depth > maxDepth && !reported {
			p := w.here()
			w.add(p, issueStructure, true, "%s nests more than %d levels deep", p, maxDepth)
			reported = true
		}
		switch w.next().kind {
		case jsonscan.BeginObject, jsonscan.BeginArray:
			depth++
		case jsonscan.EndObject, jsonscan.EndArray:
			depth--
		}
	}
	return nil
}

// want names the JSON type that a Go type decodes from.
func want(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list (JSON array)"
	default:
		return "an object"
	}
}

// describe names the JSON type of a token, never its value.
func (w *walker) describe(tok token) string {
	switch tok.kind {
	case jsonscan.Literal:
		if w.isNull(tok) {
			return "null"
		}
		return "true or false"
	case jsonscan.String:
		return "a string"
	case jsonscan.Number:
		return "a number"
	case jsonscan.BeginArray:
		return "a list (JSON array)"
	case jsonscan.BeginObject:
		return "an object"
	}
	return "something else"
}

// clip shortens a client-supplied name or vocabulary value for a message.
func clip(s string) string {
	const max = 40
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max]) + "…"
}

// suggest proposes the known field closest to an unknown key, so that a typo
// ("priorty", "dataCatagories") is easy to fix.
func suggest(key string, info *structInfo) string {
	k := strings.ToLower(clip(key))
	best, bestD := "", -1
	for _, f := range info.fields {
		d := levenshtein(k, strings.ToLower(f.name))
		if bestD < 0 || d < bestD {
			best, bestD = f.name, d
		}
	}
	limit := max(1, min(3, utf8.RuneCountInString(best)/3))
	if bestD < 0 || bestD > limit {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// keyFor is the sort key of a path that validation reported, found by
// following the path through the contract's types.
func keyFor(expr string) []int {
	var key []int
	t := reflect.TypeFor[CaseRecord]()
	for expr != "" {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		switch {
		case expr[0] == '.':
			expr = expr[1:]
		case expr[0] == '[':
			end := strings.IndexByte(expr, ']')
			if end < 0 {
				return key
			}
			n, _ := strconv.Atoi(expr[1:end])
			key = append(key, n)
			expr = expr[end+1:]
		default:
			end := strings.IndexAny(expr, ".[")
			if end < 0 {
				end = len(expr)
			}
			if t.Kind() != reflect.Struct {
				return key
			}
			info := structInfoOf(t)
			pos, ok := info.byName[expr[:end]]
			if !ok {
				return append(key, len(info.fields))
			}
			key = append(key, pos)
			t = t.Field(info.fields[pos].index).Type
			expr = expr[end:]
		}
	}
	return key
}

// sortFindings puts issues in the contract's field order; issues at the same
// path keep the order in which they were found (document order first).
func sortFindings(fs []finding) {
	slices.SortStableFunc(fs, func(a, b finding) int { return slices.Compare(a.key, b.key) })
}
