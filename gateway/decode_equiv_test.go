package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway/jsonscan"
)

// These tests hold ParseCaseRecord (decode.go, over jsonscan) to
// ParseCaseRecordRef (decode_ref_test.go, over encoding/json's Decoder): for
// every input, the same record and the same error, issues and all. The
// faster decoder is only worth having if no client can tell it from the
// old one.

// sameParse reports how ParseCaseRecord and ParseCaseRecordRef differ on
// data, or "" when they agree exactly.
func sameParse(data []byte) string {
	got, gotErr := ParseCaseRecord(data)
	want, wantErr := ParseCaseRecordRef(data)
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		return fmt.Sprintf("records differ:\n got %s\nwant %s", g, w)
	}
	if !reflect.DeepEqual(gotErr, wantErr) {
		return fmt.Sprintf("errors differ:\n got %s\nwant %s", describeErr(gotErr), describeErr(wantErr))
	}
	return ""
}

func describeErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	e := AsError(err)
	var b strings.Builder
	fmt.Fprintf(&b, "%T %q", err, err.Error())
	for _, is := range e.Issues {
		fmt.Fprintf(&b, "\n  %q %s %s %q", is.Expression, is.Severity, is.Type, is.Message)
	}
	return b.String()
}

func checkSame(t *testing.T, data []byte) {
	t.Helper()
	if d := sameParse(data); d != "" {
		t.Errorf("ParseCaseRecord and ParseCaseRecordRef differ on %.200q:\n%s", data, d)
	}
}

// equivFiles lists every file under the repository's testdata and the
// package's: case records, the evaluate fixtures, the golden files, the
// fuzz corpora.
func equivFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, root := range []string{filepath.Join("..", "testdata"), "testdata"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(files) < 50 {
		t.Fatalf("only %d files under testdata", len(files))
	}
	return files
}

// equivInputs reads a file as inputs: its bytes; for a fuzz corpus file,
// the []byte values it holds; and every object and list inside a JSON file
// on its own, so that a fixture that wraps a case record (the evaluate
// files) yields the record too.
func equivInputs(t testing.TB, file string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	inputs := [][]byte{data}
	if bytes.HasPrefix(data, []byte("go test fuzz v1\n")) {
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<26)
		for sc.Scan() {
			line := sc.Text()
			if lit, ok := strings.CutPrefix(line, "[]byte("); ok && strings.HasSuffix(lit, ")") {
				s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
				if err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				inputs = append(inputs, []byte(s))
			}
		}
		return inputs
	}
	var opens []int
	jsonscan.Walk(data, func(k jsonscan.Kind, start, end, _ int) bool {
		switch k {
		case jsonscan.BeginObject, jsonscan.BeginArray:
			opens = append(opens, start)
		case jsonscan.EndObject, jsonscan.EndArray:
			from := opens[len(opens)-1]
			opens = opens[:len(opens)-1]
			if len(opens) > 0 { // the whole file is already in
				inputs = append(inputs, data[from:end])
			}
		}
		return true
	})
	return inputs
}

func TestDecodeEquivFiles(t *testing.T) {
	n := 0
	for _, file := range equivFiles(t) {
		for _, data := range equivInputs(t, file) {
			n++
			if d := sameParse(data); d != "" {
				t.Errorf("%s: ParseCaseRecord and ParseCaseRecordRef differ on %.200q:\n%s", file, data, d)
			}
		}
	}
	t.Logf("%d inputs", n)
}

// TestDecodeEquivConcurrent parses different bodies at once, so that a
// pooled walker that leaked state from one parse into another (or a record
// that kept pointing into a walker's buffers) would show, and so that -race
// can see the pool in use.
func TestDecodeEquivConcurrent(t *testing.T) {
	var inputs [][]byte
	for _, dir := range []string{"valid", "invalid"} {
		for _, file := range cases(t, dir) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			inputs = append(inputs, data)
		}
	}
	want := make([]string, len(inputs))
	for i, data := range inputs {
		want[i] = canonicalParse(ParseCaseRecordRef(data))
	}
	for g := range 4 {
		t.Run(strconv.Itoa(g), func(t *testing.T) {
			t.Parallel()
			for round := range 20 {
				for i := range inputs {
					i := (i + g*7 + round) % len(inputs)
					if got := canonicalParse(ParseCaseRecord(inputs[i])); got != want[i] {
						t.Fatalf("%d: got\n%s\nwant\n%s", i, got, want[i])
					}
				}
			}
		})
	}
}

// canonicalParse is the outcome of a parse as text, to compare after the
// records have gone on living (and the pool has been reused).
func canonicalParse(rec *CaseRecord, err error) string {
	r, _ := json.Marshal(rec)
	return string(r) + "\n" + describeErr(err)
}

// validRecord is the record the hostile cases are built around.
func validRecord(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "parse", "valid", "liverpool-u-cope.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCaseRecord(data); err != nil {
		t.Fatalf("the base record does not parse: %v", err)
	}
	return data
}

// hostileValues are JSON values to put where a record has a value.
var hostileValues = []string{
	`null`, `true`, `false`, `0`, `-0`, `1`, `-1.5e-3`, `1E+2`, `1e400`, `-1e400`, `1e-400`,
	`123456789012345678901234567890`, `0.1e1`, `2.5`, `""`, `" "`, `"x"`, `"given"`, `"2026-11-19"`,
	`"\u0000"`, `"a\u0000b"`, `"\u00e9"`, `"é"`, `"\ud83d\ude00"`, `"😀"`, `"\ud800"`, `"\udc00"`,
	`"\ud800\u0041"`, `"\ud800\ud800"`, `"\udc00\ud800"`, `"\ud800x"`, `"\\ud800"`, `"\\\ud800"`,
	`"\"\\\/\b\f\n\r\t"`, `"\u005c"`, `"\u0022"`, "\"\xff\"", "\"a\xc3\"", "\"\xc0\x80\"", "\"\xed\xa0\x80\"",
	"\"\xf4\x90\x80\x80\"", "\"\xef\xbf\xbd\"", `"\ufffd"`, "\"\x7f\"", `"\u0009"`, "\"\u2028\"",
	`[]`, `{}`, `[null]`, `[1,"a",null,[],{}]`, `[""]`, `["\ud800"]`, `[["x"]]`, `{"a":1}`, `{"code":"low-mood"}`,
	`{"code":null,"text":""}`, `[{"code":"x","code":"y"}]`, `{"":1}`, `{"a":{"b":{"c":[[{}]]}}}`,
	nest(30), nest(31), nest(32), nest(33), nest(34), nestObj(31), nestObj(32), nestObj(33),
	`"` + strings.Repeat("a", 10001) + `"`, `"` + strings.Repeat("é", 5000) + `"`,
	`[` + strings.Repeat(`"x",`, 150) + `"x"]`,
}

func nest(n int) string    { return strings.Repeat("[", n) + strings.Repeat("]", n) }
func nestObj(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }

// hostileKeys are keys to put where a record has a key.
var hostileKeys = []string{
	`""`, `"caseId"`, `"case\u0049d"`, `"CaseId"`, `"caseid"`, `"priorty"`, `"x y"`, `"\ud800"`, "\"\xff\"",
	"\"case\xffId\"", `"\u0000"`, `"é"`, `"\u00e9"`, `"$ref"`, `"a.b"`, `"a[0]"`, `"` + strings.Repeat("k", 65) + `"`,
	`"` + strings.Repeat("k", 64) + `"`, `"` + strings.Repeat("é", 50) + `"`, `"\""`, `"name"`, `"code"`,
}

// TestDecodeEquivMutations puts each hostile value in place of each value
// of a valid record, and each hostile key in place of each key, so that
// every field of the contract sees every shape.
func TestDecodeEquivMutations(t *testing.T) {
	base := validRecord(t)
	type span struct {
		start, end int
		key        bool
	}
	var spans []span
	jsonscan.Walk(base, func(k jsonscan.Kind, start, end, depth int) bool {
		switch k {
		case jsonscan.Key:
			spans = append(spans, span{start, end, true})
		case jsonscan.String, jsonscan.Number, jsonscan.Literal:
			spans = append(spans, span{start, end, false})
		case jsonscan.BeginObject, jsonscan.BeginArray:
			if depth > 0 {
				spans = append(spans, span{start, -1, false}) // end filled below
			}
		}
		return true
	})
	// Containers: find each one's end by walking its text.
	for i, s := range spans {
		if s.end >= 0 {
			continue
		}
		depth := 0
		jsonscan.Walk(base[s.start:], func(k jsonscan.Kind, start, end, _ int) bool {
			switch k {
			case jsonscan.BeginObject, jsonscan.BeginArray:
				depth++
			case jsonscan.EndObject, jsonscan.EndArray:
				depth--
				if depth == 0 {
					spans[i].end = s.start + end
					return false
				}
			}
			return true
		})
	}
	n := 0
	for _, s := range spans {
		with := hostileValues
		if s.key {
			with = hostileKeys
		}
		for _, v := range with {
			data := slicesConcat(base[:s.start], []byte(v), base[s.end:])
			n++
			checkSame(t, data)
			if s.key {
				// And the key twice over: a duplicate.
				n++
				checkSame(t, slicesConcat(base[:s.start], []byte(v), base[s.start:]))
			}
		}
		// Remove the member or item altogether.
		n++
		checkSame(t, slicesConcat(base[:s.start], base[s.end:]))
	}
	t.Logf("%d inputs", n)
}

func slicesConcat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestDecodeEquivHostile is the table of bodies written by hand: roots of
// every type, the edges of the nesting limit, duplicates, escapes, nulls,
// broken text, numbers, whitespace and trailing data.
func TestDecodeEquivHostile(t *testing.T) {
	base := validRecord(t)
	inner := string(bytes.TrimSpace(base))
	inner = inner[1 : len(inner)-1] // the members of the record
	cases := []string{
		``, ` `, "\t\r\n ", `{`, `}`, `{}`, ` {} `, `[]`, `[{}]`, `null`, `true`, `false`, `0`, `-1.5`, `1e999`,
		`""`, `"x"`, `"\ud800"`, "\"\xff\"", `{"a":1}`, `{"a":1}}`, `{} {}`, `{}x`, `{} `, "{}\n", `{},`,
		"\ufeff{}", `{"schemaVersion":"1",}`, `{"schemaVersion" "1"}`, `{'a':1}`, `{"a":01}`, `{"a":1.}`,
		`{"a":-}`, `{"a":tru}`, `{"a":nul}`, `{"a":"\x"}`, `{"a":"` + "\x01" + `"}`, `{"a":"\u12"}`,
		`{"schemaVersion":null,"caseId":null,"institution":null,"referrer":null,"student":null,"referral":null,"consent":null,"override":null}`,
		`{"schemaVersion":1,"caseId":true,"institution":[],"referrer":"x","student":1,"referral":false,"consent":[{}],"override":"x"}`,
		`{"caseId":"a","caseId":"b","caseId":null}`, `{"x":1,"x":2,"x":3}`, `{"caseId":"a","case\u0049d":"b"}`,
		`{"\ud800":1,"\udc00":2}`, "{\"\xff\":1,\"\xfe\":2}", "{\"\xff\":1,\"\xff\":2}", `{"\ud800":1,"\ufffd":2}`,
		`{"":1,"":2}`, `{"\u0000":1}`, `{"referral":{"presentingNeeds":[null,1,"x",[],{},{"code":null}]}}`,
		`{"referral":{"riskAssessment":{"score":1e400}}}`, `{"referral":{"riskAssessment":{"score":-1e400}}}`,
		`{"referral":{"riskAssessment":{"score":1e-400}}}`, `{"referral":{"riskAssessment":{"score":-0}}}`,
		`{"referral":{"riskAssessment":{"score":"7"}}}`, `{"referral":{"riskAssessment":{"score":null}}}`,
		`{"referral":{"riskAssessment":{"score":1,"score":2}}}`, `{"referral":{"underSecondaryCare":null}}`,
		`{"referral":{"underSecondaryCare":"true"}}`, `{"student":{"name":{"given":null}}}`,
		`{"student":{"name":{"given":[]}}}`, `{"student":{"name":{"given":[null,null]}}}`,
		`{"student":{"name":{"given":["",""]}}}`, `{"student":{"name":{"given":"x"}}}`,
		`{"student":{"name":{"family":""}},"caseId":""}`, `{"override":{}}`, `{"override":null}`,
		`{"override":{"consentSought":null,"decidedBy":{},"lawfulBasis":[]}}`,
		"{" + inner + "," + inner + "}", "{" + inner + `,"extra":` + nest(40) + "}",
		"  {" + inner + "}  \n", "{" + inner + "} {}", "{" + inner + "}]",
		"{" + inner + `,"` + strings.Repeat("z", 1<<20) + `":1}`,
		"{" + inner + `,"big":"` + strings.Repeat("\\u00e9", 1<<16) + `"}`,
		"{" + inner + `,"big":"` + strings.Repeat("\xff", 1<<16) + `"}`,
		`{"x":` + nest(jsonscan.MaxDepth-1) + `}`, `{"x":` + nest(jsonscan.MaxDepth) + `}`,
		nest(jsonscan.MaxDepth), nest(jsonscan.MaxDepth + 1),
	}
	for n := 29; n <= 35; n++ {
		cases = append(cases,
			`{"x":`+nest(n)+`}`, `{"x":`+nestObj(n)+`}`, `{"caseId":`+nest(n)+`}`,
			`{"student":{"name":{"given":`+nest(n)+`}}}`, `{"student":{"name":{"given":["a",`+nest(n)+`]}}}`,
			`{"referral":{"presentingNeeds":[{"code":`+nestObj(n)+`}]}}`, nest(n), nestObj(n),
			`{"x":1,"x":`+nest(n)+`}`, `{"caseId":"a","caseId":`+nest(n)+`}`,
			`{"a":`+nest(n)+`,"b":`+nest(n)+`}`, "{"+strings.Repeat(`"x":{`, n)+strings.Repeat("}", n)+"}",
		)
	}
	for _, v := range hostileValues {
		cases = append(cases, v, `{"x":`+v+`}`, `{"caseId":`+v+`}`, `{"referral":{"riskAssessment":{"score":`+v+`}}}`,
			`{"consent":{"capacity":`+v+`}}`, `{"student":{"name":{"given":[`+v+`]}}}`)
	}
	for _, k := range hostileKeys {
		cases = append(cases, "{"+k+":1}", "{"+k+":1,"+k+":2}", `{"student":{`+k+`:null}}`)
	}
	for _, c := range cases {
		checkSame(t, []byte(c))
	}
}

// FuzzDecodeEquiv holds ParseCaseRecord to ParseCaseRecordRef on any input.
//
//	go test ./gateway -run '^$' -fuzz '^FuzzDecodeEquiv$' -fuzztime 10m
func FuzzDecodeEquiv(f *testing.F) {
	for _, file := range equivFiles(f) {
		for _, data := range equivInputs(f, file) {
			if len(data) <= 64<<10 {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if d := sameParse(data); d != "" {
			t.Fatalf("ParseCaseRecord and ParseCaseRecordRef differ on %q:\n%s", data, d)
		}
	})
}

// BenchmarkDecodeRefVsNew measures the reference and the new decoder in one
// process, so that their ratio survives a noisy machine better than two runs
// of BenchmarkParseCaseRecord do. The impl= sub-benchmarks run one after the
// other (benchstat -col /impl compares them, and gives allocs/op); the
// alternate= ones run the two in turn on every iteration, timing each, and
// report ref-ns/op, new-ns/op and their ratio (ref/new), which is what a
// load spike cannot skew. "parse" is ParseCaseRecord, "decode" its first
// half alone (the walk, before validation).
func BenchmarkDecodeRefVsNew(b *testing.B) {
	parses := []struct {
		name     string
		ref, new func([]byte) (*CaseRecord, error)
	}{
		{"parse", ParseCaseRecordRef, ParseCaseRecord},
		{"decode", func(data []byte) (*CaseRecord, error) {
			rec, _, err := decodeRecordRef(data)
			return rec, err
		}, func(data []byte) (*CaseRecord, error) {
			rec, w, err := decodeRecord(data)
			if w != nil {
				w.release()
			}
			return rec, err
		}},
	}
	for _, name := range []string{"valid/liverpool-u-cope", "invalid/many-problems"} {
		data, err := os.ReadFile(filepath.Join("testdata", "parse", name+".json"))
		if err != nil {
			b.Fatal(err)
		}
		c := strings.ReplaceAll(name, "/", "-")
		for _, p := range parses {
			for _, impl := range []struct {
				name  string
				parse func([]byte) (*CaseRecord, error)
			}{{"ref", p.ref}, {"new", p.new}} {
				b.Run("case="+c+"/"+p.name+"/impl="+impl.name, func(b *testing.B) {
					b.SetBytes(int64(len(data)))
					b.ReportAllocs()
					for b.Loop() {
						_, _ = impl.parse(data)
					}
				})
			}
			b.Run("case="+c+"/"+p.name+"/alternate=ref-new", func(b *testing.B) {
				var refT, newT time.Duration
				for b.Loop() {
					t0 := time.Now()
					_, _ = p.ref(data)
					t1 := time.Now()
					_, _ = p.new(data)
					t2 := time.Now()
					refT += t1.Sub(t0)
					newT += t2.Sub(t1)
				}
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(float64(refT.Nanoseconds())/float64(b.N), "ref-ns/op")
				b.ReportMetric(float64(newT.Nanoseconds())/float64(b.N), "new-ns/op")
				b.ReportMetric(float64(refT)/float64(newT), "ref/new")
			})
		}
	}
}
