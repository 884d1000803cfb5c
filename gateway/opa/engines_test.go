package opa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/policies"
)

// planSet is the embedded policy set compiled for the plan engine, with its
// source.
func planSet(t testing.TB) (*source, *policySet) {
	t.Helper()
	src, err := load(policies.FS)
	if err != nil {
		t.Fatal(err)
	}
	set, err := compile(context.Background(), src, false, EnginePlan)
	if err != nil {
		t.Fatal(err)
	}
	if set.plan == nil {
		t.Fatalf("the embedded policies do not run on the plan: %v", set.planErr)
	}
	return src, set
}

// TestEnginesAgreeOnPolicyTestInputs decides every input document the Rego
// tests of the embedded set evaluate (more than a hundred, built by the
// tests to pass and fail each rule) with both engines: the plan must give
// topdown's decision document on every one. This is the check New and
// Reload run on a policy directory before it serves on the plan.
func TestEnginesAgreeOnPolicyTestInputs(t *testing.T) {
	src, set := planSet(t)
	inputs := newInputCollector()
	ran, err := testSet(context.Background(), src, inputs)
	if err != nil {
		t.Fatal(err)
	}
	if ran < 100 || len(inputs.inputs) < 100 {
		t.Fatalf("%d tests gave %d distinct inputs; want at least 100 of each", ran, len(inputs.inputs))
	}
	for i, in := range inputs.inputs {
		if err := agree(context.Background(), set, in); err != nil {
			t.Errorf("input %d: %v\n%v", i, err, in)
		}
	}
	t.Logf("%d tests, %d distinct inputs, both engines agree", ran, len(inputs.inputs))
}

// TestEnginesAgreeOnRecords decides every example record for every service
// in the registry, at times around the decision time, with both engines.
func TestEnginesAgreeOnRecords(t *testing.T) {
	_, set := planSet(t)
	var records []*gateway.CaseRecord
	for _, dir := range []string{filepath.Join("testdata", "records"), filepath.Join("..", "..", "testdata", "cases")} {
		files, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var rec gateway.CaseRecord
			if err := json.NewDecoder(bytes.NewReader(b)).Decode(&rec); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			records = append(records, &rec)
		}
	}
	var services []gateway.Service
	b, err := os.ReadFile(filepath.Join("testdata", "services.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &services); err != nil {
		t.Fatal(err)
	}
	if len(records) < 15 || len(services) < 6 {
		t.Fatalf("%d records and %d services; the test data is missing", len(records), len(services))
	}
	times := []time.Time{decisionTime, decisionTime.Add(-time.Second), decisionTime.AddDate(-3, 0, 0), decisionTime.AddDate(2, 0, 0)}
	n, allowed := 0, 0
	for _, rec := range records {
		for i := range services {
			for _, at := range times {
				in, err := inputValue(gateway.DecisionInput{Record: rec, Service: &services[i], At: at})
				if err != nil {
					t.Fatal(err)
				}
				if err := agree(context.Background(), set, in); err != nil {
					t.Errorf("%s for %s at %s: %v", rec.Referral.Service, services[i].ID, at.Format(time.RFC3339), err)
				}
				if doc, _ := set.decideTopdown(context.Background(), in); doc != nil {
					if dec, err := decisionOf(doc); err == nil && dec.Allow {
						allowed++
					}
				}
				n++
			}
		}
	}
	if allowed == 0 || allowed == n {
		t.Errorf("%d of %d decisions allow: the comparison needs both allows and denies", allowed, n)
	}
	t.Logf("%d decisions (%d allow), both engines agree", n, allowed)
}

// TestEnginesDisagreeingFallsBack gives a set a plan of other policies: the
// check finds the difference, and the set serves on topdown with a warning.
func TestEnginesDisagreeingFallsBack(t *testing.T) {
	ctx := context.Background()
	withTest := func(name string) fstest.MapFS {
		return fstest.MapFS{
			"a.rego":      {Data: []byte(namedPolicy(name))},
			"a_test.rego": {Data: []byte(passingTest)},
		}
	}
	compiled := func(name string) (*source, *policySet) {
		src, err := load(withTest(name))
		if err != nil {
			t.Fatal(err)
		}
		set, err := compile(ctx, src, true, EnginePlan)
		if err != nil {
			t.Fatal(err)
		}
		return src, set
	}
	srcA, setA := compiled("a")
	_, setB := compiled("b")
	if setA.plan == nil || setB.plan == nil {
		t.Fatal("the minimal policies do not run on the plan")
	}
	setA.plan = setB.plan // a plan that is wrong for set a

	core, logs := observer.New(zap.InfoLevel)
	d := &Decider{cfg: config{engine: EnginePlan, log: zap.New(core)}}
	if _, err := d.vet(ctx, srcA, setA); err != nil {
		t.Fatalf("vet: %v", err)
	}
	if setA.plan != nil || !errors.Is(setA.planErr, errEnginesDisagree) {
		t.Fatalf("after vet: plan %v, reason %v; want no plan, because the engines disagree", setA.plan != nil, setA.planErr)
	}
	d.logEngine(setA)
	if logs.FilterMessageSnippet("policy engine: topdown").Len() != 1 {
		t.Errorf("no warning that the set serves on topdown: %v", logs.All())
	}
}

// TestUnsupportedPlanFallsBack is valid Rego the plan engine does not run
// (a call to http.send): the set compiles and decides on topdown.
func TestUnsupportedPlanFallsBack(t *testing.T) {
	held := strings.Replace(minimalPolicy, `"name": "n"`, `"name": http.send({"method": "GET", "url": input.service.endpoint}).body.name`, 1)
	src, err := load(fstest.MapFS{"a.rego": {Data: []byte(held)}})
	if err != nil {
		t.Fatal(err)
	}
	set, err := compile(context.Background(), src, false, EnginePlan)
	if err != nil {
		t.Fatal(err)
	}
	if set.plan != nil || set.planErr == nil || !strings.Contains(set.planErr.Error(), "http.send") {
		t.Errorf("plan %v, reason %v; want topdown because of http.send", set.plan != nil, set.planErr)
	}
}

// FuzzEnginesAgree decides arbitrary input documents, well formed or not,
// with both engines of the embedded set: they must agree on each.
func FuzzEnginesAgree(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "records", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	svc, err := os.ReadFile(filepath.Join("testdata", "services.json"))
	if err != nil {
		f.Fatal(err)
	}
	var services []json.RawMessage
	if err := json.Unmarshal(svc, &services); err != nil {
		f.Fatal(err)
	}
	for i, file := range files {
		rec, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		doc := `{"record": ` + string(rec) + `, "service": ` + string(services[i%len(services)]) + `, "at": "2026-11-19T14:05:00Z"}`
		f.Add([]byte(doc))
	}
	_, set := planSet(f)
	f.Fuzz(func(t *testing.T, doc []byte) {
		var x any
		if err := util.UnmarshalJSON(doc, &x); err != nil {
			return
		}
		in, err := ast.InterfaceToValue(x)
		if err != nil {
			return
		}
		if err := agree(context.Background(), set, in); err != nil {
			t.Errorf("%v\n%s", err, doc)
		}
	})
}
