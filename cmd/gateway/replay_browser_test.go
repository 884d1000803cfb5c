package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// replayServer serves the web page over env's store, with the candidate
// sets of sets (name to directory) moved into policies.candidatesDir (dir),
// as an operator places them.
func replayServer(t *testing.T, env *replayEnv, sets map[string]string) (srv *httptest.Server, dir string) {
	t.Helper()
	dir = t.TempDir()
	for name, set := range sets {
		if err := os.Rename(set, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := os.ReadFile(env.cfg)
	if err != nil {
		t.Fatal(err)
	}
	with := bytes.Replace(cfg, []byte(`candidatesDir: ""`), []byte("candidatesDir: "+dir), 1)
	if bytes.Equal(with, cfg) {
		t.Fatal("the example configuration no longer has policies.candidatesDir")
	}
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, with, 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := newApp(context.Background(), path, io.Discard, "error")
	if err != nil {
		t.Fatal(err)
	}
	key, err := a.cfg.PseudonymKey()
	if err != nil {
		t.Fatal(err)
	}
	api, _ := a.server(env.store, key)
	srv = httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return srv, dir
}

// TestReplayInBrowser drives the replay page as the institution's IG lead
// would at 1280×900: pick a one-rule change an operator placed in the
// candidate directory, run it, read the report (the counts the command
// gives for that candidate over the lead's institution, on the first
// screen), open a changed decision; then run a candidate whose own tests
// fail and read why it is refused.
func TestReplayInBrowser(t *testing.T) {
	ctx := browserContext(t)
	env := newReplayEnv(t)
	one, failing := candidate(t, urgentToBristol), candidate(t, everyUrgent)
	// What the command reports for the lead's institution, which the page
	// must show (the page leaves dry runs out unless asked, as it does).
	want := replayJSON(t, env, "--policies", one, "--institution", uweUKPRN)
	if want.AllowToDeny == 0 || len(want.Changed) != want.AllowToDeny {
		t.Fatalf("the command's report changes nothing for UWE: %+v", want.ReplayTotals)
	}
	srv, dir := replayServer(t, env, map[string]string{"e01-urgent-bristol": one, "e01-every-urgent": failing})

	must(t, ctx, "sign in",
		chromedp.Navigate(srv.URL+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SetValue(chromedp.ID("token"), auditor), chromedp.Click(chromedp.CSS(`form button[type="submit"]`)))
	waitFor(t, ctx, "the decisions page", `document.getElementById('filter-heading') !== null`)
	must(t, ctx, "open the replay page", chromedp.Click(chromedp.CSS(`nav a[href="/ui/replay"]`)))
	waitFor(t, ctx, "the replay page", `document.getElementById('candidate') !== null`)
	if got := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#candidate option')).map(o => o.value)`); strings.Join(got, ",") != "e01-every-urgent,e01-urgent-bristol" {
		t.Errorf("the candidates offered: %q", got)
	}
	checkAccessible(t, ctx, "replay page")

	// run submits the form for a candidate and waits for the page that
	// answers (the old one is marked so that it is not taken for it).
	run := func(name string) {
		t.Helper()
		eval[bool](t, ctx, `window.before = true`)
		must(t, ctx, "run "+name, chromedp.SetValue(chromedp.ID("candidate"), name),
			chromedp.Click(chromedp.CSS(`form[action="/ui/replay"] button[type="submit"]`)))
		waitFor(t, ctx, "the answer for "+name, `window.before === undefined && document.readyState === 'complete'`)
	}
	run("e01-urgent-bristol")
	summary := eval[map[string]string](t, ctx, `Object.fromEntries(Array.from(document.querySelectorAll('dl.summary > div')).map(d => [d.querySelector('dt').innerText, d.querySelector('dd').innerText]))`)
	for dt, n := range map[string]int{
		"Decisions replayed":                    want.Replayed,
		"Past retention, not replayed":          want.OutsideRetention,
		"Allowed now, refused by the candidate": want.AllowToDeny,
		"Refused now, allowed by the candidate": want.DenyToAllow,
		"Other data categories sent":            want.CategoriesChanged,
	} {
		if summary[dt] != fmt.Sprint(n) {
			t.Errorf("%s: the page says %q, the command %d", dt, summary[dt], n)
		}
	}
	byRule := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#by-rule ~ tbody tr')).map(r => r.innerText.replace(/\s+/g, ' ').trim())`)
	if len(byRule) != 1 || byRule[0] != fmt.Sprintf("E-01 Not an emergency channel %d 0 0", want.AllowToDeny) {
		t.Errorf("the counts by rule: %q, want E-01, with its title, %d allow to deny", byRule, want.AllowToDeny)
	}
	byRoute := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#by-route ~ tbody th')).map(th => th.innerText)`)
	if len(byRoute) != len(want.ByRoute) || !slices.Contains(byRoute, "Consent") || !slices.Contains(byRoute, "Override: safeguarding") {
		t.Errorf("the routes: %q, want the %d of the command's report in words", byRoute, len(want.ByRoute))
	}
	changed := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#changed ~ tbody th a')).map(a => a.innerText)`)
	if len(changed) != len(want.Changed) {
		t.Errorf("the page lists %d changed decisions, the command %d", len(changed), len(want.Changed))
	}
	for i, c := range want.Changed {
		if i < len(changed) && changed[i] != c.DecisionID {
			t.Errorf("changed decision %d: the page shows %s, the command %s", i, changed[i], c.DecisionID)
		}
	}
	bottom, height := eval[int](t, ctx, `Math.round(document.querySelector('dl.replay-counts').getBoundingClientRect().bottom)`), eval[int](t, ctx, `window.innerHeight`)
	t.Logf("the report's counts end %d px down a %d px window", bottom, height)
	if bottom > height {
		t.Errorf("the report's counts end %d px down a %d px window: they are not on the first screen", bottom, height)
	}
	if wrapped := eval[int](t, ctx, `Array.from(document.querySelectorAll('#changed ~ tbody th a')).filter(a => a.getClientRects().length > 1).length`); wrapped > 0 {
		t.Errorf("%d decision ids wrap onto more than one line", wrapped)
	}
	if row := eval[string](t, ctx, `document.querySelector('#changed ~ tbody tr').innerText.replace(/\s+/g, ' ')`); !strings.Contains(row, "E-01 Not an emergency channel Allowed Refused by E-01 Allowed") {
		t.Errorf("a changed decision's row: %q, want its rule with its title and the three outcomes", row)
	}
	checkAccessible(t, ctx, "replay report")

	first := want.Changed[0].DecisionID
	must(t, ctx, "open a changed decision", chromedp.Click(chromedp.CSS(`#changed ~ tbody th a[href="/ui/decisions/`+first+`"]`)))
	waitFor(t, ctx, "its decision page", `document.getElementById('rules-heading') !== null`)
	if got := eval[string](t, ctx, `location.pathname`); got != "/ui/decisions/"+first {
		t.Errorf("opened %s, want /ui/decisions/%s", got, first)
	}

	// The first day of the seed (London time, which is UTC in November):
	// the dates narrow the replay as --from and --to do; a short report for
	// the screenshot.
	day := replayJSON(t, env, "--policies", filepath.Join(dir, "e01-urgent-bristol"), "--institution", uweUKPRN,
		"--from", "2026-11-23T00:00:00Z", "--to", "2026-11-24T00:00:00Z")
	must(t, ctx, "back to the replay page", chromedp.Navigate(srv.URL+"/ui/replay"), chromedp.WaitVisible(chromedp.ID("candidate")),
		chromedp.SetValue(chromedp.ID("from"), "2026-11-23"), chromedp.SetValue(chromedp.ID("to"), "2026-11-23"))
	run("e01-urgent-bristol")
	if got := eval[string](t, ctx, `document.getElementById('changed').innerText`); day.Replayed >= want.Replayed || got != fmt.Sprintf("%d decisions would change", len(day.Changed)) {
		t.Errorf("one day: %q, want %d of %d decisions replayed changed", got, len(day.Changed), day.Replayed)
	}
	screenshot(t, ctx, "ui-replay.png")

	run("e01-every-urgent")
	refusal := eval[string](t, ctx, `(document.querySelector('.error-summary[role=alert]') || {innerText: ''}).innerText`)
	if !strings.Contains(refusal, "test_e01_allows_routine_and_urgent") || eval[bool](t, ctx, `document.getElementById('report-heading') !== null`) {
		t.Errorf("the refused candidate's page does not say why (%q), or shows a report", refusal)
	}
	checkAccessible(t, ctx, "replay page, candidate refused")
	if n := eval[int](t, ctx, `document.querySelectorAll('#candidate option[selected]').length`); n != 1 || eval[string](t, ctx, `document.getElementById('candidate').value`) != "e01-every-urgent" {
		t.Error("the form does not keep the refused candidate selected")
	}
}
