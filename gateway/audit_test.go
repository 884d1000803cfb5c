package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/sqlite"
)

const (
	instA = "10000001"
	instB = "10000002"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

var (
	auditorA = &gateway.Client{ID: "a-ig", Institution: instA, Roles: []string{gateway.RoleAuditor}}
	auditorB = &gateway.Client{ID: "b-ig", Institution: instB, Roles: []string{gateway.RoleAuditor}}
)

func openStore(t testing.TB) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// entry is a decision entry for the tests: i picks the outcome, route,
// recipient and student so that every filter has something to select.
func entry(inst string, i int) gateway.DecisionEntry {
	e := gateway.DecisionEntry{
		DecisionID: gateway.DeriveID("decision", inst, fmt.Sprint(i)), Time: t0.Add(time.Duration(i) * time.Hour).Format(time.RFC3339),
		Client: "cms", Institution: inst, CaseID: fmt.Sprintf("CASE-%d", i%4), Student: fmt.Sprintf("student-%d", i%3),
		Outcome: gateway.OutcomeAllow, Allow: true, Route: "consent",
		Rules:          []gateway.RuleResult{{ID: "C-01", Effect: gateway.EffectAllow, Message: "consent given"}},
		DataCategories: []string{"demographics"},
		Recipient:      gateway.Recipient{Service: "u-cope", ODSCode: "RW4", Name: "U-COPE"},
		PolicyRevision: "sha256:test",
	}
	if i%2 == 0 {
		e.Outcome, e.Allow, e.DataCategories = gateway.OutcomeDeny, false, nil
		e.Rules = []gateway.RuleResult{{ID: "C-02", Effect: gateway.EffectDeny, Message: "consent expired"}}
	}
	if i%5 == 0 {
		e.Route = "safeguarding"
		e.Recipient = gateway.Recipient{Service: "bristol-awp", ODSCode: "RVN", Name: "AWP"}
		e.Override = &gateway.OverrideEntry{Ground: "safeguarding", DecidedBy: &gateway.Person{Name: "Sam", Role: "mental-health-adviser"}, StudentInformed: "will-inform"}
	}
	if i%7 == 0 {
		e.DryRun = true
	}
	return e
}

// seed appends n decisions to inst's chain (record i at t0+i minutes) and
// returns them as AuditRecords.
func seed(t testing.TB, log gateway.AuditTrail, inst string, n int) []gateway.AuditRecord {
	t.Helper()
	var out []gateway.AuditRecord
	for i := 1; i <= n; i++ {
		b, err := json.Marshal(entry(inst, i))
		if err != nil {
			t.Fatal(err)
		}
		r, err := log.AppendDecision(context.Background(), gateway.DecisionRecord{Institution: inst, DecisionID: gateway.DeriveID("decision", inst, fmt.Sprint(i)), At: t0.Add(time.Duration(i) * time.Minute), Body: b})
		if err != nil {
			t.Fatal(err)
		}
		ar, err := gateway.ParseAuditRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ar)
	}
	return out
}

func TestParseAuditRecord(t *testing.T) {
	tests := []struct {
		name, body, kind string
		wantErr          bool
	}{
		{"a referral decision", `{"decisionId":"d","outcome":"allow","route":"consent"}`, gateway.RecordReferral, false},
		{"a dry run", `{"decisionId":"d","dryRun":true,"outcome":"deny"}`, gateway.RecordDryRun, false},
		{"an action", `{"type":"action","actionId":"a","action":"outbox-drop","by":"ops","institution":"10000001"}`, gateway.RecordAction, false},
		{"an unknown type", `{"type":"note"}`, "", true},
		{"not JSON", `{`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := gateway.ParseAuditRecord(gateway.DecisionRecord{Institution: instA, Seq: 1, DecisionID: "d", At: t0, Body: []byte(tt.body)})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				if gateway.ErrorCode(err) != gateway.EINTERNAL {
					t.Fatalf("code %s", gateway.ErrorCode(err))
				}
				return
			}
			if r.Kind != tt.kind || (r.Decision == nil) == (r.Action == nil) {
				t.Fatalf("parsed %+v", r)
			}
		})
	}
}

func TestQueryMatch(t *testing.T) {
	dec := gateway.AuditRecord{Seq: 3, Kind: gateway.RecordReferral, RecordedAt: t0, Decision: &gateway.DecisionEntry{
		CaseID: "CASE-1", Student: "p1", Outcome: gateway.OutcomeDeny, Route: "safeguarding",
		Rules:     []gateway.RuleResult{{ID: "O-01", Effect: gateway.EffectDeny}, {ID: "E-01", Effect: gateway.EffectAllow}},
		Recipient: gateway.Recipient{Service: "bristol-awp", ODSCode: "RVN"},
	}}
	act := gateway.AuditRecord{Seq: 4, Kind: gateway.RecordAction, RecordedAt: t0, Action: &gateway.ActionEntry{
		Action: gateway.ActionOutboxDrop, CaseID: "CASE-1", Service: "bristol-awp",
	}}
	tests := []struct {
		name     string
		q        gateway.Query
		dec, act bool
	}{
		{"no filter", gateway.Query{}, true, true},
		{"from before", gateway.Query{From: t0}, true, true},
		{"from after", gateway.Query{From: t0.Add(time.Second)}, false, false},
		{"to is exclusive", gateway.Query{To: t0}, false, false},
		{"to after", gateway.Query{To: t0.Add(time.Second)}, true, true},
		{"kind action", gateway.Query{Kind: gateway.RecordAction}, false, true},
		{"kind referral", gateway.Query{Kind: gateway.RecordReferral}, true, false},
		{"outcome deny", gateway.Query{Outcome: gateway.OutcomeDeny}, true, false},
		{"outcome allow", gateway.Query{Outcome: gateway.OutcomeAllow}, false, false},
		{"rule cited", gateway.Query{RuleID: "E-01"}, true, false},
		{"rule id is case-blind", gateway.Query{RuleID: "o-01"}, true, false},
		{"rule with its effect", gateway.Query{RuleID: "O-01", Effect: gateway.EffectDeny}, true, false},
		{"rule with another effect", gateway.Query{RuleID: "E-01", Effect: gateway.EffectDeny}, false, false},
		{"rule not cited", gateway.Query{RuleID: "C-02"}, false, false},
		{"route", gateway.Query{Route: "safeguarding"}, true, false},
		{"another route", gateway.Query{Route: "consent"}, false, false},
		{"any override", gateway.Query{Route: gateway.RouteAnyOverride}, true, false},
		{"recipient by service", gateway.Query{Recipient: "bristol-awp"}, true, true},
		{"recipient by ODS code", gateway.Query{Recipient: "rvn"}, true, false},
		{"another recipient", gateway.Query{Recipient: "u-cope"}, false, false},
		{"case id", gateway.Query{CaseID: "CASE-1"}, true, true},
		{"another case id", gateway.Query{CaseID: "CASE-2"}, false, false},
		{"student", gateway.Query{Students: []string{"p0", "p1"}}, true, false},
		{"another student", gateway.Query{Students: []string{"p2"}}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.q.Match(dec); got != tt.dec {
				t.Errorf("decision: match %v, want %v", got, tt.dec)
			}
			if got := tt.q.Match(act); got != tt.act {
				t.Errorf("action: match %v, want %v", got, tt.act)
			}
		})
	}
}

func TestQueryValidate(t *testing.T) {
	tests := []struct {
		name  string
		q     gateway.Query
		field string // "" when valid
	}{
		{"empty", gateway.Query{}, ""},
		{"everything", gateway.Query{From: t0, To: t0.Add(time.Hour), Kind: "dry-run", Outcome: "deny", RuleID: "C-02", Effect: "deny", Route: "vital-interests", Order: "asc", Limit: 500}, ""},
		{"unknown kind", gateway.Query{Kind: "other"}, "kind"},
		{"unknown outcome", gateway.Query{Outcome: "invalid"}, "outcome"},
		{"unknown route", gateway.Query{Route: "whim"}, "route"},
		{"effect without rule", gateway.Query{Effect: "deny"}, "effect"},
		{"to before from", gateway.Query{From: t0, To: t0}, "to"},
		{"limit too large", gateway.Query{Limit: 501}, "limit"},
		{"negative limit", gateway.Query{Limit: -1}, "limit"},
		{"bad order", gateway.Query{Order: "random"}, "order"},
		{"forged cursor", gateway.Query{Cursor: "djE6c2lkZXdheXM6MQ"}, "cursor"},
		{"garbage cursor", gateway.Query{Cursor: "!!"}, "cursor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.q.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			e := gateway.AsError(err)
			if err == nil || e.Code != gateway.EINVALID || len(e.Issues) != 1 || e.Issues[0].Expression != tt.field {
				t.Fatalf("err = %+v, want one issue on %s", err, tt.field)
			}
		})
	}
}

// ids returns the chain positions of records.
func seqs(recs []gateway.AuditRecord) []int64 {
	out := make([]int64, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}

// TestSearchPages walks every page of several searches in both orders and
// checks that together they hold exactly the matching records, in order,
// each once; and that another institution's chain never shows.
func TestSearchPages(t *testing.T) {
	db := openStore(t)
	all := seed(t, db, instA, 1050) // more than two scan batches
	seed(t, db, instB, 40)
	a := &gateway.Audit{Log: db}
	ctx := context.Background()
	queries := []struct {
		name string
		q    gateway.Query
	}{
		{"everything", gateway.Query{}},
		{"refused", gateway.Query{Outcome: gateway.OutcomeDeny}},
		{"overrides refused by C-02", gateway.Query{Route: "safeguarding", RuleID: "C-02", Effect: gateway.EffectDeny}},
		{"one student's dry runs", gateway.Query{Kind: gateway.RecordDryRun, Students: []string{"student-1"}}},
		{"a time window", gateway.Query{From: t0.Add(100 * time.Minute), To: t0.Add(700 * time.Minute)}},
		{"nothing", gateway.Query{CaseID: "none"}},
	}
	for _, qq := range queries {
		var want []int64
		for _, r := range all {
			if qq.q.Match(r) {
				want = append(want, r.Seq)
			}
		}
		for _, order := range []string{"asc", "desc"} {
			for _, limit := range []int{1, 7, 50, 500} {
				t.Run(fmt.Sprintf("%s/%s/%d", qq.name, order, limit), func(t *testing.T) {
					if limit == 1 && len(want) > 100 {
						t.Skip("one record a page over hundreds of records proves nothing more")
					}
					q := qq.q
					q.Order, q.Limit = order, limit
					var got []int64
					for pages := 0; ; pages++ {
						if pages > len(want)+2 {
							t.Fatal("paging does not end")
						}
						p, err := a.Search(ctx, auditorA, q)
						if err != nil {
							t.Fatal(err)
						}
						if len(p.Records) > limit || p.Institution != instA {
							t.Fatalf("page of %d records for %s", len(p.Records), p.Institution)
						}
						got = append(got, seqs(p.Records)...)
						if p.Next == "" {
							break
						}
						q.Cursor = p.Next
					}
					exp := slices.Clone(want)
					if order == "desc" {
						slices.Reverse(exp)
					}
					if !slices.Equal(got, exp) {
						t.Fatalf("pages hold %d records %v…, want %d %v…", len(got), head(got), len(exp), head(exp))
					}
				})
			}
		}
	}
	t.Run("a cursor of the other order is refused", func(t *testing.T) {
		p, err := a.Search(ctx, auditorA, gateway.Query{Order: "asc", Limit: 2})
		if err != nil || p.Next == "" {
			t.Fatalf("%v %+v", err, p)
		}
		_, err = a.Search(ctx, auditorA, gateway.Query{Order: "desc", Cursor: p.Next})
		if gateway.ErrorCode(err) != gateway.EINVALID {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("each institution sees its own chain", func(t *testing.T) {
		p, err := a.Search(ctx, auditorB, gateway.Query{Limit: 500})
		if err != nil || len(p.Records) != 40 {
			t.Fatalf("%v: %d records", err, len(p.Records))
		}
		for _, r := range p.Records {
			if r.Institution != instB || r.Decision.Institution != instB {
				t.Fatalf("institution B sees %s's record", r.Institution)
			}
		}
	})
}

func head(s []int64) []int64 { return s[:min(len(s), 5)] }

func TestAuditNeedsAnAuditorOfAnInstitution(t *testing.T) {
	db := openStore(t)
	recs := seed(t, db, instA, 3)
	a := &gateway.Audit{Log: db}
	ctx := context.Background()
	for _, c := range []*gateway.Client{
		nil,
		{ID: "cms", Institution: instA, Roles: []string{gateway.RoleSubmitter}},
		{ID: "ops", Roles: []string{gateway.RoleAdmin}},
		{ID: "ig-nowhere", Roles: []string{gateway.RoleAuditor}},
	} {
		name := "nil"
		if c != nil {
			name = c.ID
		}
		t.Run(name, func(t *testing.T) {
			if _, err := a.Search(ctx, c, gateway.Query{}); gateway.ErrorCode(err) != gateway.EFORBIDDEN {
				t.Errorf("search: %v", err)
			}
			if _, _, err := a.Record(ctx, c, recs[0].ID, 0); gateway.ErrorCode(err) != gateway.EFORBIDDEN {
				t.Errorf("record: %v", err)
			}
			if _, err := a.Verify(ctx, c); gateway.ErrorCode(err) != gateway.EFORBIDDEN {
				t.Errorf("verify: %v", err)
			}
			if err := a.Each(ctx, c, gateway.Query{}, func(gateway.AuditRecord) error { return nil }); gateway.ErrorCode(err) != gateway.EFORBIDDEN {
				t.Errorf("each: %v", err)
			}
		})
	}
	t.Run("another institution's decision is not found", func(t *testing.T) {
		if _, _, err := a.Record(ctx, auditorB, recs[0].ID, 0); gateway.ErrorCode(err) != gateway.ENOTFOUND {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("without a store", func(t *testing.T) {
		if _, err := (&gateway.Audit{}).Search(ctx, auditorA, gateway.Query{}); gateway.ErrorCode(err) != gateway.EUNAVAILABLE {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestRecordPicksAmongRepeats: a decision id recorded twice (a dry run
// repeated with the same `at`) is read as the latest, or by position.
func TestRecordPicksAmongRepeats(t *testing.T) {
	db := openStore(t)
	ctx := context.Background()
	body := []byte(`{"decisionId":"d-1","dryRun":true,"outcome":"deny","route":"consent"}`)
	for i := range 3 {
		if _, err := db.AppendDecision(ctx, gateway.DecisionRecord{Institution: instA, DecisionID: "d-1", At: t0.Add(time.Duration(i) * time.Second), Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	a := &gateway.Audit{Log: db}
	tests := []struct {
		seq, want int64
		others    []int64
		code      string
	}{
		{0, 3, []int64{1, 2}, ""},
		{2, 2, []int64{1, 3}, ""},
		{9, 0, nil, gateway.ENOTFOUND},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("seq ", tt.seq), func(t *testing.T) {
			r, others, err := a.Record(ctx, auditorA, "d-1", tt.seq)
			if gateway.ErrorCode(err) != tt.code {
				t.Fatalf("err = %v", err)
			}
			if err == nil && (r.Seq != tt.want || !slices.Equal(others, tt.others)) {
				t.Fatalf("record %d, others %v", r.Seq, others)
			}
		})
	}
}

func TestStudentPseudonyms(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	a := &gateway.Audit{PseudonymKey: key}
	byNHS := gateway.StudentPseudonym(key, &gateway.CaseRecord{Institution: gateway.Institution{UKPRN: instA}, CaseID: "C", Student: gateway.Student{NHSNumber: "9434765919", StudentID: "S1"}})
	bySID := gateway.StudentPseudonym(key, &gateway.CaseRecord{Institution: gateway.Institution{UKPRN: instA}, CaseID: "C", Student: gateway.Student{StudentID: "S1"}})
	tests := []struct {
		name, nhs, sid string
		client         *gateway.Client
		want           []string
		field          string
	}{
		{"NHS number", "9434765919", "", auditorA, []string{byNHS}, ""},
		{"NHS number with spaces", "943 476 5919", "", auditorA, []string{byNHS}, ""},
		{"student id", "", " S1 ", auditorA, []string{bySID}, ""},
		{"both", "943-476-5919", "S1", auditorA, []string{byNHS, bySID}, ""},
		{"another institution's student id differs", "", "S1", auditorB, nil, ""},
		{"a bad check digit", "9434765918", "", auditorA, nil, "nhsNumber"},
		{"too short", "12345", "", auditorA, nil, "nhsNumber"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.StudentPseudonyms(tt.client, tt.nhs, tt.sid)
			if tt.field != "" {
				e := gateway.AsError(err)
				if err == nil || e.Issues[0].Expression != tt.field || strings.Contains(e.Error()+e.Issues[0].Message, strings.TrimSpace(tt.nhs)) {
					t.Fatalf("err = %v (it must name the field and not echo the value)", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil {
				if slices.Contains(got, bySID) || len(got) != 1 {
					t.Fatalf("got %v; a student id is scoped to its institution", got)
				}
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAppendAction(t *testing.T) {
	db := openStore(t)
	ctx := context.Background()
	seed(t, db, instA, 2)
	r, err := gateway.AppendAction(ctx, db, gateway.ActionEntry{Action: gateway.ActionOutboxDrop, By: "ops", Institution: instA, MessageID: "m-1", CaseID: "CASE-1"}, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ar, err := gateway.ParseAuditRecord(r)
	if err != nil || ar.Kind != gateway.RecordAction || ar.Action.ActionID == "" || ar.Action.Time != "2026-11-23T13:00:00Z" || ar.Seq != 3 {
		t.Fatalf("%v %+v %+v", err, ar, ar.Action)
	}
	if _, err := gateway.AppendAction(ctx, db, gateway.ActionEntry{Action: gateway.ActionOutboxDrop}, t0); gateway.ErrorCode(err) != gateway.EINVALID {
		t.Fatalf("an action without an institution: %v", err)
	}
	a := &gateway.Audit{Log: db}
	if err := a.PolicyReloaded(ctx, "ops", "sha256:old", "sha256:new", t0); err != nil {
		t.Fatal(err)
	}
	recs, err := db.Decisions(ctx, gateway.GatewayChain, 0, 10)
	if err != nil || len(recs) != 1 {
		t.Fatalf("gateway chain: %v %d records", err, len(recs))
	}
	pr, _ := gateway.ParseAuditRecord(recs[0])
	if pr.Action.Action != gateway.ActionPolicyReload || pr.Action.PolicyRevision != "sha256:new" || pr.Action.PreviousRevision != "sha256:old" {
		t.Fatalf("policy reload record %+v", pr.Action)
	}
	if v, err := db.Verify(ctx, instA); err != nil || !v.OK || v.Records != 3 {
		t.Fatalf("the chain with an action: %v %+v", err, v)
	}
}

func TestCSV(t *testing.T) {
	recs := []gateway.AuditRecord{
		{Seq: 1, ID: "d-1", Kind: gateway.RecordReferral, Institution: instA, RecordedAt: t0, Hash: "h1", PrevHash: gateway.GenesisHash,
			Decision: &gateway.DecisionEntry{DecisionID: "d-1", Client: "=cmd|' /C calc'!A0", CaseID: "+CASE", Outcome: "deny", Route: "safeguarding",
				Rules:    []gateway.RuleResult{{ID: "O-01", Effect: "deny", Message: "no approver"}, {ID: "E-01", Effect: "allow", Message: "routine"}},
				Override: &gateway.OverrideEntry{Ground: "safeguarding", DecidedBy: &gateway.Person{Name: "Sam", Role: "counsellor"}, StudentInformed: "will-inform"}}},
		{Seq: 2, ID: "a-1", Kind: gateway.RecordAction, Institution: instA, RecordedAt: t0, Hash: "h2", PrevHash: "h1",
			Action: &gateway.ActionEntry{Action: gateway.ActionReferralCancel, By: "@cms", CaseID: "CASE", Reason: gateway.CancelRequested}},
	}
	var buf bytes.Buffer
	w := gateway.NewAuditCSV(&buf)
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || !slices.Equal(rows[0], gateway.CSVHeader) {
		t.Fatalf("rows %v", rows)
	}
	col := func(r int, name string) string { return rows[r][slices.Index(gateway.CSVHeader, name)] }
	checks := []struct {
		row       int
		col, want string
	}{
		{1, "client", "'=cmd|' /C calc'!A0"},
		{1, "caseId", "'+CASE"},
		{1, "deniedBy", "O-01"},
		{1, "rules", "O-01 deny: no approver\nE-01 allow: routine"},
		{1, "overrideDecidedBy", "Sam (counsellor)"},
		{1, "studentInformed", "will-inform"},
		{2, "action", "referral-cancel"},
		{2, "actionBy", "'@cms"},
		{2, "prevHash", "h1"},
	}
	for _, c := range checks {
		if got := col(c.row, c.col); got != c.want {
			t.Errorf("row %d %s = %q, want %q", c.row, c.col, got, c.want)
		}
	}
	t.Run("an empty export has the header", func(t *testing.T) {
		var b bytes.Buffer
		if err := gateway.NewAuditCSV(&b).Close(); err != nil || !strings.HasPrefix(b.String(), "seq,recordedAt,") {
			t.Fatalf("%v %q", err, b.String())
		}
	})
}

// countingLog counts the reads of the chain, and cancels its context after
// cancelAfter reads when set. It reads the store under a context that is
// never cancelled, as an adapter that does not watch its context would, so
// that the tests show the audit's own loops stopping.
type countingLog struct {
	gateway.AuditTrail
	reads       int
	cancelAfter int
	cancel      context.CancelFunc
}

func (c *countingLog) Decisions(ctx context.Context, inst string, after int64, limit int) ([]gateway.DecisionRecord, error) {
	c.reads++
	if c.cancel != nil && c.reads == c.cancelAfter {
		c.cancel()
	}
	return c.AuditTrail.Decisions(context.WithoutCancel(ctx), inst, after, limit)
}

// cursor is a cursor as an attacker writes one: base64url of "v1:ORDER:SEQ".
func cursor(order string, seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("v1:%s:%d", order, seq)))
}

// TestForgedCursorIsRefused: a cursor beyond the head of the chain (the
// penetration test's "v1:desc:9223372036854775807", which read down the
// chain in empty windows of 500 for minutes) is refused naming cursor,
// after the few reads that find the head; cursors within the chain work.
func TestForgedCursorIsRefused(t *testing.T) {
	db := openStore(t)
	seed(t, db, instA, 30)
	ctx := context.Background()
	tests := []struct {
		name, cursor, order string
		refused             bool
	}{
		{"desc at the largest seq", cursor("desc", math.MaxInt64), "desc", true},
		{"desc just past the head", cursor("desc", 31), "desc", true},
		{"desc at 0", cursor("desc", 0), "desc", true},
		{"asc at the largest seq", cursor("asc", math.MaxInt64), "asc", true},
		{"asc just past the head", cursor("asc", 31), "asc", true},
		{"desc at the head", cursor("desc", 30), "desc", false},
		{"asc at the head", cursor("asc", 30), "asc", false},
		{"asc at 0", cursor("asc", 0), "asc", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := &countingLog{AuditTrail: db}
			a := &gateway.Audit{Log: log}
			p, err := a.Search(ctx, auditorA, gateway.Query{Order: tt.order, Cursor: tt.cursor, Limit: 10})
			if !tt.refused {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			e := gateway.AsError(err)
			if e.Code != gateway.EINVALID || len(e.Issues) != 1 || e.Issues[0].Expression != "cursor" {
				t.Fatalf("err = %v, page %d records; want a refusal naming cursor", err, len(p.Records))
			}
			// Finding the head of 30 records takes about 2·log2(30) reads.
			if log.reads > 12 {
				t.Fatalf("%d reads of the chain before the refusal", log.reads)
			}
		})
	}
}

// TestCancelledSearchStops: every loop over the chain stops at the first
// read after its request's context is done, with a 503-class error rather
// than reading on.
func TestCancelledSearchStops(t *testing.T) {
	db := openStore(t)
	seed(t, db, instA, 1600) // four windows
	for _, tt := range []struct {
		name string
		// cancelAfter is the read at which the context is cancelled: for
		// the newest-first search, after the 22 reads that find the head
		// of 1,600 records and two windows below it.
		cancelAfter int
		run         func(ctx context.Context, a *gateway.Audit) error
	}{
		{"desc search matching nothing", 24, func(ctx context.Context, a *gateway.Audit) error {
			_, err := a.Search(ctx, auditorA, gateway.Query{CaseID: "none"})
			return err
		}},
		{"asc search matching nothing", 2, func(ctx context.Context, a *gateway.Audit) error {
			_, err := a.Search(ctx, auditorA, gateway.Query{Order: "asc", CaseID: "none"})
			return err
		}},
		{"export", 2, func(ctx context.Context, a *gateway.Audit) error {
			return a.Each(ctx, auditorA, gateway.Query{}, func(gateway.AuditRecord) error { return nil })
		}},
		{"record", 2, func(ctx context.Context, a *gateway.Audit) error {
			_, _, err := a.Record(ctx, auditorA, "none", 0)
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			log := &countingLog{AuditTrail: db, cancelAfter: tt.cancelAfter, cancel: cancel}
			err := tt.run(ctx, &gateway.Audit{Log: log})
			if gateway.ErrorCode(err) != gateway.EUNAVAILABLE || !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want unavailable (context canceled)", err)
			}
			if log.reads != tt.cancelAfter {
				t.Fatalf("%d reads, want %d: the loop read on after its context was done", log.reads, tt.cancelAfter)
			}
		})
	}
}
