package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/fhirvalidator"
	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
	"github.com/student-mh-referrals/gateway/gateway/opa"
	"github.com/student-mh-referrals/gateway/mappings"
	"github.com/student-mh-referrals/gateway/policies"
)

const casesDir = "../../testdata/cases"

var demoInstitutions = []string{"10006842", "10007164"}

// TestGeneratedCasesGetTheirOutcome evaluates generated cases with the
// gateway's own evaluator (example registry, embedded policies, the output
// gate) and checks that each gets the outcome the generator expects: an
// allowed case that the policies refused would show up as load errors, and
// a load of refusals would measure the wrong thing. It generates as of two
// dates, so that the cases do not expire with the example files' dates.
func TestGeneratedCasesGetTheirOutcome(t *testing.T) {
	ctx := context.Background()
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := cfg.Registry()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := opa.New(ctx, policies.FS)
	if err != nil {
		t.Fatal(err)
	}
	ev := &gateway.Evaluator{Registry: reg, Decider: dec, Mapper: mappings.New(), Source: cfg.Source, Validator: fhirvalidator.Builtin()}
	if ev.Source.Version == "" {
		ev.Source.Version = "test"
	}
	for _, now := range []time.Time{
		time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
		time.Date(2029, 6, 30, 9, 30, 0, 0, time.UTC),
	} {
		t.Run(now.Format("2006-01-02"), func(t *testing.T) {
			vs, err := Generate(casesDir, demoInstitutions, 240, DefaultMix, now, 7)
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[string]int{}
			services := map[string]int{}
			for i, v := range vs {
				kinds[v.Kind]++
				services[v.Service]++
				got, err := ev.Evaluate(ctx, v.Body(newCaseID("abcdef01", uint64(i))), now)
				if err != nil {
					t.Fatalf("case %d (%s): %v", i, v.Kind, err)
				}
				if got.Outcome != v.Expect {
					var why any = got.Err
					if got.Decision != nil {
						why = got.Decision.Rules
					}
					t.Fatalf("case %d (%s, %s, %s): outcome %s, want %s: %+v", i, v.Kind, v.Institution, v.Service, got.Outcome, v.Expect, why)
				}
				if got.Record.Institution.UKPRN != v.Institution {
					t.Fatalf("case %d names institution %s, want %s", i, got.Record.Institution.UKPRN, v.Institution)
				}
			}
			for _, k := range []string{"consent", "override", "consent-refused", "consent-expired", "recipient-not-consented", "emergency"} {
				if kinds[k] == 0 {
					t.Errorf("no %s case among %d: %v", k, len(vs), kinds)
				}
			}
			if len(services) < 4 {
				t.Errorf("only services %v", services)
			}
		})
	}
}

// TestGenerateIsDeterministic: the same seed gives the same cases, so that
// runs can be compared.
func TestGenerateIsDeterministic(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	a, err := Generate(casesDir, demoInstitutions, 50, DefaultMix, now, 3)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate(casesDir, demoInstitutions, 50, DefaultMix, now, 3)
	c, _ := Generate(casesDir, demoInstitutions, 50, DefaultMix, now, 4)
	same, differ := true, false
	for i := range a {
		same = same && string(a[i].body) == string(b[i].body)
		differ = differ || string(a[i].body) != string(c[i].body)
	}
	if !same || !differ {
		t.Errorf("same seed same cases: %v; another seed other cases: %v", same, differ)
	}
	if _, err := Generate(casesDir, []string{"10007798"}, 1, DefaultMix, now, 1); err == nil {
		t.Error("generated cases for an institution without a known pathway")
	}
}

func TestVariantBody(t *testing.T) {
	vs, err := Generate(casesDir, demoInstitutions, 3, DefaultMix, time.Now(), 1)
	if err != nil {
		t.Fatal(err)
	}
	id := newCaseID("0badcafe", 42)
	if len(id) != len(caseIDPlaceholder) {
		t.Fatalf("case id %q is not as long as the placeholder", id)
	}
	for _, v := range vs {
		var rec struct{ CaseID string }
		if err := json.Unmarshal(v.Body(id), &rec); err != nil || rec.CaseID != id {
			t.Errorf("body with id: %v, caseId %q", err, rec.CaseID)
		}
		if string(v.Body(id)) == string(v.Body(newCaseID("0badcafe", 43))) {
			t.Error("two case ids gave the same body")
		}
	}
}

func TestSummarise(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := summarise(ds)
	want := Latency{P50: 50, P95: 95, P99: 99, Max: 100, Mean: 50.5}
	if got != want {
		t.Errorf("summarise = %+v, want %+v", got, want)
	}
	if (summarise(nil) != Latency{}) {
		t.Error("no latencies should give zeros")
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, tc := range []struct {
		target string
		ok     bool
	}{
		{"http://127.0.0.1:8080", true},
		{"http://[::1]:8080", true},
		{"http://localhost:8080", false}, // resolved names could lead anywhere
		{"http://10.0.0.5:8080", false},
		{"https://gateway.example.nhs.uk", false},
		{"127.0.0.1:8080", false},
	} {
		t.Run(tc.target, func(t *testing.T) {
			if err := checkLoopback(tc.target); (err == nil) != tc.ok {
				t.Errorf("checkLoopback(%q) = %v, want ok=%v", tc.target, err, tc.ok)
			}
		})
	}
}

// TestRunLoadIsBounded drives a stand-in gateway at a fixed rate and flat
// out: both runs stop by themselves, the fixed rate sends what it should,
// and answers are classified.
func TestRunLoadIsBounded(t *testing.T) {
	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := posts.Add(1)
		if r.Header.Get("Authorization") == "" || r.URL.Path != "/v1/referrals" || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Header.Get("Authorization") == "Bearer busy" && n%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = fmt.Fprintf(w, `{"id":"r%d"}`, n)
	}))
	defer srv.Close()
	vs, err := Generate(casesDir, demoInstitutions, 20, Mix{}, time.Now(), 1)
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{"10006842": "a", "10007164": "b"}
	t.Run("fixed rate", func(t *testing.T) {
		start := time.Now()
		res, err := RunLoad(context.Background(), LoadOptions{Target: srv.URL, Rate: 200, Duration: time.Second,
			Warmup: 250 * time.Millisecond, Concurrency: 8, Tokens: tokens, Variants: vs, Run: "00000001"})
		if err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("a 1.25 s run took %v", el)
		}
		if res.Requests < 180 || res.Requests > 201 || res.Accepted != res.Requests || res.Errors != 0 {
			t.Errorf("result %+v, want about 200 accepted requests", res)
		}
	})
	t.Run("flat out, capped by count", func(t *testing.T) {
		res, err := RunLoad(context.Background(), LoadOptions{Target: srv.URL, Duration: time.Minute,
			Concurrency: 4, MaxRequests: 300, Tokens: tokens, Variants: vs, Run: "00000002"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != 300 || res.Accepted != 300 {
			t.Errorf("result %+v, want exactly 300 accepted", res)
		}
	})
	t.Run("refusals and accepted ids", func(t *testing.T) {
		res, err := RunLoad(context.Background(), LoadOptions{Target: srv.URL, Duration: time.Minute, Concurrency: 4, MaxRequests: 100,
			Tokens: map[string]string{"10006842": "busy", "10007164": "busy"}, Variants: vs, Run: "00000004", KeepIDs: true})
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, a := range res.IDs {
			ids[a.ID] = true
		}
		if res.Accepted+res.Refused != 100 || res.Refused == 0 || res.Errors != 0 || len(ids) != res.Accepted {
			t.Errorf("result %+v with %d distinct ids, want 100 accepted or refused, each accepted id kept", res, len(ids))
		}
	})
	t.Run("a token per institution is required", func(t *testing.T) {
		res, err := RunLoad(context.Background(), LoadOptions{Target: srv.URL, Duration: time.Minute,
			Concurrency: 2, MaxRequests: 10, Tokens: map[string]string{"10006842": "", "10007164": ""}, Variants: vs, Run: "00000003"})
		if err == nil {
			t.Fatalf("ran without tokens: %+v", res)
		}
	})
	t.Run("only loopback", func(t *testing.T) {
		if _, err := RunLoad(context.Background(), LoadOptions{Target: "http://192.0.2.1:80", Duration: time.Second, Tokens: tokens, Variants: vs}); err == nil {
			t.Fatal("sent load to a non-loopback address")
		}
	})
}

// TestDecideP50 reads the decision time from go test -bench output: the
// p50-ns metric where the benchmark reports it, else ns/op.
func TestDecideP50(t *testing.T) {
	for _, tc := range []struct {
		file, name string
		ms         float64
	}{
		{"testdata/bench-percentiles.txt", "BenchmarkDecide/engine=plan", 0.0412},
		{"testdata/bench-plain.txt", "BenchmarkDecide-2", 0.25},
	} {
		name, ms, err := decideP50(tc.file)
		if err != nil || name != tc.name || ms != tc.ms {
			t.Errorf("decideP50(%s) = %q, %v, %v; want %q, %v", tc.file, name, ms, err, tc.name, tc.ms)
		}
	}
	if _, _, err := decideP50("testdata/bench-none.txt"); err == nil {
		t.Error("found a decision time in output without BenchmarkDecide")
	}
}

// TestBudget: a scenario that did not run leaves its row "not measured",
// with no verdict; one that ran is judged against the budget.
func TestBudget(t *testing.T) {
	flat := &Scenario{Load: &LoadResult{AcceptedPerSec: 1200}, PeakRSSMB: 90}
	backlog := &Scenario{Backlog: &BacklogResult{Posted: 100, Accepted: 90, Refused: 10, PerSec: 250}, PeakRSSMB: 160}
	rows := budget(nil, flat, backlog, nil, "testdata/bench-plain.txt")
	want := []*bool{nil, ptr(true), ptr(false), ptr(true), nil, ptr(false)}
	for i, r := range rows {
		if (r.Met == nil) != (want[i] == nil) || (r.Met != nil && *r.Met != *want[i]) {
			t.Errorf("row %q (%s): met %v, want %v", r.Measure, r.Today, deref(r.Met), deref(want[i]))
		}
	}
	if rows[0].Today != "not measured" {
		t.Errorf("row 0: %q", rows[0].Today)
	}
}

func ptr(b bool) *bool { return &b }

func deref(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}
