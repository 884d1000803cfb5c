package http

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// indentCases are compact documents of every shape the indenter must get
// right, beside the repository's JSON files.
var indentCases = []string{
	`{}`, `[]`, `{"a":{}}`, `{"a":[]}`, `[[],{}]`, `[[[]]]`, `{"a":[{},{"b":[]}]}`,
	`"x"`, `1`, `-1.5e+10`, `true`, `false`, `null`, `[1,2,3]`, `[true,null,false]`,
	`{"a":1,"b":"two","c":[3,{"d":null}],"e":{"f":{"g":[]}}}`,
	`{"q":"a \"quoted\" \\ string","u":"\u00e9\u2028<>&","k":"{[,:]}"}`,
	`["\\","\\\"","\"\\",""]`, `{"":""}`, `{"a\"b":1}`, `[0,-0,1e5,0.25,12345678901234567890]`,
}

func TestIndentCompact(t *testing.T) {
	cases := append([]string(nil), indentCases...)
	for _, glob := range []string{"../../testdata/*/*.json", "../../mappings/testdata/*/*.json", "../../mappings/testdata/*.json"} {
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var c bytes.Buffer
			if json.Compact(&c, b) == nil {
				cases = append(cases, c.String())
			}
		}
	}
	if len(cases) < 50 {
		t.Fatalf("only %d cases: the repository's JSON files were not found", len(cases))
	}
	for _, src := range cases {
		var want bytes.Buffer
		if err := json.Indent(&want, []byte(src), "", "  "); err != nil {
			t.Fatalf("case %.60q: %v", src, err)
		}
		if got := indentCompact(nil, []byte(src)); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("case %.60q:\ngot  %.200q\nwant %.200q", src, got, want.Bytes())
		}
	}
}

// TestMarshalDocumentAsEncoder: the rendering of every answer is the bytes
// encoding/json's encoder gives with two-space indentation and no HTML
// escaping.
func TestMarshalDocumentAsEncoder(t *testing.T) {
	docs := []any{
		map[string]any{"a": []any{}, "b": map[string]any{}, "c": "<&>", "d": 1.5, "e": nil},
		[]string{"x", "y"}, "plain", 42, struct {
			ID   string `json:"id"`
			List []int  `json:"list,omitempty"`
		}{ID: "a\"b"},
	}
	for _, v := range docs {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		got, err := MarshalDocument(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%#v:\ngot  %q\nwant %q", v, got, want.Bytes())
		}
	}
}

// FuzzIndentCompact holds indentCompact to json.Indent on any JSON value,
// compacted as the encoder writes it.
func FuzzIndentCompact(f *testing.F) {
	for _, c := range indentCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c bytes.Buffer
		if json.Compact(&c, data) != nil {
			return
		}
		var want bytes.Buffer
		if err := json.Indent(&want, c.Bytes(), "", "  "); err != nil {
			t.Fatal(err)
		}
		if got := indentCompact(nil, c.Bytes()); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("got %q\nwant %q", got, want.Bytes())
		}
	})
}

func BenchmarkIndent(b *testing.B) {
	src, err := os.ReadFile("../../mappings/testdata/golden/allow-icope-camden.bundle.json")
	if err != nil {
		b.Fatal(err)
	}
	var c bytes.Buffer
	if err := json.Compact(&c, src); err != nil {
		b.Fatal(err)
	}
	b.Run("indentCompact", func(b *testing.B) {
		var dst []byte
		for b.Loop() {
			dst = indentCompact(dst[:0], c.Bytes())
		}
	})
	b.Run("json.Indent", func(b *testing.B) {
		var dst bytes.Buffer
		for b.Loop() {
			dst.Reset()
			_ = json.Indent(&dst, c.Bytes(), "", "  ")
		}
	})
}
