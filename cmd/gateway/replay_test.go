package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
	"github.com/student-mh-referrals/gateway/policies"
)

// replayEnv is a configuration over a SQLite store seeded with several
// hundred decisions (every example case, many times over, each under its
// own case id, one every 20 minutes from 23 November 2026 12:00 UTC), with
// a dry run of each case now and then.
type replayEnv struct {
	cfg   string
	store gateway.Store
	// seeded is every decision made, in order.
	seeded []seededDecision
}

// seededDecision is what the test knows about a seeded decision without
// asking the replay: its record's fields and what was decided at the time.
type seededDecision struct {
	id, institution   string
	at                time.Time
	allow, dryRun     bool
	priority, service string
}

// replayCopies is how many times each example case is submitted.
const replayCopies = 20

var replayStart = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func newReplayEnv(t *testing.T) *replayEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	env := &replayEnv{cfg: filepath.Join(dir, "gateway.yaml")}
	cfg := bytes.Replace(config.Example, []byte("path: data/gateway.db"), []byte("path: "+filepath.Join(dir, "gateway.db")), 1)
	if err := os.WriteFile(env.cfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := newApp(ctx, env.cfg, io.Discard, "error")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := a.cfg.ChainKeys()
	if err != nil {
		t.Fatal(err)
	}
	db, err := openStoreWith(ctx, a.cfg.Store, keys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	env.store = db
	var mu sync.Mutex
	tick := replayStart
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		tick = tick.Add(20 * time.Minute)
		return tick
	}
	in := &gateway.Intake{Evaluator: a.evaluator, Store: db, PseudonymKey: []byte("replay-test-key"), Now: clock}
	names, err := filepath.Glob(filepath.Join("..", "..", "testdata", "cases", "*.json"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no example cases: %v", err)
	}
	for copy := range replayCopies {
		for i, name := range names {
			body, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := gateway.ParseCaseRecord(body)
			if err != nil {
				t.Fatal(err)
			}
			body = bytes.Replace(body, []byte(`"`+rec.CaseID+`"`), fmt.Appendf(nil, `"%s-R%02d"`, rec.CaseID, copy), 1)
			c := &gateway.Client{ID: "replay-test", Institution: rec.Institution.UKPRN, Roles: []string{gateway.RoleSubmitter}}
			var ev *gateway.Evaluation
			dry := (copy*len(names)+i)%7 == 3
			if dry {
				ev, err = in.DryRun(ctx, c, body, clock())
			} else {
				var sub *gateway.Submission
				sub, err = in.Submit(ctx, c, body)
				if sub != nil {
					ev = sub.Evaluation
				}
			}
			if err != nil || ev == nil || ev.Decision == nil {
				t.Fatalf("%s: %v", name, err)
			}
			at, _ := time.Parse(time.RFC3339, ev.Decision.Time)
			env.seeded = append(env.seeded, seededDecision{id: ev.Decision.ID, institution: rec.Institution.UKPRN, at: at, allow: ev.Decision.Allow, dryRun: dry,
				priority: rec.Referral.Priority, service: rec.Referral.Service})
		}
	}
	return env
}

// candidate writes a copy of the embedded policy set to a new directory,
// with content.rego passed through edit.
func candidate(t *testing.T, edit func(string) string) string {
	t.Helper()
	dir := t.TempDir()
	err := fs.WalkDir(policies.FS, ".", func(name string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(name, ".rego") {
			return err
		}
		b, err := fs.ReadFile(policies.FS, name)
		if err != nil {
			return err
		}
		if name == "content.rego" && edit != nil {
			edited := edit(string(b))
			if edited == string(b) {
				t.Fatal("the edit changed nothing")
			}
			b = []byte(edited)
		}
		return os.WriteFile(filepath.Join(dir, name), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// e01Satisfied is where the candidates edit E-01 (content.rego).
const e01Satisfied = `satisfied contains {"id": "E-01", "message": msg} if {`

// urgentToBristol is the one-rule change: E-01 also refuses an urgent
// referral to the Bristol AWP service. No Rego test sends one there, so the
// candidate passes its tests.
func urgentToBristol(s string) string {
	return strings.Replace(s, e01Satisfied, `deny contains {"id": "E-01", "message": msg} if {
	referral.priority == "urgent"
	input.service.id == "bristol-awp"
	msg := "referral.priority is \"urgent\": Bristol AWP takes urgent referrals by telephone"
}

`+e01Satisfied, 1)
}

// everyUrgent makes E-01 refuse every urgent referral, which the set's own
// tests (test_e01_allows_routine_and_urgent) refuse.
func everyUrgent(s string) string {
	return strings.Replace(s, `referral.priority == "emergency"`, `referral.priority in {"emergency", "urgent"}`, 1)
}

func replayJSON(t *testing.T, env *replayEnv, args ...string) gateway.ReplayReport {
	t.Helper()
	code, out, errOut := (&auditEnv{}).cli(t, append([]string{"policy", "replay", "--config", env.cfg, "--json", "--by", "ig-lead"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	var rep gateway.ReplayReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return rep
}

func changedIDs(rep gateway.ReplayReport) []string {
	var ids []string
	for _, c := range rep.Changed {
		ids = append(ids, c.DecisionID)
	}
	slices.Sort(ids)
	return ids
}

// TestReplayOneRuleChange is issue #16 §2's criterion: a candidate that
// changes one rule reports exactly the decisions that rule changes. The
// expectation is computed from the seeded records and the decisions made at
// the time, not by the replay: an allowed urgent referral to bristol-awp.
func TestReplayOneRuleChange(t *testing.T) {
	env := newReplayEnv(t)
	if len(env.seeded) < 300 {
		t.Fatalf("seeded %d decisions", len(env.seeded))
	}
	one := candidate(t, urgentToBristol)
	same := candidate(t, nil)
	want := func(dryRuns bool) (ids []string, replayed int) {
		for _, d := range env.seeded {
			if d.dryRun && !dryRuns {
				continue
			}
			replayed++
			if d.allow && d.priority == "urgent" && d.service == "bristol-awp" {
				ids = append(ids, d.id)
			}
		}
		slices.Sort(ids)
		return ids, replayed
	}

	t.Run("exactly the decisions the rule changes", func(t *testing.T) {
		ids, n := want(false)
		if len(ids) < 20 {
			t.Fatalf("the seed has only %d decisions the edit changes", len(ids))
		}
		rep := replayJSON(t, env, "--policies", one)
		if got := changedIDs(rep); !slices.Equal(got, ids) {
			t.Fatalf("changed %d decisions, want %d:\n got %v\nwant %v", len(got), len(ids), got, ids)
		}
		if rep.Replayed != n || rep.OutsideRetention != 0 || rep.AllowToDeny != len(ids) || rep.DenyToAllow != 0 || rep.CategoriesChanged != 0 ||
			rep.InForceAsRecorded != n {
			t.Fatalf("counts %+v, want %d replayed and %d allow to deny", rep.ReplayTotals, n, len(ids))
		}
		if len(rep.ByRule) != 1 || rep.ByRule["E-01"].AllowToDeny != len(ids) {
			t.Fatalf("byRule %+v, want E-01 only", rep.ByRule)
		}
		for _, c := range rep.Changed {
			if c.InForce.Outcome != "allow" || c.Candidate.Outcome != "deny" || c.Historical.Outcome != "allow" ||
				!slices.Equal(c.Candidate.DeniedBy, []string{"E-01"}) || c.Service != "bristol-awp" {
				t.Fatalf("change %+v", c)
			}
		}
	})

	t.Run("the JSON report", func(t *testing.T) {
		// The first day of the seed, so that the golden stays short.
		code, out, errOut := (&auditEnv{}).cli(t, "policy", "replay", "--config", env.cfg, "--json", "--by", "ig-lead", "--policies", one,
			"--from", replayStart.Format(time.RFC3339), "--to", replayStart.Add(24*time.Hour).Format(time.RFC3339))
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		golden(t, filepath.Join("testdata", "replay", "report.json"), placeholders(t, out))
	})

	t.Run("the text report", func(t *testing.T) {
		ids, n := want(false)
		code, out, errOut := (&auditEnv{}).cli(t, "policy", "replay", "--config", env.cfg, "--policies", one)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{
			fmt.Sprintf("replayed %d decisions; 0 outside retention could not be replayed\n", n),
			fmt.Sprintf("allow to deny %d, deny to allow 0, data categories changed 0\n", len(ids)),
		} {
			if !strings.Contains(out, want) {
				t.Errorf("the report lacks %q:\n%s", want, out)
			}
		}
		if !regexp.MustCompile(fmt.Sprintf(`\nE-01\s+%d\s+0\s+0\n`, len(ids))).MatchString(out) {
			t.Errorf("no row for E-01:\n%s", out)
		}
		for _, id := range ids {
			if !regexp.MustCompile(id + `\s+\S+\s+\S+\s+E-01\s+allow \S+\s+deny E-01\s+allow \S+\n`).MatchString(out) {
				t.Fatalf("no line for %s:\n%s", id, out)
			}
		}
	})

	t.Run("the sets are compared, not the candidate with history", func(t *testing.T) {
		// The edited set is now in force (policies.dir): the seeded
		// decisions were made under another revision. Replaying the
		// unedited set reports what going back would change, whatever
		// history says.
		cfg, err := os.ReadFile(env.cfg)
		if err != nil {
			t.Fatal(err)
		}
		changed := filepath.Join(t.TempDir(), "gateway.yaml")
		cfg = bytes.Replace(cfg, []byte("policies:\n  dir: \"\""), []byte("policies:\n  dir: "+one), 1)
		if err := os.WriteFile(changed, cfg, 0o600); err != nil {
			t.Fatal(err)
		}
		ids, n := want(false)
		rep := replayJSON(t, &replayEnv{cfg: changed}, "--policies", same)
		if got := changedIDs(rep); !slices.Equal(got, ids) || rep.DenyToAllow != len(ids) || rep.AllowToDeny != 0 ||
			rep.Replayed != n || rep.InForceAsRecorded != 0 {
			t.Fatalf("%+v: changed %d decisions, want %d", rep.ReplayTotals, len(got), len(ids))
		}
		for _, c := range rep.Changed {
			if c.InForce.Outcome != "deny" || c.Candidate.Outcome != "allow" || c.Historical.Outcome != "allow" ||
				!slices.Equal(c.Rules, []string{"E-01"}) || c.Historical.PolicyRevision == rep.InForceRevision {
				t.Fatalf("change %+v", c)
			}
		}
	})

	t.Run("dry runs only when asked", func(t *testing.T) {
		ids, n := want(true)
		rep := replayJSON(t, env, "--policies", one, "--include-dry-runs")
		if got := changedIDs(rep); !slices.Equal(got, ids) || rep.Replayed != n {
			t.Fatalf("replayed %d (want %d), changed %v, want %v", rep.Replayed, n, got, ids)
		}
	})

	t.Run("one institution", func(t *testing.T) {
		var ids []string
		n := 0
		for _, d := range env.seeded {
			if d.institution == uweUKPRN && !d.dryRun {
				n++
				if d.allow && d.priority == "urgent" && d.service == "bristol-awp" {
					ids = append(ids, d.id)
				}
			}
		}
		slices.Sort(ids)
		rep := replayJSON(t, env, "--policies", one, "--institution", uweUKPRN)
		if rep.Replayed != n || !slices.Equal(changedIDs(rep), ids) || n == len(env.seeded) {
			t.Fatalf("replayed %d (want %d of %d), changed %v, want %v", rep.Replayed, n, len(env.seeded), changedIDs(rep), ids)
		}
	})

	t.Run("an identical candidate changes nothing", func(t *testing.T) {
		rep := replayJSON(t, env, "--policies", same, "--include-dry-runs")
		_, n := want(true)
		if rep.Replayed != n || len(rep.Changed) != 0 || rep.AllowToDeny+rep.DenyToAllow+rep.CategoriesChanged != 0 ||
			rep.CandidateRevision != rep.InForceRevision {
			t.Fatalf("%+v", rep)
		}
	})

	t.Run("a candidate failing its own tests is refused", func(t *testing.T) {
		var out bytes.Buffer
		err := run(context.Background(), []string{"policy", "replay", "--config", env.cfg, "--policies", candidate(t, everyUrgent)}, nil, &out, io.Discard)
		if exitOf(err) != exitInvalid || err == nil || !strings.Contains(err.Error(), "test_e01_allows_routine_and_urgent") || out.Len() != 0 {
			t.Fatalf("exit %d: %v: %s", exitOf(err), err, out.String())
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"--policies", filepath.Join(t.TempDir(), "missing")},
			{"--policies", one, "--from", "yesterday"},
			{"--policies", one, "--from", "2026-12-01T00:00:00Z", "--to", "2026-11-01T00:00:00Z"},
			{},
		} {
			code, out, errOut := (&auditEnv{}).cli(t, append([]string{"policy", "replay", "--config", env.cfg}, args...)...)
			if code != exitFailure {
				t.Errorf("%v: exit %d: %s%s", args, code, out, errOut)
			}
		}
	})

	t.Run("decisions past retention are counted, not replayed", func(t *testing.T) {
		cut := replayStart.Add(24 * time.Hour)
		if _, err := env.store.PurgeContent(context.Background(), cut, cut); err != nil {
			t.Fatal(err)
		}
		// The allowed referrals are still queued, so they keep their
		// content; refusals and dry runs (which store no referral) go by
		// their decision time.
		outside, ids, n := 0, []string{}, 0
		for _, d := range env.seeded {
			switch {
			case (!d.allow || d.dryRun) && d.at.Before(cut):
				outside++
			default:
				n++
				if d.allow && d.priority == "urgent" && d.service == "bristol-awp" {
					ids = append(ids, d.id)
				}
			}
		}
		slices.Sort(ids)
		rep := replayJSON(t, env, "--policies", one, "--include-dry-runs")
		if outside == 0 || rep.OutsideRetention != outside || rep.Replayed != n || !slices.Equal(changedIDs(rep), ids) {
			t.Fatalf("outside retention %d (want %d), replayed %d (want %d)", rep.OutsideRetention, outside, rep.Replayed, n)
		}
	})

	t.Run("every replay is recorded in the gateway's chain", func(t *testing.T) {
		recs, err := env.store.Decisions(context.Background(), gateway.GatewayChain, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var replays []gateway.ActionEntry
		for _, r := range recs {
			ar, err := gateway.ParseAuditRecord(r)
			if err != nil {
				t.Fatal(err)
			}
			if ar.Action != nil && ar.Action.Action == gateway.ActionPolicyReplay {
				replays = append(replays, *ar.Action)
			}
		}
		if len(replays) != 8 { // the refused candidate is not replayed
			t.Fatalf("%d replays recorded: %+v", len(replays), replays)
		}
		first := replays[0]
		ids, n := want(false)
		if first.By != "ig-lead" || first.Replay == nil || first.Replay.Replayed != n || first.Replay.AllowToDeny != len(ids) ||
			first.PolicyRevision == first.PreviousRevision || first.PolicyRevision == "" {
			t.Fatalf("%+v", first)
		}
	})
}

// placeholders replaces the policy revisions and decision ids of a report
// (which derive from the policies' content) with names, so that the golden
// changes only when what the report says changes.
func placeholders(t *testing.T, report string) []byte {
	t.Helper()
	var rep gateway.ReplayReport
	if err := json.Unmarshal([]byte(report), &rep); err != nil {
		t.Fatal(err)
	}
	pairs := []string{rep.InForceRevision, "<in-force revision>", rep.CandidateRevision, "<candidate revision>"}
	for i, c := range rep.Changed {
		pairs = append(pairs, c.DecisionID, fmt.Sprintf("<decision %d>", i+1))
	}
	return []byte(strings.NewReplacer(pairs...).Replace(report))
}
