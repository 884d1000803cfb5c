package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
	"github.com/student-mh-referrals/gateway/gateway/opa"
	"github.com/student-mh-referrals/gateway/mappings"
)

// benchSource serves n retained decisions, cycling through the example
// cases (each decided once, at the time, for the historical column), with
// their own ids and decision times, without holding n of them in memory.
type benchSource struct {
	protos []gateway.DecisionRecord
	n      int
}

func (s *benchSource) ReplayDecisions(ctx context.Context, _ gateway.ReplayFilter, fn func(gateway.DecisionRecord) error) error {
	for i := range s.n {
		r := s.protos[i%len(s.protos)]
		in := *r.Input
		in.DecidedAt = in.DecidedAt.Add(time.Duration(i/len(s.protos)) * time.Minute)
		r.DecisionID, r.Seq, r.Input = fmt.Sprintf("bench-%d", i), int64(i+1), &in
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// nopLog takes the replay's action record and keeps nothing.
type nopLog struct{ gateway.AuditTrail }

func (nopLog) AppendDecision(_ context.Context, r gateway.DecisionRecord) (gateway.DecisionRecord, error) {
	return r, nil
}

// BenchmarkReplay replays b.N retained decisions, a mix of every example
// case, under the embedded policy set and a candidate (the same set loaded
// again), on GOMAXPROCS workers, as `gateway policy replay` does once the
// rows are read: decisions made under the revision in force (in-force), and
// under another revision (other, where both sets decide). s/100k is the time 100,000 decisions take; the budget is
// 60 s on 2 cores; on a shared machine, cpu-s/100k (the CPU time of
// 100,000 decisions, to share among the cores) says more than the wall time:
//
//	go test ./gateway -run '^$' -bench Replay -benchtime 100000x -cpu 2
//
// Like `gateway policy replay`, it runs the garbage collector at GOGC 400
// unless GOGC is set in the environment.
func BenchmarkReplay(b *testing.B) {
	if os.Getenv("GOGC") == "" {
		old := debug.SetGCPercent(400)
		b.Cleanup(func() { debug.SetGCPercent(old) })
	}
	ctx := context.Background()
	dec, cases := exampleDecisions(b, time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), 0, nil)
	src := &benchSource{}
	for _, c := range cases {
		src.protos = append(src.protos, c.record)
	}
	cmp, err := dec.Compare(ctx, os.DirFS(filepath.Join("..", "policies")))
	if err != nil {
		b.Fatal(err)
	}
	// in-force: decisions made under the revision in force (the set in
	// force's decision is on record; the candidate decides). other: made
	// under another revision, so both sets decide.
	older := &benchSource{protos: slices.Clone(src.protos)}
	for i, p := range older.protos {
		var e map[string]any
		if err := json.Unmarshal(p.Body, &e); err != nil {
			b.Fatal(err)
		}
		e["policyRevision"] = "sha256:older"
		older.protos[i].Body, _ = json.Marshal(e)
	}
	for _, c := range []struct {
		name       string
		src        *benchSource
		asRecorded bool
	}{{"in-force", src, true}, {"other", older, false}} {
		b.Run(c.name, func(b *testing.B) {
			r := &gateway.Replayer{Source: c.src, Log: nopLog{}}
			b.ReportAllocs()
			c.src.n = b.N
			start, cpu0 := time.Now(), cpuTime()
			rep, err := r.Replay(ctx, cmp, gateway.ReplayQuery{}, "bench")
			elapsed, cpu := time.Since(start), cpuTime()-cpu0
			if err != nil || rep.Replayed != b.N || len(rep.Changed) != 0 || (rep.InForceAsRecorded == b.N) != c.asRecorded {
				b.Fatalf("%v: %+v", err, rep.ReplayTotals)
			}
			b.ReportMetric(elapsed.Seconds()/float64(b.N)*1e5, "s/100k")
			b.ReportMetric(cpu.Seconds()/float64(b.N)*1e5, "cpu-s/100k")
		})
	}
}

// exampleDecision is one example case decided as the gateway decides it,
// with the decision record and retained input it keeps.
type exampleDecision struct {
	name     string
	decision *gateway.Decision
	record   gateway.DecisionRecord
}

// exampleDecisions decides every example case (testdata/cases) under the
// embedded policy set at, each step later than the one before, with the
// receiver's MessageDefinition def (nil: the registry's alone), and returns
// the decider with what each decision keeps.
func exampleDecisions(tb testing.TB, at time.Time, step time.Duration, def *gateway.MessageDefinition) (*opa.Decider, []exampleDecision) {
	tb.Helper()
	ctx := context.Background()
	cfg, err := config.Load("")
	if err != nil {
		tb.Fatal(err)
	}
	reg, err := cfg.Registry()
	if err != nil {
		tb.Fatal(err)
	}
	dec, err := opa.New(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	ev := &gateway.Evaluator{Registry: reg, Decider: dec, Mapper: mappings.New(), Source: cfg.Source}
	if def != nil {
		ev.Definitions = fixedDefinition{def}
	}
	names, _ := filepath.Glob(filepath.Join("..", "testdata", "cases", "*.json"))
	if len(names) == 0 {
		tb.Fatal("no example cases")
	}
	var out []exampleDecision
	for i, name := range names {
		body, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		e, err := ev.Evaluate(ctx, body, at.Add(time.Duration(i)*step))
		if err != nil || e.Decision == nil {
			tb.Fatalf("%s: %v", name, err)
		}
		in, err := gateway.NewRetainedInput(e, reg, nil, false)
		if err != nil {
			tb.Fatal(err)
		}
		entry, _ := json.Marshal(gateway.NewDecisionEntry(e, nil, []byte("k"), false))
		out = append(out, exampleDecision{name: filepath.Base(name), decision: e.Decision,
			record: gateway.DecisionRecord{Institution: e.Record.Institution.UKPRN, Seq: int64(i + 1), DecisionID: e.Decision.ID, Body: entry, Input: in}})
	}
	return dec, out
}

// fixedDefinition is a receiver whose MessageDefinition is d, whatever the
// service.
type fixedDefinition struct{ d *gateway.MessageDefinition }

func (f fixedDefinition) Definition(context.Context, *gateway.Service) (*gateway.MessageDefinition, error) {
	return f.d, nil
}

// cpuTime is the user and system CPU time of the process so far: on a
// shared machine, CPU time per decision says more than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
