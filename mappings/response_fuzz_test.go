package mappings

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/student-mh-referrals/gateway/gateway"
)

// responsesDir holds inbound BaRS response messages, well formed and hostile,
// one raw body per file (some are not UTF-8 or not JSON on purpose).
const responsesDir = "testdata/responses"

// responseResult is what ParseResponse made of a body, as the golden file
// records it.
type responseResult struct {
	Step             gateway.Step       `json:"step,omitempty"`
	At               time.Time          `json:"at,omitzero"`
	ResponseID       string             `json:"responseId,omitempty"`
	RequestBundleID  string             `json:"requestBundleId,omitempty"`
	AppointmentID    string             `json:"appointmentId,omitempty"`
	AppointmentStart time.Time          `json:"appointmentStart,omitzero"`
	Codes            []gateway.StepCode `json:"codes,omitempty"`
	Institution      string             `json:"institution,omitempty"`
	CaseID           string             `json:"caseId,omitempty"`
	Code             string             `json:"code,omitempty"`
	Issues           []gateway.Issue    `json:"issues,omitempty"`
}

func parseResult(t testing.TB, body []byte) responseResult {
	t.Helper()
	resp, err := ParseResponse(body)
	if err != nil {
		var e *gateway.Error
		if !errors.As(err, &e) {
			t.Fatalf("error %T is not a *gateway.Error: %v", err, err)
		}
		return responseResult{Code: e.Code, Issues: e.Issues}
	}
	return responseResult{
		Step: resp.Step, At: resp.At, ResponseID: resp.ResponseID, RequestBundleID: resp.RequestBundleID,
		AppointmentID: resp.AppointmentID, AppointmentStart: resp.AppointmentStart, Codes: resp.Codes,
		Institution: resp.Institution, CaseID: resp.CaseID,
	}
}

func responseFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(responsesDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no response messages in %s (%v)", responsesDir, err)
	}
	return files
}

// TestParseResponse reads every message under testdata/responses and compares
// what ParseResponse made of it with testdata/responses.golden.json (go test
// ./mappings -run TestParseResponse -update to rewrite after review). Among
// them: duplicate keys, element names in the wrong case, a byte order mark,
// UTF-16, broken UTF-8, a lone surrogate escape and deep nesting, each
// refused with a 4xx code.
func TestParseResponse(t *testing.T) {
	got := map[string]responseResult{}
	for _, file := range responseFiles(t) {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		got[name] = parseResult(t, body)
	}
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	golden := filepath.Join("testdata", "responses.golden.json")
	if *update {
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	wantBytes, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./mappings -run TestParseResponse -update to create it)", err)
	}
	var want map[string]responseResult
	if err := json.Unmarshal(wantBytes, &want); err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		t.Run(name, func(t *testing.T) {
			g, ok := got[name]
			if !ok {
				t.Fatalf("no file %s/%s.json", responsesDir, name)
			}
			gb, _ := json.Marshal(g)
			wb, _ := json.Marshal(w)
			if !bytes.Equal(gb, wb) {
				t.Errorf("got  %s\nwant %s", gb, wb)
			}
		})
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s is not in %s (run -update)", name, golden)
		}
	}
	// The golden file must say what the hostile bodies prove.
	for name, code := range map[string]string{
		"duplicate-code": gateway.EINVALID, "key-case": gateway.EINVALID, "deep-nesting": gateway.EINVALID,
		"bom": gateway.EMALFORMED, "utf16": gateway.EMALFORMED, "invalid-utf8": gateway.EMALFORMED,
		"wrong-json-type": gateway.EINVALID, "lone-surrogate": gateway.EMALFORMED,
	} {
		if got[name].Code != code {
			t.Errorf("%s: code %q, want %q", name, got[name].Code, code)
		}
	}
	// Every step reads as itself; a missed appointment is never a rejection.
	for name, step := range map[string]gateway.Step{
		"accept": gateway.StepAccepted, "reject-revoked": gateway.StepRejected, "reject-fatal-error": gateway.StepRejected,
		"booked": gateway.StepBooked, "did-not-attend": gateway.StepDidNotAttend, "seen-appointment": gateway.StepSeen,
		"seen-walk-in": gateway.StepSeen, "discharged": gateway.StepDischarged, "redirected": gateway.StepRedirected,
	} {
		if got[name].Step != step {
			t.Errorf("%s: step %q, want %q", name, got[name].Step, step)
		}
	}
	for _, name := range []string{"free-text-code", "transient-error", "appointment-cancelled", "bad-time", "no-timestamp",
		"no-response-identifier", "no-bundle-id", "two-appointments", "booked-no-start"} {
		if got[name].Code != gateway.EINVALID {
			t.Errorf("%s: code %q, want invalid", name, got[name].Code)
		}
	}
}

// FuzzParseResponse holds ParseResponse to its promise on any body a
// receiver could post: it never panics; it either refuses the body with an
// EMALFORMED or EINVALID *gateway.Error that says why, or reads a case of a
// valid UKPRN from a UTF-8 JSON body that it keeps byte for byte, with a
// known step at a time, the ids that tie it to a message, and codes that are
// tokens (never text a university could be shown).
//
//	go test ./mappings -run '^$' -fuzz FuzzParseResponse -fuzztime 2m
func FuzzParseResponse(f *testing.F) {
	for _, file := range responseFiles(f) {
		body, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		resp, err := ParseResponse(body)
		if err != nil {
			var e *gateway.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not a *gateway.Error: %v", err, err)
			}
			if e.Code != gateway.EMALFORMED && e.Code != gateway.EINVALID {
				t.Fatalf("code %q: %v", e.Code, err)
			}
			if len(e.Issues) == 0 {
				t.Fatal("a refusal without issues")
			}
			for _, is := range e.Issues {
				if is.Message == "" || is.Type == "" || !utf8.ValidString(is.Message) {
					t.Fatalf("incomplete issue %+v", is)
				}
			}
			return
		}
		if !gateway.ValidUKPRN(resp.Institution) || resp.CaseID == "" {
			t.Fatalf("accepted a response without a case: %+v", resp)
		}
		if !resp.Step.Valid() || resp.At.IsZero() || resp.ResponseID == "" || resp.RequestBundleID == "" {
			t.Fatalf("a step without its kind, time or ids: %+v", resp)
		}
		for _, c := range resp.Codes {
			if c.Code == "" || strings.ContainsAny(c.Code, " \t\n") || len(c.Code) > 64 {
				t.Fatalf("a code that is not a token: %+v", c)
			}
		}
		if !bytes.Equal(resp.Message, body) || !jsontext.Value(body).IsValid() {
			t.Fatal("the kept message is not the body as posted, or not UTF-8 JSON with unique keys")
		}
		again, err := ParseResponse(body)
		if err != nil || again.Step != resp.Step || !again.At.Equal(resp.At) || again.CaseID != resp.CaseID {
			t.Fatalf("a second read differs: %+v, %v", again, err)
		}
	})
}
