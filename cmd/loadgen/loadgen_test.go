package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
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

// TestExampleCasesGetTheirOutcome evaluates the cases a load run posts with
// the gateway's own evaluator (example registry, embedded policies, the
// output gate) and checks that each gets the outcome its name says: an
// allowed case that the policies refused would show up as load errors, and
// a load of refusals would measure the wrong thing. It loads them as of two
// dates, so that the cases do not expire with the example files' dates.
func TestExampleCasesGetTheirOutcome(t *testing.T) {
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
		time.Date(2029, 6, 30, 0, 30, 0, 0, time.UTC),
	} {
		t.Run(now.Format("2006-01-02"), func(t *testing.T) {
			cases, err := loadCases(casesDir, now)
			if err != nil {
				t.Fatal(err)
			}
			outcomes := map[string]int{}
			seen := map[*Case]bool{}
			for i, c := range cases {
				outcomes[c.Expect]++
				if seen[c] {
					continue
				}
				seen[c] = true
				got, err := ev.Evaluate(ctx, c.Body(fmt.Sprintf("LG-test-%d", i)), now)
				if err != nil {
					t.Fatalf("%s: %v", c.Name, err)
				}
				if got.Outcome != c.Expect {
					var why any = got.Err
					if got.Decision != nil {
						why = got.Decision.Rules
					}
					t.Errorf("%s: outcome %s, want %s: %+v", c.Name, got.Outcome, c.Expect, why)
				}
				if got.Record.Institution.UKPRN != c.Institution.UKPRN {
					t.Errorf("%s names institution %s, want %s", c.Name, got.Record.Institution.UKPRN, c.Institution.UKPRN)
				}
			}
			if len(seen) < 8 || outcomes["deny"] == 0 || outcomes["allow"] < 5*outcomes["deny"] {
				t.Errorf("%d distinct cases, outcomes %v: want at least 8, mostly allowed", len(seen), outcomes)
			}
		})
	}
}

func TestCaseBody(t *testing.T) {
	cases, err := loadCases(casesDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases[:3] {
		var rec struct{ CaseID string }
		if err := json.Unmarshal(c.Body("LG-x-42"), &rec); err != nil || rec.CaseID != "LG-x-42" {
			t.Errorf("body with id: %v, caseId %q", err, rec.CaseID)
		}
	}
}

func TestSummarise(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := summarise(ds)
	want := Latency{P50: 50, P95: 95, P99: 99, Max: 100}
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
	var busy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := posts.Add(1)
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer demo-") || r.URL.Path != "/v1/referrals" || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if busy.Load() && n%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = fmt.Fprintf(w, `{"id":"r%d"}`, n)
	}))
	defer srv.Close()
	cases, err := loadCases(casesDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cases = slices.DeleteFunc(cases, func(c *Case) bool { return c.Expect != "allow" })
	t.Run("fixed rate", func(t *testing.T) {
		start := time.Now()
		res, err := RunLoad(context.Background(), LoadOptions{Target: srv.URL, Rate: 200, Duration: time.Second,
			Warmup: 250 * time.Millisecond, Concurrency: 8, MaxRequests: 1000, Cases: cases})
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
			Concurrency: 4, MaxRequests: 300, Cases: cases})
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != 300 || res.Accepted != 300 {
			t.Errorf("result %+v, want exactly 300 accepted", res)
		}
	})
	t.Run("refusals and accepted ids", func(t *testing.T) {
		busy.Store(true)
		defer busy.Store(false)
		res, err := RunLoad(context.Background(), LoadOptions{Target: srv.URL, Duration: time.Minute, Concurrency: 4, MaxRequests: 100,
			Cases: cases})
		if err != nil {
			t.Fatal(err)
		}
		if res.Accepted+res.Refused != 100 || res.Refused == 0 || res.Errors != 0 || len(res.IDs) != res.Accepted {
			t.Errorf("result %+v with %d distinct ids, want 100 accepted or refused, each accepted id kept", res, len(res.IDs))
		}
	})
	t.Run("only loopback", func(t *testing.T) {
		if _, err := RunLoad(context.Background(), LoadOptions{Target: "http://192.0.2.1:80", Duration: time.Second,
			Concurrency: 1, MaxRequests: 1, Cases: cases}); err == nil {
			t.Fatal("sent load to a non-loopback address")
		}
	})
}

// TestDecideP50 reads the decision time from go test -bench output: the
// p50-ns metric of BenchmarkDecide, not of another benchmark.
func TestDecideP50(t *testing.T) {
	name, ms, err := decideP50("testdata/bench-percentiles.txt")
	if err != nil || name != "BenchmarkDecide/engine=plan" || ms != 0.0412 {
		t.Errorf("decideP50 = %q, %v, %v; want BenchmarkDecide/engine=plan, 0.0412", name, ms, err)
	}
	for _, f := range []string{"testdata/bench-plain.txt", "testdata/bench-none.txt"} {
		if name, _, err := decideP50(f); err == nil {
			t.Errorf("%s: found a decision time (%s) in output without BenchmarkDecide p50-ns", f, name)
		}
	}
}

// TestBudget: a scenario that did not run leaves its row "not measured",
// with no verdict; one that ran is judged against the budget.
func TestBudget(t *testing.T) {
	flat := Scenario{Load: &LoadResult{AcceptedPerSec: 1200}, PeakRSSMB: 90}
	backlog := Scenario{Load: &LoadResult{Requests: 100, Accepted: 90, Refused: 10}, Drain: &DrainResult{PerSec: 250}, PeakRSSMB: 160}
	rows := budget([]Scenario{flat, backlog}, "testdata/bench-percentiles.txt")
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
