package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// evaluator is the demo partnership evaluator's token.
const evaluatorToken = "demo-partnership-evaluator"

// seedSummary is what `gateway demo seed` counted as it played the year.
type seedSummary struct{ cases, allowed, refused int }

// demoSeed seeds env's store with n cases over the year to 1 December 2026.
func demoSeed(t *testing.T, env *auditEnv, n int) seedSummary {
	t.Helper()
	code, out, errOut := env.cli(t, "demo", "seed", "--config", env.cfg, "--end", "2026-12-01", "--referrals", strconv.Itoa(n))
	if code != 0 {
		t.Fatalf("demo seed: exit %d: %s", code, errOut)
	}
	var s seedSummary
	var from, to string
	if _, err := fmt.Sscanf(out, "seeded %d cases from %s to %s %d allowed, %d refused", &s.cases, &from, &to, &s.allowed, &s.refused); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	return s
}

// published is a count as the figures publish it: 1 to 7 hidden, the rest
// rounded to the nearest 5.
func published(n int) string {
	if n > 0 && n < 8 {
		return "<8"
	}
	return strconv.Itoa((n + 2) / 5 * 5)
}

// TestDemoSeedAndReport seeds a demo store and checks the report's totals
// against the seed's own counts, in JSON and CSV; the seed refuses a store
// that holds decisions, and a configuration that is not a demo.
func TestDemoSeedAndReport(t *testing.T) {
	env := newAuditEnv(t)
	s := demoSeed(t, env, 120)
	if s.cases != 120 || s.allowed+s.refused != 120 || s.refused == 0 {
		t.Fatalf("seed summary %+v", s)
	}
	code, out, errOut := env.cli(t, "evaluation", "report", "--config", env.cfg, "--partnership", "demo-pathways", "--from", "2025-12-01", "--to", "2026-12-01", "--group-by", "academic-year")
	if code != 0 {
		t.Fatalf("report: exit %d: %s", code, errOut)
	}
	var rep struct {
		Periods []string
		Groups  []struct {
			Period, Institution, Service string
			Figures                      map[string]json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if strings.Join(rep.Periods, ",") != "2025/26,2026/27" {
		t.Errorf("periods %v", rep.Periods)
	}
	display := func(raw json.RawMessage) string {
		var c struct{ Display string }
		_ = json.Unmarshal(raw, &c)
		return c.Display
	}
	for _, g := range rep.Groups {
		if g.Period != "total" || g.Institution != "" || g.Service != "" {
			continue
		}
		for figure, want := range map[string]string{"referrals": published(s.cases), "allowed": published(s.allowed), "refused": published(s.refused)} {
			if got := display(g.Figures[figure]); got != want && got != "*" {
				t.Errorf("total %s = %s, want %s (or * where a small cell needs it)", figure, got, want)
			}
		}
		// The seed plays journeys down to discharge: the return path's
		// figures are there, not unavailable.
		var outcomes []struct{ Name, Display string }
		_ = json.Unmarshal(g.Figures["outcomes"], &outcomes)
		for _, o := range outcomes {
			if o.Name == "discharged" && (o.Display == "0" || o.Display == "<8") {
				t.Errorf("total discharged %s", o.Display)
			}
		}
		// (A rate over fewer than 8 missed appointments shows as <8.)
		for figure, want := range map[string][]string{"timeToFirstAppointment": {" days"}, "didNotAttendRate": {"%", "<8"}, "acceptanceRate": {"%"}} {
			if got := display(g.Figures[figure]); !strings.HasSuffix(got, want[0]) && !slices.Contains(want, got) {
				t.Errorf("total %s = %q", figure, got)
			}
		}
	}
	if strings.Contains(out, "nhs") || strings.Contains(out, "student\"") {
		t.Error("the report holds record-level data")
	}
	code, out, _ = env.cli(t, "evaluation", "report", "--config", env.cfg, "--institution", uweUKPRN, "--from", "2025-12-01", "--to", "2026-12-01", "--format", "csv")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(rows) < 100 || strings.Join(rows[0], ",") != "period,institution,service,figure,breakdown,value,display" {
		t.Fatalf("CSV: exit %d, %v, %d rows", code, err, len(rows))
	}
	for _, args := range [][]string{
		{"evaluation", "report", "--config", env.cfg},
		{"evaluation", "report", "--config", env.cfg, "--partnership", "nowhere"},
		{"evaluation", "report", "--config", env.cfg, "--institution", uweUKPRN, "--group-by", "week"},
	} {
		if code, _, _ := env.cli(t, args...); code == 0 {
			t.Errorf("%v succeeded", args)
		}
	}
	if err := run(context.Background(), []string{"demo", "seed", "--config", env.cfg}, nil, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "already holds decisions") {
		t.Errorf("a second seed: %v", err)
	}
	b, _ := os.ReadFile(env.cfg)
	notDemo := filepath.Join(t.TempDir(), "live.yaml")
	_ = os.WriteFile(notDemo, []byte(strings.Replace(string(b), "\ndemo: true", "\ndemo: false", 1)), 0o600)
	if err := run(context.Background(), []string{"demo", "seed", "--config", notDemo}, nil, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "only on a demo configuration") {
		t.Errorf("seed outside demo mode: %v", err)
	}
}

// TestEvaluationInBrowser signs in to the IG page as UWE's IG lead and as
// the demo partnership's evaluator over a seeded store and checks the
// Evaluation tab: four charts, each with a text alternative and a table of
// the same numbers, readable in greyscale, and the form that regroups them.
func TestEvaluationInBrowser(t *testing.T) {
	ctx := browserContext(t)
	env := newAuditEnv(t)
	demoSeed(t, env, 480)
	page := env.srv.URL + "/ui/evaluation?from=2025-12-01&to=2026-12-01&groupBy=month"
	signIn := func(token, landing string) {
		must(t, ctx, "open the sign-in page", chromedp.Navigate(env.srv.URL+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")))
		must(t, ctx, "sign in", chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Submit(chromedp.ID("token")))
		waitFor(t, ctx, landing, `location.pathname === '`+landing+`' && document.readyState === 'complete'`)
	}

	signIn(evaluatorToken, "/ui/evaluation")
	if n := eval[int](t, ctx, `document.querySelectorAll('nav a[href="/ui/decisions"]').length`); n != 0 {
		t.Error("an evaluator is offered the decisions")
	}
	must(t, ctx, "open the figures", chromedp.Navigate(page))
	waitFor(t, ctx, "the figures", `document.getElementById('outcome-chart') !== null`)
	charts := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('svg.chart')).map(s => {
		const [title, desc] = s.getAttribute('aria-labelledby').split(' ').map(id => document.getElementById(id));
		return s.getAttribute('role') + '|' + s.id + '|' + (title && title.textContent.length > 5) + '|' + (desc && desc.textContent.length > 20);
	})`)
	want := []string{"img|outcome-chart|true|true", "img|route-chart|true|true", "img|rule-chart|true|true", "img|wait-chart|true|true"}
	if strings.Join(charts, ",") != strings.Join(want, ",") {
		t.Errorf("charts %q, want %q", charts, want)
	}
	// Each chart sits beside a table of its numbers: the outcome table has
	// a row a month and the total, whose referrals match the summary's.
	months := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#outcomes tbody th')).map(th => th.textContent)`)
	if len(months) != 12 || months[0] != "2025-12" || months[11] != "2026-11" {
		t.Errorf("outcome table months %q", months)
	}
	if a, b := eval[string](t, ctx, `document.querySelector('#outcomes tfoot td').textContent`), eval[string](t, ctx, `document.querySelector('#summary tfoot td').textContent`); a != b || a == "" {
		t.Errorf("total referrals %q in the outcome table, %q in the summary", a, b)
	}
	// Greyscale: the series of the stacked bars differ by pattern, not only
	// by colour.
	if n := eval[int](t, ctx, `new Set(Array.from(document.querySelectorAll('#outcome-chart rect[fill^="url(#p-"]')).map(r => r.getAttribute('fill'))).size`); n < 4 {
		t.Errorf("the outcome chart uses %d patterns", n)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('script, [style]').length`); n != 0 {
		t.Errorf("%d scripts or inline styles on the page", n)
	}
	checkAccessible(t, ctx, "evaluation page")
	screenshot(t, ctx, "evaluation-partnership.png")
	must(t, ctx, "greyscale", chromedp.Evaluate[chromedp.Void](`document.documentElement.style.filter = 'grayscale(1)'`))
	screenshot(t, ctx, "evaluation-greyscale.png")

	must(t, ctx, "group by quarter", chromedp.SetValue(chromedp.ID("groupBy"), "quarter"), chromedp.Submit(chromedp.ID("groupBy")))
	waitFor(t, ctx, "the quarters", `location.search.includes('groupBy=quarter') && document.readyState === 'complete'`)
	if q := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#outcomes tbody th')).map(th => th.textContent)`); strings.Join(q, ",") != "2025-Q4,2026-Q1,2026-Q2,2026-Q3,2026-Q4" {
		t.Errorf("quarters %q", q)
	}

	must(t, ctx, "sign out", chromedp.Submit(chromedp.CSS(`form[action="/ui/logout"]`)))
	waitFor(t, ctx, "the sign-in page", `document.getElementById('token') !== null`)
	signIn(auditor, "/ui/decisions")
	must(t, ctx, "open the figures", chromedp.Navigate(page))
	waitFor(t, ctx, "the figures", `document.getElementById('outcome-chart') !== null`)
	if scope := eval[string](t, ctx, `document.querySelector('.lead').textContent`); !strings.Contains(scope, "UKPRN 10007164;") || strings.Contains(scope, "10006842") {
		t.Errorf("the auditor's scope: %q", scope)
	}
	checkAccessible(t, ctx, "evaluation page (auditor)")
	screenshot(t, ctx, "evaluation-auditor.png")
}
