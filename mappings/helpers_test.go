package mappings

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
)

// casesDir is the project's shared set of example case records.
const casesDir = "../testdata/cases"

// testAt is the decision time of every golden test (the lead's golden tests
// use the same --at).
var testAt = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// testSource is the gateway as message source, with a fixed version so that
// goldens do not change with each build.
var testSource = gateway.Source{
	Name:     "Student mental-health referral gateway (test)",
	Software: "student-mh-referral-gateway",
	Version:  "0.0.0-test",
	Contact:  gateway.SourceContact{System: "email", Value: "gateway-operations@example.ac.uk"},
	Endpoint: "https://fhir.nhs.uk/Id/dos-service-id|2000099001",
}

// allowCases lists the allow-* case names (without .json) in name order.
func allowCases(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(casesDir, "allow-*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no allow-* cases in %s (%v)", casesDir, err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	sort.Strings(names)
	return names
}

// loadCase decodes a case strictly, so that a typo in a case file is a test
// failure rather than a silently missing field.
func loadCase(t testing.TB, name string) *gateway.CaseRecord {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(casesDir, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	rec := &gateway.CaseRecord{}
	if err := dec.Decode(rec); err != nil {
		t.Fatalf("case %s: %v", name, err)
	}
	return rec
}

func loadDecision(t testing.TB, name string) *gateway.Decision {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "decisions", name+".json"))
	if err != nil {
		t.Fatalf("decision fixture for %s: %v", name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	d := &gateway.Decision{}
	if err := dec.Decode(d); err != nil {
		t.Fatalf("decision fixture %s: %v", name, err)
	}
	return d
}

func registry(t testing.TB) *gateway.Registry {
	t.Helper()
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := cfg.Registry()
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// input is the MessageInput of a named case with its decision fixture; a
// case whose name ends in "-update" is sent as an update.
func input(t testing.TB, name string) gateway.MessageInput {
	t.Helper()
	rec := loadCase(t, name)
	svc, ok := registry(t).Lookup(rec.Referral.Service)
	if !ok {
		t.Fatalf("case %s: service %q not in gateway.example.yaml", name, rec.Referral.Service)
	}
	return gateway.MessageInput{
		Record:   rec,
		Decision: loadDecision(t, name),
		Service:  svc,
		Source:   testSource,
		At:       testAt,
		Update:   strings.HasSuffix(name, "-update"),
	}
}

func message(t testing.TB, in gateway.MessageInput) []byte {
	t.Helper()
	out, err := New().Message(context.Background(), in)
	if err != nil {
		t.Fatalf("Message: %v", err)
	}
	return out
}

// canonical is the golden form: 2-space indented, keys as emitted, trailing
// newline.
func canonical(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, data, "", "  "); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

// emptyValues lists the JSON paths of empty strings, arrays, objects and
// nulls, which R4 JSON forbids.
func emptyValues(data []byte) ([]string, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	var out []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case nil:
			out = append(out, path+" is null")
		case string:
			if strings.TrimSpace(x) == "" {
				out = append(out, path+" is an empty string")
			}
		case []any:
			if len(x) == 0 {
				out = append(out, path+" is an empty array")
			}
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		case map[string]any:
			if len(x) == 0 {
				out = append(out, path+" is an empty object")
			}
			for k, e := range x {
				walk(path+"."+k, e)
			}
		}
	}
	walk("$", v)
	sort.Strings(out)
	return out, nil
}

// bundleDoc is the part of a Bundle the tests read.
type bundleDoc struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Timestamp  string `json:"timestamp"`
	Identifier struct {
		System string `json:"system"`
		Value  string `json:"value"`
	} `json:"identifier"`
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
	} `json:"entry"`
}

func parseBundle(t testing.TB, data []byte) bundleDoc {
	t.Helper()
	var b bundleDoc
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// resources returns the entries' resources of one type, decoded generically.
func resources(t testing.TB, data []byte, typ string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, e := range parseBundle(t, data).Entry {
		var r map[string]any
		if err := json.Unmarshal(e.Resource, &r); err != nil {
			t.Fatal(err)
		}
		if r["resourceType"] == typ {
			out = append(out, r)
		}
	}
	return out
}

func only(t testing.TB, data []byte, typ string) map[string]any {
	t.Helper()
	rs := resources(t, data, typ)
	if len(rs) != 1 {
		t.Fatalf("want one %s, got %d", typ, len(rs))
	}
	return rs[0]
}

// cloneInput deep-copies the record and decision so that a subtest can change
// them freely.
func cloneInput(t testing.TB, in gateway.MessageInput) gateway.MessageInput {
	t.Helper()
	var rec gateway.CaseRecord
	var d gateway.Decision
	roundTrip(t, in.Record, &rec)
	roundTrip(t, in.Decision, &d)
	in.Record, in.Decision = &rec, &d
	return in
}

func roundTrip(t testing.TB, from, to any) {
	t.Helper()
	b, err := json.Marshal(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, to); err != nil {
		t.Fatal(err)
	}
}
