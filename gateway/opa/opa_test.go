package opa

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

var update = flag.Bool("update", false, "rewrite the golden decisions under testdata/decisions")

// decisionTime is the instant every table case is decided at.
var decisionTime = time.Date(2026, 11, 19, 14, 5, 0, 0, time.UTC)

// shared is the embedded policy set, compiled once per test binary.
var shared = sync.OnceValues(func() (*Decider, error) { return New(context.Background(), nil) })

func decider(t testing.TB) *Decider {
	t.Helper()
	d, err := shared()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

func loadRecord(t testing.TB, name string) *gateway.CaseRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "records", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var rec gateway.CaseRecord
	if err := dec.Decode(&rec); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &rec
}

func loadService(t testing.TB, id string) *gateway.Service {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "services.json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var svcs []gateway.Service
	if err := dec.Decode(&svcs); err != nil {
		t.Fatal(err)
	}
	for i := range svcs {
		if svcs[i].ID == id {
			return &svcs[i]
		}
	}
	t.Fatalf("no service %q in testdata/services.json", id)
	return nil
}

func inputFor(t testing.TB, record string, at time.Time) gateway.DecisionInput {
	t.Helper()
	rec := loadRecord(t, record)
	return gateway.DecisionInput{Record: rec, Service: loadService(t, rec.Referral.Service), At: at}
}

func TestDecide(t *testing.T) {
	consentAllow := []string{"A-01", "C-01", "C-02", "C-03", "C-04", "E-01", "K-01", "K-02", "L-01", "L-02", "M-01", "N-01", "P-01", "R-01", "S-01", "T-01", "X-01", "X-02"}
	overrideAllow := []string{"A-01", "C-01", "E-01", "K-01", "K-02", "L-01", "L-02", "M-01", "N-01", "O-01", "O-02", "O-03", "O-04", "P-01", "R-01", "S-01", "T-01", "X-01", "X-02"}
	tests := []struct {
		name        string
		record      string
		at          time.Time
		allow       bool
		route       string
		rules       []string // ids, in order
		obligations []string // "rule type", in order
		categories  []string
		bases       gateway.LawfulBasis
	}{
		{
			name: "U-COPE on consent", record: "liverpool-u-cope", at: decisionTime,
			allow: true, route: "consent", rules: consentAllow,
			obligations: []string{"M-01 keep-categories", "T-01 notify-student"},
			categories:  []string{"demographics", "contact", "gp", "needs", "risk-formulation", "safety-plan"},
			bases:       gateway.LawfulBasis{Article6: "6(1)(a)", Article9: "9(2)(a)"},
		},
		{
			name: "consent expiring at the decision time", record: "consent-expires-at-decision-time", at: decisionTime,
			route: "consent", rules: []string{"C-02"},
		},
		{
			name: "consent a second before it expires", record: "consent-expires-at-decision-time", at: decisionTime.Add(-time.Second),
			allow: true, route: "consent", rules: consentAllow,
			obligations: []string{"M-01 keep-categories", "T-01 notify-student"},
			categories:  []string{"demographics", "contact", "gp", "needs", "risk-formulation", "safety-plan"},
			bases:       gateway.LawfulBasis{Article6: "6(1)(a)", Article9: "9(2)(a)"},
		},
		{
			name: "emergency with only a score", record: "emergency-score-only", at: decisionTime,
			route: "consent", rules: []string{"E-01", "P-01", "X-01", "X-02"},
		},
		{
			name: "trusted contact not consented, score stripped", record: "bristol-trusted-contact-not-consented", at: decisionTime,
			allow: true, route: "consent", rules: consentAllow,
			obligations: []string{"C-04 drop-trusted-contact", "M-01 keep-categories", "T-01 notify-student", "X-01 strip-fields"},
			categories:  []string{"demographics", "contact", "gp", "needs", "risk-formulation", "safety-plan", "context"},
			bases:       gateway.LawfulBasis{Article6: "6(1)(a)", Article9: "9(2)(a)"},
		},
		{
			name: "under the service's minimum age the day before an 18th birthday", record: "manchester-under-min-age", at: decisionTime,
			route: "consent", rules: []string{"P-01"},
		},
		{
			name: "still 17 at 23:59:59 GMT the day before", record: "manchester-under-min-age",
			at:    time.Date(2026, 11, 19, 23, 59, 59, 0, time.UTC),
			route: "consent", rules: []string{"P-01"},
		},
		{
			name: "18 at midnight GMT on the birthday", record: "manchester-under-min-age",
			at:    time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC),
			allow: true, route: "consent", rules: consentAllow,
			obligations: []string{"M-01 keep-categories", "T-01 notify-student", "X-01 strip-fields"},
			categories:  []string{"demographics", "contact", "gp", "needs", "risk-formulation", "safety-plan", "context"},
			bases:       gateway.LawfulBasis{Article6: "6(1)(a)", Article9: "9(2)(a)"},
		},
		{
			name: "safeguarding a 17-year-old who cannot be reached", record: "liverpool-safeguarding-under-18", at: decisionTime,
			allow: true, route: "safeguarding", rules: overrideAllow,
			obligations: []string{"M-01 drop-trusted-contact", "M-01 keep-categories", "T-01 notify-student"},
			categories:  []string{"demographics", "contact", "gp", "needs", "risk-formulation", "safety-plan", "context"},
			bases:       gateway.LawfulBasis{Article6: "6(1)(e)", Article9: "9(2)(g)", DPASchedule1: "para-18"},
		},
		{
			name: "vital interests against a capable refusal", record: "bristol-vital-interests-capable-refusal", at: decisionTime,
			route: "vital-interests", rules: []string{"O-01", "O-02", "O-03", "T-01"},
		},
		{
			name: "best interests of a student who lacks capacity", record: "sheffield-best-interests", at: decisionTime,
			allow: true, route: "best-interests", rules: overrideAllow,
			obligations: []string{"M-01 drop-trusted-contact", "M-01 keep-categories", "T-01 notify-student"},
			categories:  []string{"demographics", "contact", "gp", "needs", "risk-formulation", "safety-plan", "context"},
			bases:       gateway.LawfulBasis{Article6: "6(1)(e)", Article9: "9(2)(h)"},
		},
	}
	d := decider(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.Decide(context.Background(), inputFor(t, tc.record, tc.at))
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if got.Allow != tc.allow || got.Route != tc.route {
				t.Errorf("allow, route = %v, %q; want %v, %q\nrules: %+v", got.Allow, got.Route, tc.allow, tc.route, got.Rules)
			}
			var ids, obligations []string
			for _, r := range got.Rules {
				ids = append(ids, r.ID)
				want := gateway.EffectAllow
				if !tc.allow {
					want = gateway.EffectDeny
				}
				if r.Effect != want && r.Effect != gateway.EffectObligation {
					t.Errorf("rule %s has effect %q on a decision with allow %v", r.ID, r.Effect, tc.allow)
				}
				if r.Message == "" {
					t.Errorf("rule %s has no message", r.ID)
				}
			}
			for _, o := range got.Obligations {
				obligations = append(obligations, o.Rule+" "+o.Type)
			}
			if !slices.Equal(ids, tc.rules) {
				t.Errorf("rule ids = %q; want %q\nrules: %+v", ids, tc.rules, got.Rules)
			}
			if !slices.Equal(obligations, tc.obligations) {
				t.Errorf("obligations = %q; want %q", obligations, tc.obligations)
			}
			if !slices.Equal(got.DataCategories, tc.categories) && len(got.DataCategories)+len(tc.categories) > 0 {
				t.Errorf("data categories = %q; want %q", got.DataCategories, tc.categories)
			}
			if got.LawfulBases != tc.bases {
				t.Errorf("lawful bases = %+v; want %+v", got.LawfulBases, tc.bases)
			}
			if got.Recipient.Service != inputFor(t, tc.record, tc.at).Service.ID {
				t.Errorf("recipient = %+v", got.Recipient)
			}
			if got.PolicyRevision != d.Revision() {
				t.Errorf("policy revision %q; want %q, the revision in force", got.PolicyRevision, d.Revision())
			}
			got.PolicyRevision = "" // every policy edit changes it; the golden files hold the rest
			golden(t, tc.record+"@"+tc.at.Format("20060102T150405Z"), got)
		})
	}
}

// golden compares a decision with testdata/decisions/NAME.json, the full
// document an IG lead can read; -update rewrites it.
func golden(t *testing.T, name string, d *gateway.Decision) {
	t.Helper()
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	path := filepath.Join("testdata", "decisions", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./gateway/opa/ -run TestDecide -update)", err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("decision differs from %s (run with -update and review the diff):\n%s", path, b)
	}
}

func TestDecideDenyMessagesNameTheField(t *testing.T) {
	got, err := decider(t).Decide(context.Background(), inputFor(t, "bristol-vital-interests-capable-refusal", decisionTime))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"O-01": "override.approvedBy.name",
		"O-02": "override.lawfulBasis.article9",
		"O-03": "consent.capacity.status",
		"T-01": "override.studentInformed.status",
	}
	for _, r := range got.Rules {
		if field, ok := want[r.ID]; ok && !strings.Contains(r.Message, field) {
			t.Errorf("%s message %q does not name %s", r.ID, r.Message, field)
		}
	}
}

func TestRules(t *testing.T) {
	want := []string{
		"A-01", "C-01", "C-02", "C-03", "C-04", "E-01", "K-01", "K-02", "L-01", "L-02", "M-01",
		"N-01", "O-01", "O-02", "O-03", "O-04", "P-01", "R-01", "S-01", "T-01", "X-01", "X-02",
	}
	rules := decider(t).Rules()
	var ids []string
	for _, r := range rules {
		ids = append(ids, r.ID)
		t.Run(r.ID, func(t *testing.T) {
			if r.Title == "" || r.Description == "" || r.Source == "" || r.File == "" || r.Theme == "" {
				t.Errorf("incomplete: %+v", r)
			}
			if strings.HasSuffix(r.File, "_test.rego") {
				t.Errorf("rule from a test file: %+v", r)
			}
		})
	}
	if !slices.Equal(ids, want) {
		t.Errorf("rule ids = %q; want %q", ids, want)
	}
	themes := map[string]string{}
	for _, r := range rules {
		themes[r.ID] = r.Theme
	}
	if themes["C-01"] != "Consent: the default route" || themes["K-01"] != "Capacity and age" {
		t.Errorf("themes = %q", themes)
	}
}

func TestRevision(t *testing.T) {
	ctx := context.Background()
	base := fstest.MapFS{
		"a.rego": {Data: []byte(minimalPolicy)},
	}
	d1, err := New(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	withTest := fstest.MapFS{
		"a.rego":      base["a.rego"],
		"a_test.rego": {Data: []byte("package referral_test\n\ntest_x if true\n")},
	}
	d2, err := New(ctx, withTest)
	if err != nil {
		t.Fatal(err)
	}
	changed := fstest.MapFS{"a.rego": {Data: []byte(minimalPolicy + "\n# edited\n")}}
	d3, err := New(ctx, changed)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d1.Revision(), "sha256:") || len(d1.Revision()) != len("sha256:")+16 {
		t.Errorf("revision %q is not sha256: and 16 hex digits", d1.Revision())
	}
	if d1.Revision() != d2.Revision() {
		t.Errorf("a test file changed the revision: %s vs %s", d1.Revision(), d2.Revision())
	}
	if d1.Revision() == d3.Revision() {
		t.Errorf("an edited policy kept the revision %s", d1.Revision())
	}

	embedded := decider(t)
	dir, err := New(ctx, os.DirFS(filepath.Join("..", "..", "policies")))
	if err != nil {
		t.Fatal(err)
	}
	if dir.Revision() != embedded.Revision() {
		t.Errorf("the policies directory has revision %s, the embedded set %s", dir.Revision(), embedded.Revision())
	}
}

// minimalPolicy always allows: enough to test loading and hashing.
const minimalPolicy = `package referral

decision := {
	"allow": true, "route": "consent",
	"deny": set(), "satisfied": {{"id": "C-01", "message": "ok"}},
	"obligations": set(), "lawfulBases": {"article6": "6(1)(a)", "article9": "9(2)(a)"},
	"dataCategories": {"needs"}, "recipient": {"service": input.service.id, "odsCode": "RW4", "name": "n"},
}
`

func TestNewRefusesBrokenPolicySets(t *testing.T) {
	tests := []struct {
		name string
		fsys fstest.MapFS
	}{
		{"no Rego", fstest.MapFS{"README.md": {Data: []byte("# none")}}},
		{"only tests", fstest.MapFS{"a_test.rego": {Data: []byte("package referral_test\n\ntest_x if true\n")}}},
		{"syntax error", fstest.MapFS{"a.rego": {Data: []byte("package referral\n\ndecision := {\n")}}},
		{"compile error", fstest.MapFS{"a.rego": {Data: []byte("package referral\n\ndecision := x\n")}}},
		{"no decision", fstest.MapFS{"a.rego": {Data: []byte("package referral\n\nallow := true\n")}}},
		{"bad data file", fstest.MapFS{"a.rego": {Data: []byte(minimalPolicy)}, "data.json": {Data: []byte("[1]")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := New(context.Background(), tc.fsys)
			if err == nil {
				t.Fatalf("New succeeded with revision %s", d.Revision())
			}
			if code := gateway.ErrorCode(err); code != gateway.EINVALID {
				t.Errorf("error code %q; want %q (%v)", code, gateway.EINVALID, err)
			}
		})
	}
}

func TestDataFiles(t *testing.T) {
	fsys := fstest.MapFS{
		"a.rego":            {Data: []byte(strings.Replace(minimalPolicy, `"odsCode": "RW4"`, `"odsCode": data.sharing.ods`, 1))},
		"sharing/data.yaml": {Data: []byte("ods: RW4\n")},
	}
	d, err := New(context.Background(), fsys)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Decide(context.Background(), inputFor(t, "liverpool-u-cope", decisionTime))
	if err != nil {
		t.Fatal(err)
	}
	if got.Recipient.ODSCode != "RW4" {
		t.Errorf("recipient %+v: data.sharing.ods not loaded", got.Recipient)
	}
}

// TestMalformedResults: whatever a broken policy returns, Decide answers
// with an internal error, never a decision.
func TestMalformedResults(t *testing.T) {
	tests := []struct {
		name     string
		decision string
	}{
		{"undefined", `decision := x if { x := 1; false }`},
		{"not an object", `decision := true`},
		{"allow not a boolean", `decision := object.union(ok, {"allow": "yes"})`},
		{"allow with a deny", `decision := object.union(ok, {"deny": {{"id": "E-01", "message": "m"}}})`},
		{"allow with nothing satisfied", `decision := object.union(ok, {"satisfied": set()})`},
		{"deny without a rule", `decision := object.union(ok, {"allow": false, "satisfied": set(), "obligations": set(), "dataCategories": set()})`},
		{"deny with obligations", `decision := object.union(ok, {"allow": false, "deny": {{"id": "E-01", "message": "m"}}, "satisfied": set(), "dataCategories": set()})`},
		{"deny with satisfied rules", `decision := object.union(ok, {"allow": false, "deny": {{"id": "E-01", "message": "m"}}, "obligations": set(), "dataCategories": set()})`},
		{"deny not a set", `decision := object.union(ok, {"deny": "none"})`},
		{"satisfied missing", `decision := object.remove(ok, {"satisfied"})`},
		{"rule not an object", `decision := object.union(ok, {"satisfied": {"C-01"}})`},
		{"rule without an id", `decision := object.union(ok, {"satisfied": {{"message": "m"}}})`},
		{"rule with an empty id", `decision := object.union(ok, {"satisfied": {{"id": "", "message": "m"}}})`},
		{"rule without a message", `decision := object.union(ok, {"satisfied": {{"id": "C-01"}}})`},
		{"unknown obligation", `decision := object.union(ok, {"obligations": {{"type": "shred", "rule": "M-01"}}})`},
		{"categories not strings", `decision := object.union(ok, {"dataCategories": {1}})`},
		{"unknown category", `decision := object.union(ok, {"dataCategories": {"diary"}})`},
		{"no lawful bases on an allow", `decision := object.union(object.remove(ok, {"lawfulBases"}), {"lawfulBases": {}})`},
		{"no route", `decision := object.union(ok, {"route": ""})`},
		{"missing recipient", `decision := object.remove(ok, {"recipient"})`},
		{"another recipient", `decision := object.union(ok, {"recipient": {"service": "elsewhere", "odsCode": "X", "name": "n"}})`},
		{"two decisions", `decision contains ok`},
	}
	okDoc := `ok := {
	"allow": true, "route": "consent",
	"deny": set(), "satisfied": {{"id": "C-01", "message": "ok"}},
	"obligations": {{"type": "keep-categories", "rule": "M-01", "categories": ["needs"]}},
	"lawfulBases": {"article6": "6(1)(a)", "article9": "9(2)(a)"},
	"dataCategories": {"needs"}, "recipient": {"service": input.service.id, "odsCode": "RW4", "name": "n"},
}
`
	in := inputFor(t, "liverpool-u-cope", decisionTime)
	// The well-formed document passes, so each case fails for its own reason.
	good, err := New(context.Background(), fstest.MapFS{"a.rego": {Data: []byte("package referral\n\n" + okDoc + "\ndecision := ok\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := good.Decide(context.Background(), in); err != nil {
		t.Fatalf("well-formed decision refused: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "package referral\n\n" + okDoc + "\n" + tc.decision + "\n"
			d, err := New(context.Background(), fstest.MapFS{"a.rego": {Data: []byte(src)}})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			got, err := d.Decide(context.Background(), in)
			if err == nil {
				t.Fatalf("Decide returned %+v; want an internal error", got)
			}
			if code := gateway.ErrorCode(err); code != gateway.EINTERNAL {
				t.Errorf("error code %q; want %q", code, gateway.EINTERNAL)
			}
		})
	}
}

func TestDecideRefusesIncompleteInput(t *testing.T) {
	in := inputFor(t, "liverpool-u-cope", decisionTime)
	tests := map[string]gateway.DecisionInput{
		"no record":  {Service: in.Service, At: in.At},
		"no service": {Record: in.Record, At: in.At},
		"no time":    {Record: in.Record, Service: in.Service},
	}
	for name, bad := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := decider(t).Decide(context.Background(), bad); gateway.ErrorCode(err) != gateway.EINTERNAL {
				t.Errorf("error %v; want an internal error", err)
			}
		})
	}
}

func TestNewStrict(t *testing.T) {
	d, err := New(context.Background(), nil, WithStrict())
	if err != nil {
		t.Fatalf("the embedded policies fail strict compilation: %v", err)
	}
	if d.Revision() != decider(t).Revision() {
		t.Errorf("strict compilation changed the revision")
	}
}

// TestDecideConcurrently shares one Decider between goroutines, as the
// HTTP server does; run with -race.
func TestDecideConcurrently(t *testing.T) {
	d := decider(t)
	allow := inputFor(t, "liverpool-u-cope", decisionTime)
	deny := inputFor(t, "emergency-score-only", decisionTime)
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			in, want := allow, true
			if i%2 == 1 {
				in, want = deny, false
			}
			got, err := d.Decide(context.Background(), in)
			if err == nil && got.Allow != want {
				err = fmt.Errorf("goroutine %d: allow %v, want %v", i, got.Allow, want)
			}
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
