package jsonscan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

var seeds = []string{
	``, ` `, `{}`, `[]`, `{"a":1}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{"a" 1}`, `{"a":}`, `{1:2}`,
	`"\u00e9"`, `"\u00g9"`, `"\x"`, "\"\x01\"", "\"\xff\"", `"\/\b\f\n\r\t\\\""`, `-`, `-0`, `01`, `1.`, `1.5e`,
	`1e+5`, `-0.0E-0`, `true`, `tru`, `nulll`, `[true,false,null]`, ` {"a" : [ {"b":"c"} , 2 ] } `, `{} {}`,
	`{"a":{"b":{"c":[[],{}]}}}`, "\t[\r\n]\n", `[-]`, `[1e]`, `{"a":1}}`, `]`, `{"":""}`,
	strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth),
	strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
	strings.Repeat(`{"a":`, MaxDepth) + "1" + strings.Repeat("}", MaxDepth),
	strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1),
}

func TestValidMatchesEncodingJSON(t *testing.T) {
	for _, s := range seeds {
		if got, want := Valid([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("Valid(%.60q) = %v, json.Valid says %v", s, got, want)
		}
	}
}

// rebuild writes the tokens Walk reports back out with separators, so that
// the result compacts to the same text as the input.
func rebuild(t testing.TB, data []byte) []byte {
	var out bytes.Buffer
	prevValue := false
	depths := []int{}
	ok, stopped := Walk(data, func(k Kind, start, end, depth int) bool {
		tok := data[start:end]
		switch k {
		case EndObject, EndArray:
			out.Write(tok)
			prevValue = true
			depths = depths[:len(depths)-1]
			if depth != len(depths) {
				t.Fatalf("end at depth %d, want %d", depth, len(depths))
			}
			return true
		case Key:
			if prevValue {
				out.WriteByte(',')
			}
			out.Write(tok)
			out.WriteByte(':')
			prevValue = false
			if depth != len(depths) {
				t.Fatalf("key at depth %d, want %d", depth, len(depths))
			}
			return true
		}
		if prevValue && len(depths) > 0 {
			// A value after a value: inside an array.
			out.WriteByte(',')
		}
		if depth != len(depths) {
			t.Fatalf("%d at depth %d, want %d", k, depth, len(depths))
		}
		out.Write(tok)
		prevValue = k != BeginObject && k != BeginArray
		if !prevValue {
			depths = append(depths, depth)
		}
		return true
	})
	if !ok || stopped {
		t.Fatalf("Walk(%q) = %v, %v", data, ok, stopped)
	}
	return out.Bytes()
}

func FuzzValid(f *testing.F) {
	for _, s := range seeds {
		if len(s) < 1000 {
			f.Add([]byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, want := Valid(data), json.Valid(data)
		if got != want {
			t.Fatalf("Valid(%q) = %v, json.Valid says %v", data, got, want)
		}
		if !got {
			return
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, data); err != nil {
			t.Fatal(err)
		}
		if r := rebuild(t, data); !bytes.Equal(r, compact.Bytes()) {
			t.Fatalf("tokens of %q rebuild as %q, want %q", data, r, compact.Bytes())
		}
	})
}

func TestWalkStops(t *testing.T) {
	data := []byte(`{"a":[1,2,{"b":3}],"c":4}`)
	n := 0
	ok, stopped := Walk(data, func(k Kind, start, end, depth int) bool {
		n++
		return string(data[start:end]) != `"b"`
	})
	if !ok || !stopped || n != 7 {
		t.Errorf("Walk = %v, %v after %d tokens; want true, true after 7", ok, stopped, n)
	}
}

func TestPlain(t *testing.T) {
	for s, want := range map[string]bool{`""`: true, `"abc"`: true, `"a\"b"`: false, `"é"`: false} {
		if got := Plain([]byte(s)); got != want {
			t.Errorf("Plain(%s) = %v, want %v", s, got, want)
		}
	}
}
