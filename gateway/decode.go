package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/agnivade/levenshtein"
	"github.com/go-json-experiment/json/jsontext"
)

// This file is the strict half of ParseCaseRecord: it walks the body's
// jsontext tokens against the contract's Go types, naming every problem of
// shape (unknown or duplicate fields, wrong types, nulls, missing required
// fields, broken UTF-8, hostile nesting) by its JSON path while filling in
// what it can for validation. encoding/json stops at the first unknown field,
// matches keys case-insensitively and keeps the last duplicate; jsontext
// alone stops at the first duplicate or broken string, so the walk lets those
// through the tokenizer and reports each one itself.

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

// path is a JSON path as the issues show it: "referral.presentingNeeds[0]".
type path string

// String names the path in a message; the root is "the case record".
func (p path) String() string {
	if p == "" {
		return "the case record"
	}
	return string(p)
}

// finding is an issue on its way out: its sort key (keyFor), and whether it
// blocks the issues that validation finds at or below the same path (a field
// with the wrong JSON type decodes as empty, and "required" on top of "must
// be a string" would only be noise).
type finding struct {
	Issue
	key    []int
	blocks bool
}

// fieldInfo is one JSON field of a contract struct. It is required when its
// validate tag says "required": the tags are the one statement of the
// contract, and the schema test holds the JSON Schema to them.
type fieldInfo struct {
	name     string
	index    int
	required bool
}

type structInfo struct {
	fields []fieldInfo
	byName map[string]int
}

// structInfos caches structInfoOf (reflect.Type -> *structInfo): without it
// a parse costs twice as long, five times with many problems.
var structInfos sync.Map

func structInfoOf(t reflect.Type) *structInfo {
	if v, ok := structInfos.Load(t); ok {
		return v.(*structInfo)
	}
	info := &structInfo{byName: map[string]int{}}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		required := slices.Contains(strings.Split(f.Tag.Get("validate"), ","), "required")
		info.byName[name] = len(info.fields)
		info.fields = append(info.fields, fieldInfo{name: name, index: i, required: required})
	}
	v, _ := structInfos.LoadOrStore(t, info)
	return v.(*structInfo)
}

// walker holds the state of one decode.
type walker struct {
	dec   *jsontext.Decoder
	found []finding
	// empty lists the strings that were present but "": validation reports
	// the required ones; the rest are reported after it (see ParseCaseRecord).
	empty []path
	// expr is the path of the value being walked, grown going in and cut
	// back coming out.
	expr []byte
	// buf is scratch space for unquoting strings.
	buf []byte
}

// decodeRecord walks data into a CaseRecord. It returns an *Error for a body
// that is not JSON (EMALFORMED) or not a JSON object (EINVALID); otherwise the
// record as far as it decoded, and the findings of the walk.
func decodeRecord(data []byte) (*CaseRecord, *walker, error) {
	// Duplicate names and broken text pass the tokenizer, for the walk to
	// report (see above); the grammar stays strict.
	dec := jsontext.NewDecoder(bytes.NewReader(data), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	w := &walker{dec: dec}
	rec := &CaseRecord{}
	kind := w.dec.PeekKind()
	var err error
	if kind == '{' {
		if _, err = w.dec.ReadToken(); err == nil {
			err = w.object(reflect.ValueOf(rec).Elem())
		}
	} else {
		err = w.dec.SkipValue()
	}
	if err == nil {
		// Nothing but white space may follow the value.
		if _, err = w.dec.ReadToken(); err == io.EOF {
			err = nil
		} else if err == nil {
			err = errors.New("data after the top-level value")
		}
	}
	if err != nil {
		return nil, nil, syntaxError(data, err)
	}
	if kind != '{' {
		return nil, nil, &Error{Code: EINVALID, Message: "the case record must be a JSON object", Issues: []Issue{{
			Severity: "error", Type: issueStructure,
			Message: fmt.Sprintf("the body is %s; the case record must be a JSON object", describe(kind)),
		}}}
	}
	return rec, w, nil
}

// syntaxError says why a body that is not exactly one JSON value is not,
// naming the byte offset (counted from 0) where it stops being JSON. It is
// only called once jsontext has found the body invalid, so it can afford
// encoding/json's slower account, whose wording the API has always given.
func syntaxError(data []byte, cause error) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return &Error{Code: EMALFORMED, Message: "the body is empty; send the case record as a JSON object"}
	}
	var raw json.RawMessage
	err := json.Unmarshal(data, &raw)
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return &Error{Code: EMALFORMED, Message: "the body is not valid JSON", Err: cause}
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

func (w *walker) add(p path, typ string, blocks bool, format string, args ...any) {
	w.found = append(w.found, finding{
		Issue:  Issue{Severity: "error", Type: typ, Expression: string(p), Message: fmt.Sprintf(format, args...)},
		key:    keyFor(string(p)),
		blocks: blocks,
	})
}

// here is the path of the value being walked.
func (w *walker) here() path { return path(w.expr) }

// enter steps the path into a field and returns the mark that leave steps
// back out to. A name that the contract does not have is quoted in brackets
// unless it is plain.
func (w *walker) enter(name string) int {
	mark := len(w.expr)
	if !isPlainName(name) {
		w.expr = append(strconv.AppendQuote(append(w.expr, '['), clip(name)), ']')
		return mark
	}
	if mark > 0 {
		w.expr = append(w.expr, '.')
	}
	w.expr = append(w.expr, name...)
	return mark
}

func (w *walker) leave(mark int) { w.expr = w.expr[:mark] }

// unquote decodes a string token (quotes included) into w.buf, which the
// next call reuses. It reports false when the text is not valid UTF-8 or
// escapes a lone UTF-16 surrogate: encoding/json would silently turn either
// into U+FFFD, corrupting a name.
func (w *walker) unquote(raw jsontext.Value) ([]byte, bool) {
	b, err := jsontext.AppendUnquote(w.buf[:0], raw)
	w.buf = b
	return b, err == nil
}

// value decodes the next JSON value into dst (settable), at the path being
// walked; required words the message for a null.
func (w *walker) value(dst reflect.Value, required bool) error {
	t := dst.Type()
	if w.dec.PeekKind() == 'n' {
		p := w.here()
		if required {
			w.add(p, issueStructure, true, "%s must be %s, not null", p, want(t))
		} else {
			w.add(p, issueStructure, true, "%s is null; omit the field instead of null", p)
		}
		_, err := w.dec.ReadToken()
		return err
	}
	if t.Kind() != reflect.Pointer {
		_, err := w.fill(dst)
		return err
	}
	elem := reflect.New(t.Elem())
	ok, err := w.fill(elem.Elem())
	if ok {
		dst.Set(elem)
	}
	return err
}

// fill decodes the next value into dst if its JSON type fits, and reports
// whether it did; a value of the wrong type is reported and skipped.
func (w *walker) fill(dst reflect.Value) (bool, error) {
	switch kind := w.dec.PeekKind(); {
	case kind == '"' && dst.Kind() == reflect.String:
		raw, err := w.dec.ReadValue()
		if err != nil {
			return false, err
		}
		s, ok := w.unquote(raw)
		if !ok {
			p := w.here()
			w.add(p, issueStructure, true, "%s is not valid UTF-8 text", p)
		}
		dst.SetString(string(s))
		if len(s) == 0 {
			w.empty = append(w.empty, w.here())
		}
		return true, nil
	case (kind == 't' || kind == 'f') && dst.Kind() == reflect.Bool:
		tok, err := w.dec.ReadToken()
		dst.SetBool(err == nil && tok.Bool())
		return err == nil, err
	case kind == '0' && dst.Kind() == reflect.Float64:
		raw, err := w.dec.ReadValue()
		if err != nil {
			return false, err
		}
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			p := w.here()
			w.add(p, issueValue, true, "%s is too large a number", p)
			return false, nil
		}
		dst.SetFloat(f)
		return true, nil
	case kind == '[' && dst.Kind() == reflect.Slice:
		return true, w.list(dst)
	case kind == '{' && dst.Kind() == reflect.Struct:
		if _, err := w.dec.ReadToken(); err != nil {
			return false, err
		}
		return true, w.object(dst)
	default:
		p := w.here()
		w.add(p, issueStructure, true, "%s must be %s, not %s", p, want(dst.Type()), describe(kind))
		return false, w.skip()
	}
}

// list fills dst from a JSON array. Items of the wrong type stay as zero
// values so that the indexes that validation reports still match the
// document; an empty list is an empty slice, as encoding/json makes it.
func (w *walker) list(dst reflect.Value) error {
	if _, err := w.dec.ReadToken(); err != nil {
		return err
	}
	dst.Set(reflect.MakeSlice(dst.Type(), 0, 0))
	for i := 0; w.dec.PeekKind() != ']'; i++ {
		dst.Grow(1)
		dst.SetLen(i + 1)
		mark := len(w.expr) // step into the item: "referral.presentingNeeds[0]"
		w.expr = append(strconv.AppendInt(append(w.expr, '['), int64(i), 10), ']')
		err := w.value(dst.Index(i), true)
		w.leave(mark)
		if err != nil {
			return err
		}
	}
	_, err := w.dec.ReadToken()
	return err
}

// object fills dst from the members of a JSON object whose '{' has been
// read, and reports the required fields that it lacks.
func (w *walker) object(dst reflect.Value) error {
	info := structInfoOf(dst.Type())
	seen := map[string]bool{} // the names met so far, to find a second copy
	for w.dec.PeekKind() != '}' {
		raw, err := w.dec.ReadValue()
		if err != nil {
			return err
		}
		name, ok := w.unquote(raw)
		if !ok {
			p := w.here()
			w.add(p, issueStructure, false, "%s has a field name that is not valid UTF-8 text", p)
		}
		key := string(name)
		pos, known := info.byName[key]
		dup := seen[key]
		seen[key] = true
		if known && !dup {
			f := info.fields[pos]
			mark := w.enter(f.name)
			err := w.value(dst.Field(f.index), f.required)
			w.leave(mark)
			if err != nil {
				return err
			}
			continue
		}
		parent := w.here()
		mark := w.enter(key)
		if dup {
			w.add(w.here(), issueStructure, false, "%s has the field %q twice; send each field once", parent, clip(key))
		} else {
			w.add(w.here(), issueStructure, false, "%s has an unknown field %q%s", parent, clip(key), suggest(key, info))
		}
		err = w.skip()
		w.leave(mark)
		if err != nil {
			return err
		}
	}
	if _, err := w.dec.ReadToken(); err != nil { // }
		return err
	}
	for _, f := range info.fields {
		if f.required && !seen[f.name] {
			mark := w.enter(f.name)
			p := w.here()
			w.add(p, issueRequired, true, "%s is required", p)
			w.leave(mark)
		}
	}
	return nil
}

// skip reads past the next value at the path being walked, reporting once
// if it nests more than maxDepth levels deep (the record itself is level 1).
func (w *walker) skip() error {
	base, reported := w.dec.StackDepth(), false
	for {
		if _, err := w.dec.ReadToken(); err != nil {
			return err
		}
		depth := w.dec.StackDepth()
		if depth > maxDepth && !reported {
			p := w.here()
			w.add(p, issueStructure, true, "%s nests more than %d levels deep", p, maxDepth)
			reported = true
		}
		if depth == base {
			return nil
		}
	}
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

// want names the JSON type that a Go type decodes from.
func want(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	k, ok := map[reflect.Kind]jsontext.Kind{reflect.String: '"', reflect.Bool: 't', reflect.Float64: '0', reflect.Slice: '['}[t.Kind()]
	if !ok {
		k = '{'
	}
	return describe(k)
}

// describe names a JSON type, never a value.
func describe(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "true or false"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '[':
		return "a list (JSON array)"
	case '{':
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
		d := levenshtein.ComputeDistance(k, strings.ToLower(f.name))
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

// locate follows a JSON path of an issue through the contract's types. It
// returns the path's sort key and how much of the path (a prefix of expr)
// the contract defines: all of it, unless the path names a field that the
// contract does not have.
func locate(expr string) (key []int, defined int) {
	t := reflect.TypeFor[CaseRecord]()
	for rest := expr; rest != ""; {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		at := len(expr) - len(rest)
		switch {
		case rest[0] == '.':
			rest = rest[1:]
			continue
		case rest[0] == '[':
			end := strings.IndexByte(rest, ']')
			n, err := strconv.Atoi(rest[1:max(end, 1)])
			if end < 0 || err != nil { // a quoted name that the contract lacks
				if t.Kind() == reflect.Struct {
					key = append(key, len(structInfoOf(t).fields))
				}
				return key, at
			}
			key = append(key, n)
			rest = rest[end+1:]
		default:
			end := strings.IndexAny(rest, ".[")
			if end < 0 {
				end = len(rest)
			}
			if t.Kind() != reflect.Struct {
				return key, at
			}
			info := structInfoOf(t)
			pos, ok := info.byName[rest[:end]]
			if !ok {
				return append(key, len(info.fields)), at
			}
			key = append(key, pos)
			t = t.Field(info.fields[pos].index).Type
			rest = rest[end:]
		}
	}
	return key, len(expr)
}

// keyFor is the sort key of a path that validation reported.
func keyFor(expr string) []int {
	key, _ := locate(expr)
	return key
}

// DefinedPath splits the JSON path of an issue (Issue.Expression) into the
// part that the contract defines and reports whether that is all of it. A
// path that names a field the contract lacks ends in the client's own key
// name, which may be anything, even a student's name; logs record only the
// defined part.
func DefinedPath(expr string) (string, bool) {
	_, n := locate(expr)
	return strings.TrimSuffix(expr[:n], "."), n == len(expr)
}

// sortFindings puts issues in the contract's field order; issues at the same
// path keep the order in which they were found (document order first).
func sortFindings(fs []finding) {
	slices.SortStableFunc(fs, func(a, b finding) int { return slices.Compare(a.key, b.key) })
}
