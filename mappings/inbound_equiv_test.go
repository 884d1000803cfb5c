package mappings

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/student-mh-referrals/gateway/gateway"
)

// checkInboundTokens is checkInbound as it was, with encoding/json's
// Decoder.Token: the reference that the walk must agree with.
func checkInboundTokens(body []byte) error {
	malformed := func(msg string) error {
		return &gateway.Error{Code: gateway.EMALFORMED, Message: "the body is not JSON", Issues: []gateway.Issue{{
			Severity: "error", Type: "structure", Message: msg,
		}}}
	}
	if bytes.HasPrefix(body, []byte("\xef\xbb\xbf")) {
		return malformed("the body starts with a byte order mark; send UTF-8 JSON without one")
	}
	if !utf8.Valid(body) {
		return malformed("the body is not valid UTF-8; FHIR JSON is UTF-8 without a byte order mark")
	}
	if !json.Valid(body) {
		return malformed("the body is not a JSON FHIR Bundle")
	}
	invalid := func(msg string) error {
		return &gateway.Error{Code: gateway.EINVALID, Message: "not a BaRS response message", Issues: []gateway.Issue{{
			Severity: "error", Type: "structure", Message: msg,
		}}}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		keys    map[string]bool
		wantKey bool
	}
	var stack []frame
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return malformed("the body is not a JSON FHIR Bundle")
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= maxInboundDepth {
				return invalid("the message nests more than " + strconv.Itoa(maxInboundDepth) + " levels deep")
			}
			f := frame{}
			if tok == json.Delim('{') {
				f = frame{keys: map[string]bool{}, wantKey: true}
			}
			stack = append(stack, f)
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
			continue
		}
		top := len(stack) - 1
		if top < 0 || !stack[top].wantKey {
			valueDone()
			continue
		}
		stack[top].wantKey = false
		key, _ := tok.(string)
		if stack[top].keys[key] {
			return invalid("an object has the element " + strconv.Quote(clipName(key)) + " twice; send each element once")
		}
		stack[top].keys[key] = true
		for _, name := range readElements {
			if key != name && strings.EqualFold(key, name) {
				return invalid("unknown element " + strconv.Quote(clipName(key)) + "; FHIR element names are case-sensitive (" + name + ")")
			}
		}
	}
}

var inboundSeeds = []string{
	`{}`, `{"a":1,"a":2}`, `{"a":{"a":1},"a":2}`, `{"a":{"b":1},"b":2,"c":{"b":3,"b":4}}`,
	`{"Code":1}`, `{"ſystem":1}`, `{"\u0063ode":1,"code":2}`, `{"co\"de":1}`, `{"x":[{"y":1},{"y":2}]}`,
	`[{"a":1},{"a":1}]`, `{"a":[1,2,{"a":1,"A":2}]}`, `"code"`, `{"code":"Code","code2":"code"}`,
	strings.Repeat("[", 64) + strings.Repeat("]", 64), strings.Repeat("[", 65) + strings.Repeat("]", 65),
	strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65), `{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1,"g":1,"h":1,"i":1,"j":1,"k":1,"l":1,"m":1,"n":1,"o":1,"p":1,"q":1,"r":1,"a":1}`,
	`{"a":1} x`, "\xef\xbb\xbf{}", "{\"a\":\"\xff\"}",
}

func TestCheckInboundMatchesTokens(t *testing.T) {
	bodies := [][]byte{}
	for _, s := range inboundSeeds {
		bodies = append(bodies, []byte(s))
	}
	for _, file := range responseFiles(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	for _, b := range bodies {
		if got, want := checkInbound(b), checkInboundTokens(b); !reflect.DeepEqual(got, want) {
			t.Errorf("checkInbound(%.80q) = %v, the token walk says %v", b, got, want)
		}
	}
}

// FuzzCheckInbound holds checkInbound to the Decoder.Token walk it
// replaced: the same refusal, with the same issue, for every body.
func FuzzCheckInbound(f *testing.F) {
	for _, s := range inboundSeeds {
		f.Add([]byte(s))
	}
	for _, file := range responseFiles(f) {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := checkInbound(b), checkInboundTokens(b); !reflect.DeepEqual(got, want) {
			t.Fatalf("checkInbound(%q) = %v, the token walk says %v", b, got, want)
		}
	})
}

func BenchmarkCheckInbound(b *testing.B) {
	body, err := os.ReadFile(responseFiles(b)[0])
	if err != nil {
		b.Fatal(err)
	}
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			_ = checkInbound(body)
		}
	})
	b.Run("tokens", func(b *testing.B) {
		for b.Loop() {
			_ = checkInboundTokens(body)
		}
	})
}
