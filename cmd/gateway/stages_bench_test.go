package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/sqlite"
	"github.com/student-mh-referrals/gateway/mappings"
)

// benchCase is one allowed example case with what each stage needs.
type benchCase struct {
	name   string
	body   []byte
	caseID string
	rec    *gateway.CaseRecord
	svc    *gateway.Service
	dec    *gateway.Decision
	bundle []byte
	token  string
}

var benchAt = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// benchCases wires the gateway as `gateway serve` does (embedded example
// configuration, embedded policies, built-in validator) and prepares every
// allowed example case in testdata/cases through each stage once.
func benchCases(b *testing.B) (*app, []benchCase) {
	b.Helper()
	ctx := context.Background()
	a, err := newApp(ctx, "", io.Discard, "")
	if err != nil {
		b.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "cases", "allow-*.json"))
	if err != nil || len(files) == 0 {
		b.Fatalf("no example cases (%v)", err)
	}
	tokens := map[string]string{"10007164": "demo-uwe-submitter", "10006842": "demo-liverpool-submitter"}
	var out []benchCase
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		c := benchCase{name: strings.TrimSuffix(filepath.Base(f), ".json"), body: body}
		if c.rec, err = gateway.ParseCaseRecord(body); err != nil {
			b.Fatalf("%s: %v", c.name, err)
		}
		c.caseID, c.token = c.rec.CaseID, tokens[c.rec.Institution.UKPRN]
		c.svc, _ = a.evaluator.Registry.Lookup(c.rec.Referral.Service)
		ev, err := a.evaluator.Evaluate(ctx, body, benchAt)
		if err != nil || ev.Outcome != gateway.OutcomeAllow {
			b.Fatalf("%s: %v %+v", c.name, err, ev)
		}
		c.dec, c.bundle = ev.Decision, ev.Bundle
		out = append(out, c)
	}
	return a, out
}

// BenchmarkStages measures each stage of POST /v1/referrals on the allowed
// example cases in turn, in one process so that the stages can be compared
// as ratios on a shared machine: decoding and validating the case record,
// the policy decision, the mapping, the output gate, the whole evaluation,
// the intake with a durable SQLite accept, and the HTTP handler around it.
func BenchmarkStages(b *testing.B) {
	ctx := context.Background()
	a, cases := benchCases(b)
	next := func(i int) *benchCase { return &cases[i%len(cases)] }
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		for i := 0; b.Loop(); i++ {
			if _, err := gateway.ParseCaseRecord(next(i).body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decide", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		for i := 0; b.Loop(); i++ {
			c := next(i)
			if _, err := a.decider.Decide(ctx, gateway.DecisionInput{Record: c.rec, Service: c.svc, At: benchAt}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("map", func(b *testing.B) {
		m := mappings.New()
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		for i := 0; b.Loop(); i++ {
			c := next(i)
			if _, err := m.Message(ctx, gateway.MessageInput{Record: c.rec, Decision: c.dec, Service: c.svc, Source: a.evaluator.Source, At: benchAt}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("validate", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		for i := 0; b.Loop(); i++ {
			if is := a.evaluator.Validator.ValidateMessage(next(i).bundle); len(is) > 0 && is[0].Severity == "error" {
				b.Fatal(is)
			}
		}
	})
	b.Run("evaluate", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		for i := 0; b.Loop(); i++ {
			if ev, err := a.evaluator.Evaluate(ctx, next(i).body, benchAt); err != nil || ev.Outcome != gateway.OutcomeAllow {
				b.Fatal(err)
			}
		}
	})
	store := func(b *testing.B) gateway.Store {
		db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "gateway.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		return db
	}
	key, err := a.cfg.PseudonymKey()
	if err != nil {
		b.Fatal(err)
	}
	// Each submission is a new case (its own case id), so each is a new
	// referral: decided, mapped, validated and durably accepted.
	withID := func(c *benchCase, i int) []byte {
		return bytes.Replace(c.body, []byte(`"`+c.caseID+`"`), []byte(fmt.Sprintf(`"BENCH-%09d"`, i)), 1)
	}
	b.Run("submit-sqlite", func(b *testing.B) {
		in := &gateway.Intake{Evaluator: a.evaluator, Store: store(b), PseudonymKey: key}
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		for i := 0; b.Loop(); i++ {
			c := next(i)
			client := &gateway.Client{ID: "bench", Institution: c.rec.Institution.UKPRN, Roles: []string{gateway.RoleSubmitter}}
			sub, err := in.Submit(ctx, client, withID(c, i))
			if err != nil || !sub.Created {
				b.Fatal(err)
			}
		}
	})
	b.Run("http-sqlite", func(b *testing.B) {
		srv, _ := a.server(store(b), key)
		h := srv.Handler()
		var http1 []*benchCase
		for i := range cases {
			if cases[i].token != "" {
				http1 = append(http1, &cases[i])
			}
		}
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		for i := 0; b.Loop(); i++ {
			c := http1[i%len(http1)]
			req := httptest.NewRequest(http.MethodPost, "/v1/referrals", bytes.NewReader(withID(c, i)))
			req.Header.Set("Authorization", "Bearer "+c.token)
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusAccepted {
				b.Fatalf("%s: %d %s", c.name, w.Code, w.Body)
			}
		}
	})
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds cpu-ns/op: the process's CPU time per operation, which a
// busy shared machine inflates far less than the wall time of ns/op.
func reportCPU(b *testing.B, since time.Duration) {
	if b.N > 0 {
		b.ReportMetric(float64(cpuTime()-since)/float64(b.N), "cpu-ns/op")
	}
}
