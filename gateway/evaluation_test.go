package gateway_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestSuppress(t *testing.T) {
	var cases []struct {
		Name   string
		Counts []int
		Sums   []gateway.Additive
		Want   []string
	}
	readJSON(t, "testdata/evaluation/suppress.json", &cases)
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			var got []string
			for i, c := range gateway.Suppress(tc.Counts, tc.Sums) {
				got = append(got, c.Display)
				if (c.Value != nil) != (c.Display != gateway.DisplaySmall && c.Display != gateway.DisplaySecondary) {
					t.Errorf("cell %d: value %v with display %q", i, c.Value, c.Display)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.Want) {
				t.Errorf("Suppress(%v) = %q, want %q", tc.Counts, got, tc.Want)
			}
		})
	}
}

func TestPublishRateAndWait(t *testing.T) {
	var data struct {
		Rates []struct {
			Num, Den int
			Want     string
		}
		Waits []struct {
			Days []float64
			Want string
		}
	}
	readJSON(t, "testdata/evaluation/rates.json", &data)
	for _, r := range data.Rates {
		if got := gateway.PublishRate(r.Num, r.Den).Display; got != r.Want {
			t.Errorf("PublishRate(%d, %d) = %q, want %q", r.Num, r.Den, got, r.Want)
		}
	}
	for _, w := range data.Waits {
		if got := gateway.PublishWait(w.Days).Display; got != w.Want {
			t.Errorf("PublishWait(%v) = %q, want %q", w.Days, got, w.Want)
		}
	}
}

// reportFixture is testdata/evaluation/report.json: cases as data, each
// repeated n times with its own student unless it names one.
type reportFixture struct {
	ReturnPath bool
	Scope      gateway.EvaluationScope
	Query      struct{ From, To, GroupBy, Service string }
	Cases      []struct {
		N                             int
		Student, Institution, Service string
		At                            time.Time
		Allowed                       bool
		Route                         string
		RefusedBy, Categories         []string
		AckDays, AccDays, ApptDays    float64 // days from the referral; 0 for never
		DNA                           bool
		Outcome                       string
	}
	Want map[string]map[string]string
}

func (f reportFixture) facts() gateway.EvaluationFacts {
	out := gateway.EvaluationFacts{ReturnPath: f.ReturnPath}
	for i, c := range f.Cases {
		for k := range c.N {
			student := c.Student
			if student == "" {
				student = fmt.Sprintf("student-%d-%d", i, k)
			}
			fc := gateway.CaseFacts{
				Institution: c.Institution, Service: c.Service, Student: student, ReferredAt: c.At,
				Allowed: c.Allowed, Route: c.Route, RefusedBy: c.RefusedBy, Categories: c.Categories, Outcome: c.Outcome, DNA: c.DNA,
				AcknowledgedAt: after(c.At, c.AckDays), AcceptedAt: after(c.At, c.AccDays), FirstAppointmentAt: after(c.At, c.ApptDays),
			}
			out.Cases = append(out.Cases, fc)
		}
	}
	return out
}

// after is days after t, or the zero time for 0 days (never).
func after(t time.Time, days float64) time.Time {
	if days == 0 {
		return time.Time{}
	}
	return t.Add(time.Duration(days * 24 * float64(time.Hour)))
}

// flatten names every figure of a group as the fixture does.
func flatten(f gateway.Figures) map[string]string {
	out := map[string]string{
		"referrals": f.Referrals.Display, "allowed": f.Allowed.Display, "refused": f.Refused.Display,
		"acknowledgementRate": f.AcknowledgementRate.Display, "acceptanceRate": f.AcceptanceRate.Display,
		"rejectionRate": f.RejectionRate.Display, "didNotAttendRate": f.DidNotAttendRate.Display,
		"timeToAcknowledgement": f.TimeToAcknowledgement.Display, "timeToFirstAppointment": f.TimeToFirstAppointment.Display,
		"referredAgain": f.ReferredAgain.Display,
	}
	for prefix, cells := range map[string][]gateway.Named{
		"rule:": f.RefusalsByRule, "route:": f.Routes, "category:": f.DataCategories,
		"outcome:": f.Outcomes, "referredAgainServices:": f.ReferredAgainServices,
	} {
		for _, n := range cells {
			out[prefix+n.Name] = n.Display
		}
	}
	return out
}

func loadReport(t testing.TB) (reportFixture, *gateway.EvaluationReport) {
	var f reportFixture
	readJSON(t, "testdata/evaluation/report.json", &f)
	q, err := gateway.ParseEvaluationQuery(f.Query.From, f.Query.To, f.Query.GroupBy, f.Query.Service, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return f, gateway.BuildReport(f.facts(), f.Scope, q)
}

// TestBuildReport checks the figures of a small history against hand
// counts, suppression and rounding included (the worked example of
// docs/evaluation.md).
func TestBuildReport(t *testing.T) {
	f, r := loadReport(t)
	if got := strings.Join(r.Periods, ","); got != "2026-01,2026-02" {
		t.Errorf("periods %s", got)
	}
	if len(r.Groups) != 3 {
		t.Fatalf("%d groups, want one a month and the total (one service, one institution)", len(r.Groups))
	}
	for _, g := range r.Groups {
		want, ok := f.Want[g.Period]
		if !ok {
			t.Errorf("unexpected group %+v", g)
			continue
		}
		got := flatten(g.Figures)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s %s = %q, want %q", g.Period, k, got[k], v)
			}
		}
	}
	if len(r.Unavailable) != 0 {
		t.Errorf("unavailable %v with the timeline", r.Unavailable)
	}
	// A source without the timeline says so rather than report 0.
	facts := f.facts()
	facts.ReturnPath = false
	q, _ := gateway.ParseEvaluationQuery(f.Query.From, f.Query.To, f.Query.GroupBy, f.Query.Service, time.Now())
	noTimeline := gateway.BuildReport(facts, f.Scope, q)
	if strings.Join(noTimeline.Unavailable, ",") != "acceptanceRate,timeToFirstAppointment,didNotAttendRate" {
		t.Errorf("unavailable %v without the timeline", noTimeline.Unavailable)
	}
	if tot := noTimeline.Groups[len(noTimeline.Groups)-1].Figures; tot.DidNotAttendRate.Display != gateway.DisplayUnavailable || tot.AcknowledgementRate.Display != "84.0%" {
		t.Errorf("without the timeline: DNA rate %q, acknowledgement rate %q", tot.DidNotAttendRate.Display, tot.AcknowledgementRate.Display)
	}
	// Nothing of a record leaves: no pseudonym, no case facts.
	b, _ := json.Marshal(r)
	for _, s := range []string{`"x"`, "student-", `"y"`} {
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("the report holds %s", s)
		}
	}
}

// TestReportCSV checks that the CSV holds what the JSON does, hidden
// figures with an empty value.
func TestReportCSV(t *testing.T) {
	_, r := loadReport(t)
	var buf bytes.Buffer
	if err := r.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	find := func(period, figure, breakdown string) []string {
		for _, row := range rows {
			if row[0] == period && row[3] == figure && row[4] == breakdown {
				return row
			}
		}
		t.Fatalf("no row %s %s %s", period, figure, breakdown)
		return nil
	}
	for _, tc := range []struct {
		period, figure, breakdown, value, display string
	}{
		{"total", "referrals", "", "35", "35"},
		{"total", "allowed", "", "", "*"},
		{"2026-01", "refused", "", "", "<8"},
		{"2026-02", "acknowledgementRate", "percent", "66.7", "66.7%"},
		{"total", "timeToAcknowledgement", "p90Days", "4", "2.0 / 4.0 days"},
		{"total", "acceptanceRate", "percent", "84", "84.0%"},
		{"2026-01", "didNotAttendRate", "percent", "61.5", "61.5%"},
		{"2026-02", "timeToFirstAppointment", "medianDays", "6", "6.0 / 8.0 days"},
		{"total", "outcomes", "discharged", "", "*"},
	} {
		row := find(tc.period, tc.figure, tc.breakdown)
		if row[5] != tc.value || row[6] != tc.display {
			t.Errorf("%s %s %s: value %q display %q, want %q %q", tc.period, tc.figure, tc.breakdown, row[5], row[6], tc.value, tc.display)
		}
	}
}

func TestParseEvaluationQuery(t *testing.T) {
	now := time.Date(2026, 7, 15, 10, 0, 0, 0, time.UTC)
	q, err := gateway.ParseEvaluationQuery("", "", "", "", now)
	if err != nil {
		t.Fatal(err)
	}
	if q.From.Format(time.RFC3339) != "2025-08-01T00:00:00+01:00" || q.To.Format(time.RFC3339) != "2026-08-01T00:00:00+01:00" || q.GroupBy != "month" {
		t.Errorf("defaults: %v %v %s", q.From, q.To, q.GroupBy)
	}
	for _, bad := range [][4]string{
		{"2026-02-01", "2026-01-01", "month", ""},
		{"yesterday", "", "", ""},
		{"", "", "week", ""},
		{"2000-01-01", "2026-01-01", "year", ""},
	} {
		if _, err := gateway.ParseEvaluationQuery(bad[0], bad[1], bad[2], bad[3], now); gateway.ErrorCode(err) != gateway.EINVALID {
			t.Errorf("%v: %v, want EINVALID", bad, err)
		}
	}
}

// TestEvaluationPeriods checks the period labels, in UK time: the academic
// year turns on 1 August, British Summer Time included.
func TestEvaluationPeriods(t *testing.T) {
	f := gateway.EvaluationFacts{Cases: []gateway.CaseFacts{
		{Institution: "10007164", Service: "s", ReferredAt: time.Date(2025, 7, 31, 23, 30, 0, 0, time.UTC), Allowed: true, Outcome: gateway.OutcomeAwaitingResponse},
	}}
	scope := gateway.EvaluationScope{Institutions: []string{"10007164"}, Services: []string{"s"}}
	for _, tc := range []struct{ groupBy, periods, period string }{
		{"month", "2025-06,2025-07,2025-08,2025-09", "2025-08"},
		{"quarter", "2025-Q2,2025-Q3", "2025-Q3"},
		{"academic-year", "2024/25,2025/26", "2025/26"},
		{"year", "2025", "2025"},
	} {
		q, err := gateway.ParseEvaluationQuery("2025-06-15", "2025-09-02", tc.groupBy, "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		r := gateway.BuildReport(f, scope, q)
		if got := strings.Join(r.Periods, ","); got != tc.periods {
			t.Errorf("%s: periods %s, want %s", tc.groupBy, got, tc.periods)
		}
		for _, g := range r.Groups {
			if want := map[bool]string{true: "<8", false: "0"}[g.Period == tc.period || g.Period == gateway.TotalPeriod]; g.Figures.Referrals.Display != want {
				t.Errorf("%s %s: referrals %s, want %s", tc.groupBy, g.Period, g.Figures.Referrals.Display, want)
			}
		}
	}
}
