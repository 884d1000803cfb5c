package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

// FuzzParseCaseRecord holds ParseCaseRecord to its promise on any input: it
// never panics, and it either returns an *Error that says what is wrong or
// a record that survives a round trip unchanged, from a body that is strict
// JSON (jsontext's default: no duplicate names, valid UTF-8) and that
// encoding/json decodes to the same record.
//
//	go test ./gateway -run '^$' -fuzz FuzzParseCaseRecord -fuzztime 2m
func FuzzParseCaseRecord(f *testing.F) {
	for _, dir := range []string{"valid", "invalid"} {
		for _, file := range cases(f, dir) {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := ParseCaseRecord(data)
		if err == nil {
			if rec == nil {
				t.Fatal("no record and no error")
			}
			if !jsontext.Value(data).IsValid() {
				t.Fatalf("accepted a body that is not strict JSON: %q", data)
			}
			out, err := json.Marshal(rec)
			if err != nil {
				t.Fatalf("accepted record does not marshal: %v", err)
			}
			var plain CaseRecord
			if err := json.Unmarshal(data, &plain); err != nil {
				t.Fatalf("accepted a body that encoding/json refuses: %v", err)
			}
			if b, _ := json.Marshal(&plain); !bytes.Equal(out, b) {
				t.Fatalf("decoded differently from encoding/json:\n%s\n%s", out, b)
			}
			again, err := ParseCaseRecord(out)
			if err != nil {
				t.Fatalf("accepted record does not re-parse: %v\n%s", err, out)
			}
			out2, _ := json.Marshal(again)
			if !bytes.Equal(out, out2) {
				t.Fatalf("round trip changed the record:\n%s\n%s", out, out2)
			}
			return
		}
		if rec != nil {
			t.Fatal("a record and an error")
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %T is not a *gateway.Error: %v", err, err)
		}
		switch e.Code {
		case EMALFORMED:
			if e.Message == "" {
				t.Fatal("EMALFORMED without a message")
			}
		case EINVALID:
			if len(e.Issues) == 0 || len(e.Issues) > maxIssues {
				t.Fatalf("EINVALID with %d issues", len(e.Issues))
			}
			for _, is := range e.Issues {
				if is.Message == "" || is.Type == "" {
					t.Fatalf("incomplete issue %+v", is)
				}
			}
		default:
			t.Fatalf("code %q: %v", e.Code, err)
		}
	})
}
