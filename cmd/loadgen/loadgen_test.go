package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/conformance"
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
	ev := &gateway.Evaluator{Registry: reg, Decider: dec, Mapper: mappings.New(), Source: cfg.Source, Validator: conformance.Builtin()}
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
		posts.Add(1)
		if r.Header.Get("Authorization") == "" || r.URL.Path != "/v1/referrals" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusAccepted)
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

// TestDrainPoll polls slowly while much is queued and quickly near the end.
func TestDrainPoll(t *testing.T) {
	tests := []struct {
		name         string
		left, queued float64
		since        time.Duration
		want         time.Duration
	}{
		{"nothing drained yet", 3000, 3000, 0, 100 * time.Millisecond},
		{"much left", 2000, 3000, 2 * time.Second, 100 * time.Millisecond}, // 4 s to go at 500/s
		{"a quarter second left", 100, 3000, 5800 * time.Millisecond, 10 * time.Millisecond},
		{"stalled", 3000, 3000, 5 * time.Second, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := drainPoll(tt.left, tt.queued, tt.since); got != tt.want {
				t.Errorf("drainPoll(%v, %v, %v) = %v, want %v", tt.left, tt.queued, tt.since, got, tt.want)
			}
		})
	}
}

// TestReceiverPausedNeedsSpawn: only a sandbox the load generator started
// itself can be frozen, so --receiver-paused against --target is refused
// before anything is sent.
func TestReceiverPausedNeedsSpawn(t *testing.T) {
	o, err := parseOptions([]string{"--receiver-paused", "--target", "http://127.0.0.1:1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !o.paused {
		t.Fatal("--receiver-paused was not parsed")
	}
	_, err = loadScenario(context.Background(), o, "load", o.driver, o.rate, o.spawn, o.paused, "")
	if err == nil || !strings.Contains(err.Error(), "needs --spawn") {
		t.Fatalf("got %v, want the refusal of --receiver-paused without --spawn", err)
	}
}
