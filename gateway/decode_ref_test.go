package gateway

// This file is the frozen reference for the case-record decoder: the walker
// over encoding/json's Decoder.Token stream as it was before decode.go moved
// to jsonscan, renamed with a Ref suffix and used only by tests. The tests
// hold ParseCaseRecord to ParseCaseRecordRef on every input they can find or
// the fuzzer can make, so that the faster decoder is known to behave
// identically: the same record, the same issues in the same order, the same
// errors. Do not "fix" anything here: a change of behaviour belongs in
// decode.go and in the golden files, and then here only if the reference is
// deliberately moved along with it.

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
	"unicode/utf8"
)

// maxDepth bounds how deeply objects and lists may nest. The contract nests
// four levels at most; the bound is there so that a hostile body cannot make
// the gateway (or the libraries after it) work through thousands of levels.
const maxDepthRef = 32

// path is a JSON path as the issues show it, with a key that sorts issues in
// the order the contract declares its fields (which is the order of the
// documentation and of the example).
type pathRef struct {
	expr string
	key  []int
}

func (p pathRef) field(name string, pos int) pathRef {
	expr := name
	if p.expr != "" {
		expr = p.expr + "." + name
	}
	return pathRef{expr: expr, key: append(slices.Clip(p.key), pos)}
}

func (p pathRef) item(i int) pathRef {
	return pathRef{expr: p.expr + "[" + strconv.Itoa(i) + "]", key: append(slices.Clip(p.key), i)}
}

// String names the path in a message; the root is "the case record".
func (p pathRef) String() string {
	if p.expr == "" {
		return "the case record"
	}
	return p.expr
}

// has no omitempty is required: the tags are the one place that says so, and
// the schema test holds the JSON Schema to them.
type fieldInfoRef struct {
	name     string
	index    int
	required bool
}

type structInfoRef struct {
	fields []fieldInfoRef
	byName map[string]int
}

var structInfosRef sync.Map // reflect.Type -> *structInfoRef

func structInfoOfRef(t reflect.Type) *structInfoRef {
	if v, ok := structInfosRef.Load(t); ok {
		return v.(*structInfoRef)
	}
	info := &structInfoRef{byName: map[string]int{}}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		info.byName[name] = len(info.fields)
		info.fields = append(info.fields, fieldInfoRef{name: name, index: i, required: !strings.Contains(opts, "omitempty")})
	}
	v, _ := structInfosRef.LoadOrStore(t, info)
	return v.(*structInfoRef)
}

// walker holds the state of one decode.
type walkerRef struct {
	dec   *json.Decoder
	data  []byte
	found []finding
	// empty lists the strings that were present but "": validation reports
	// the required ones; the rest are reported after it (see ParseCaseRecord).
	empty []pathRef
}

func (w *walkerRef) add(p pathRef, typ string, blocks bool, format string, args ...any) {
	w.found = append(w.found, finding{
		Issue:  Issue{Severity: "error", Type: typ, Expression: p.expr, Message: fmt.Sprintf(format, args...)},
		key:    p.key,
		blocks: blocks,
	})
}

// decodeRecordRef walks data into a CaseRecord. It returns an *Error for a body
// that is not JSON (EMALFORMED) or not a JSON object (EINVALID); otherwise the
// record as far as it decoded, and the walker with its findings.
func decodeRecordRef(data []byte) (*CaseRecord, *walkerRef, error) {
	// The syntax is checked first, in one linear pass that also bounds the
	// nesting (encoding/json's scanner stops at 10,000 levels), so that the
	// walk never holds a deeper stack than that and never starts on a body
	// that will turn out not to be JSON.
	if err := checkSyntaxRef(data); err != nil {
		return nil, nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	w := &walkerRef{dec: dec, data: data}
	rec := &CaseRecord{}
	root := pathRef{}
	tok, err := w.next(root, false)
	if err != nil {
		return nil, nil, err
	}
	if tok != json.Delim('{') {
		return nil, nil, &Error{Code: EINVALID, Message: "the case record must be a JSON object", Issues: []Issue{{
			Severity: "error", Type: issueStructure,
			Message: fmt.Sprintf("the body is %s; the case record must be a JSON object", describeRef(tok)),
		}}}
	}
	if err := w.object(reflect.ValueOf(rec).Elem(), root); err != nil {
		return nil, nil, AsError(err)
	}
	return rec, w, nil
}

// checkSyntaxRef reports a body that is not exactly one JSON value, naming the
// byte offset (counted from 0) where it stops being JSON.
func checkSyntaxRef(data []byte) error {
	if json.Valid(data) {
		return nil
	}
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

// next reads one token, checking that its bytes are valid UTF-8 (encoding/json
// silently replaces broken UTF-8 with U+FFFD, which would corrupt a name).
func (w *walkerRef) next(p pathRef, isKey bool) (json.Token, error) {
	start := w.dec.InputOffset()
	tok, err := w.dec.Token()
	if err != nil {
		return nil, w.syntax(err)
	}
	if end := w.dec.InputOffset(); !utf8.Valid(w.data[start:end]) || loneSurrogateRef(w.data[start:end]) {
		if isKey {
			w.add(p, issueStructure, false, "%s has a field name that is not valid UTF-8 text", p)
		} else {
			w.add(p, issueStructure, true, "%s is not valid UTF-8 text", p)
		}
	}
	return tok, nil
}

// loneSurrogateRef reports whether raw JSON holds a \u escape of a UTF-16
// surrogate that is not half of a pair ("\ud800"): encoding/json decodes it
// as U+FFFD, silently changing the text, as it does with broken UTF-8.
func loneSurrogateRef(raw []byte) bool {
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

// syntax turns a decoder error into EMALFORMED. checkSyntaxRef has already
// passed the body, so this is a safety net, not a path that inputs take.
func (w *walkerRef) syntax(err error) error {
	return &Error{Code: EMALFORMED, Message: fmt.Sprintf("the body is not valid JSON at byte offset %d", w.dec.InputOffset()), Err: err}
}

// value decodes the next JSON value into dst (settable). It reports false
// when the value was null or had the wrong JSON type and was skipped.
func (w *walkerRef) value(dst reflect.Value, p pathRef, required bool) (bool, error) {
	tok, err := w.next(p, false)
	if err != nil {
		return false, err
	}
	t := dst.Type()
	if tok == nil {
		if required {
			w.add(p, issueStructure, true, "%s must be %s, not null", p, wantRef(t))
		} else {
			w.add(p, issueStructure, true, "%s is null; omit the field instead of null", p)
		}
		return false, nil
	}
	if t.Kind() != reflect.Pointer {
		return w.fill(dst, tok, p)
	}
	elem := reflect.New(t.Elem())
	ok, err := w.fill(elem.Elem(), tok, p)
	if ok {
		dst.Set(elem)
	}
	return ok, err
}

func (w *walkerRef) fill(dst reflect.Value, tok json.Token, p pathRef) (bool, error) {
	switch dst.Kind() {
	case reflect.String:
		if s, ok := tok.(string); ok {
			dst.SetString(s)
			if s == "" {
				w.empty = append(w.empty, p)
			}
			return true, nil
		}
	case reflect.Bool:
		if b, ok := tok.(bool); ok {
			dst.SetBool(b)
			return true, nil
		}
	case reflect.Float64:
		if n, ok := tok.(json.Number); ok {
			f, err := strconv.ParseFloat(string(n), 64)
			if err != nil {
				w.add(p, issueValue, true, "%s is too large a number", p)
				return false, nil
			}
			dst.SetFloat(f)
			return true, nil
		}
	case reflect.Slice:
		if tok == json.Delim('[') {
			return true, w.list(dst, p)
		}
	case reflect.Struct:
		if tok == json.Delim('{') {
			return true, w.object(dst, p)
		}
	default:
		// The contract's types use only the kinds above; a new kind is a
		// programming error that the tests catch.
		return false, fmt.Errorf("gateway: case record field %s has unsupported kind %s", p, dst.Kind())
	}
	w.add(p, issueStructure, true, "%s must be %s, not %s", p, wantRef(dst.Type()), describeRef(tok))
	return false, w.skip(tok, p)
}

func (w *walkerRef) list(dst reflect.Value, p pathRef) error {
	s := reflect.MakeSlice(dst.Type(), 0, 0)
	for i := 0; w.dec.More(); i++ {
		elem := reflect.New(dst.Type().Elem()).Elem()
		if _, err := w.value(elem, p.item(i), true); err != nil {
			return err
		}
		// Items of the wrong type stay as zero values so that the indexes
		// that validation reports still match the document.
		s = reflect.Append(s, elem)
	}
	if _, err := w.next(p, false); err != nil { // ]
		return err
	}
	dst.Set(s)
	return nil
}

func (w *walkerRef) object(dst reflect.Value, p pathRef) error {
	info := structInfoOfRef(dst.Type())
	seen := make([]bool, len(info.fields))
	keys := map[string]bool{}
	for w.dec.More() {
		tok, err := w.next(p, true)
		if err != nil {
			return err
		}
		key, _ := tok.(string) // the decoder only returns strings as keys
		pos, known := info.byName[key]
		fp := p.field(key, pos)
		if !known {
			fp = p.unknown(key, len(info.fields))
		}
		switch {
		case keys[key]:
			w.add(fp, issueStructure, false, "%s has the field %q twice; send each field once", p, clipRef(key))
		case !known:
			w.add(fp, issueStructure, false, "%s has an unknown field %q%s", p, clipRef(key), suggestRef(key, info))
		default:
			keys[key] = true
			seen[pos] = true
			f := info.fields[pos]
			if _, err := w.value(dst.Field(f.index), fp, f.required); err != nil {
				return err
			}
			continue
		}
		keys[key] = true
		tok, err = w.dec.Token()
		if err != nil {
			return w.syntax(err)
		}
		if err := w.skip(tok, fp); err != nil {
			return err
		}
	}
	if _, err := w.next(p, false); err != nil { // }
		return err
	}
	for pos, f := range info.fields {
		if f.required && !seen[pos] {
			w.add(p.field(f.name, pos), issueRequired, true, "%s is required", p.field(f.name, pos))
		}
	}
	return nil
}

// unknown is the path of a field that the contract does not have; it sorts
// after the known fields of its object.
func (p pathRef) unknown(key string, after int) pathRef {
	q := p.field(key, after)
	if !isPlainNameRef(key) {
		q.expr = p.expr + "[" + strconv.Quote(clipRef(key)) + "]"
	}
	return q
}

func isPlainNameRef(s string) bool {
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

// skip reads past the rest of a value whose first token was tok, reporting
// nesting deeper than maxDepth once. It is a loop, not a recursion, so that
// depth costs no stack.
func (w *walkerRef) skip(tok json.Token, p pathRef) error {
	d, ok := tok.(json.Delim)
	if !ok || (d != '{' && d != '[') {
		return nil
	}
	base := len(p.key)
	depth := base + 1
	reported := false
	for depth > base {
		if depth > maxDepthRef && !reported {
			w.add(p, issueStructure, true, "%s nests more than %d levels deep", p, maxDepthRef)
			reported = true
		}
		tok, err := w.dec.Token()
		if err != nil {
			return w.syntax(err)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return nil
}

// want names the JSON type that a Go type decodes from.
func wantRef(t reflect.Type) string {
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
func describeRef(tok json.Token) string {
	switch tok := tok.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "true or false"
	case json.Number:
		return "a number"
	case json.Delim:
		if tok == '[' {
			return "a list (JSON array)"
		}
		return "an object"
	}
	return "something else"
}

// clip shortens a client-supplied name or vocabulary value for a message.
func clipRef(s string) string {
	const max = 40
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max]) + "…"
}

// suggest proposes the known field closest to an unknown key, so that a typo
// ("priorty", "dataCatagories") is easy to fix.
func suggestRef(key string, info *structInfoRef) string {
	k := strings.ToLower(clipRef(key))
	best, bestD := "", -1
	for _, f := range info.fields {
		d := levenshteinRef(k, strings.ToLower(f.name))
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

func levenshteinRef(a, b string) int {
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
func keyForRef(expr string) []int {
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
			info := structInfoOfRef(t)
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
func sortFindingsRef(fs []finding) {
	slices.SortStableFunc(fs, func(a, b finding) int { return slices.Compare(a.key, b.key) })
}

// ParseCaseRecordRef is ParseCaseRecord as it was, over decodeRecordRef.
func ParseCaseRecordRef(data []byte) (*CaseRecord, error) {
	rec, w, err := decodeRecordRef(data)
	if err != nil {
		return nil, err
	}
	checked, err := validationFindings(rec)
	if err != nil {
		return nil, err
	}
	checked = append(checked, crossFieldFindings(rec)...)

	found := slices.Concat(w.found, unblockedRef(w.found, checked))
	reported := make(map[string]bool, len(found))
	for _, f := range found {
		reported[f.Expression] = true
	}
	for _, p := range w.empty {
		if !reported[p.expr] {
			reported[p.expr] = true
			found = append(found, finding{key: p.key, Issue: Issue{
				Severity: "error", Type: issueValue, Expression: p.expr,
				Message: p.expr + " is empty; send a value or omit the field",
			}})
		}
	}
	if len(found) == 0 {
		return rec, nil
	}

	sortFindingsRef(found)
	msg := fmt.Sprintf("the case record does not meet the contract (%d problems)", len(found))
	if len(found) == 1 {
		msg = "the case record does not meet the contract (1 problem)"
	}
	if len(found) > maxIssues {
		msg = fmt.Sprintf("the case record does not meet the contract (%d problems; the first %d are listed)", len(found), maxIssues)
		found = found[:maxIssues]
	}
	issues := make([]Issue, len(found))
	for i, f := range found {
		issues[i] = f.Issue
	}
	return nil, &Error{Code: EINVALID, Message: msg, Issues: issues}
}

func unblockedRef(decoded, checked []finding) []finding {
	blocked := map[string]bool{}
	for _, f := range decoded {
		if f.blocks {
			blocked[f.Expression] = true
		}
	}
	if len(blocked) == 0 {
		return checked
	}
	out := checked[:0:0]
	for _, f := range checked {
		if !underAnyRef(f.Expression, blocked) {
			out = append(out, f)
		}
	}
	return out
}

func underAnyRef(expr string, paths map[string]bool) bool {
	if paths[expr] {
		return true
	}
	for i := len(expr) - 1; i > 0; i-- {
		if (expr[i] == '.' || expr[i] == '[') && paths[expr[:i]] {
			return true
		}
	}
	return false
}
