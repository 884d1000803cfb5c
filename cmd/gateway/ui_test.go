package main

import (
	"context"
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// chromium finds Debian's headless Chromium, or skips (fails under
// CI=true): the browser tests need it (apt-get install chromium).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium is not installed: the browser tests of the IG web page need it (apt-get install -y chromium)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browserContext starts a fresh headless Chromium for one test.
func browserContext(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// must runs browser steps or fails the test.
func must(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it holds.
func waitFor(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s (%s): %v", what, js, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot writes a full-page PNG into docs/screenshots when
// UPDATE_SCREENSHOTS=1.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("UPDATE_SCREENSHOTS") != "1" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote docs/screenshots/%s", name)
}

// accessibilityJS checks what a page owes WCAG 2.2 AA that a script can
// see: every form control has a label, every text has a contrast of at
// least 4.5:1 with the background it sits on, and the page does not scroll
// sideways. It returns the problems found.
const accessibilityJS = `(() => {
  const problems = [];
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    if (!el.labels || el.labels.length === 0) problems.push('unlabelled control #' + el.id);
  }
  const rgb = s => { const m = s.match(/rgba?\(([^)]+)\)/); if (!m) return null; const p = m[1].split(',').map(Number); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const bg = el => { for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c && c.a > 0) return c; } return {r: 255, g: 255, b: 255, a: 1}; };
  for (const el of document.querySelectorAll('body *')) {
    const text = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim() !== '');
    const cs = getComputedStyle(el);
    if (!text || cs.display === 'none' || cs.visibility === 'hidden' || el.closest('.visually-hidden, .skip-link')) continue;
    const fg = rgb(cs.color), b = bg(el);
    const l1 = lum(fg), l2 = lum(b);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    if (ratio < 4.5) problems.push('contrast ' + ratio.toFixed(2) + ' for <' + el.tagName.toLowerCase() + '> "' + el.textContent.trim().slice(0, 30) + '"');
  }
  if (document.documentElement.scrollWidth > window.innerWidth + 1) problems.push('the page scrolls sideways: ' + document.documentElement.scrollWidth + ' > ' + window.innerWidth);
  return problems;
})()`

func checkAccessible(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	if problems := eval[[]string](t, ctx, accessibilityJS); len(problems) > 0 {
		t.Errorf("%s: %s", page, strings.Join(problems, "; "))
	}
}

// TestUIInBrowser drives the IG page in headless Chromium as a lead would:
// sign in with the keyboard, filter to the refused decisions, open one,
// export CSV; and checks what is on screen, on a laptop and on a tablet.
func TestUIInBrowser(t *testing.T) {
	ctx := browserContext(t)
	env := newAuditEnv(t)
	s := seed(t, env)

	// Sign in, reaching the token field by keyboard with a visible focus.
	must(t, ctx, "open the sign-in page", chromedp.Navigate(env.srv.URL+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")))
	checkAccessible(t, ctx, "sign-in page")
	reached := false
	for range 6 {
		must(t, ctx, "tab", chromedp.KeyEvent("\t"))
		if eval[string](t, ctx, `document.activeElement.id`) == "token" {
			reached = true
			break
		}
	}
	if !reached {
		t.Fatal("the token field cannot be reached with the Tab key")
	}
	if !eval[bool](t, ctx, `(() => { const s = getComputedStyle(document.activeElement); return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2; })()`) {
		t.Error("the focused field shows no visible focus outline")
	}
	must(t, ctx, "sign in", chromedp.KeyEvent(auditor), chromedp.KeyEvent("\r"))
	waitFor(t, ctx, "the decisions page", `document.getElementById('filter-heading') !== null`)

	rows := `Array.from(document.querySelectorAll('table.decisions tbody tr')).map(r => r.innerText.replace(/\s+/g, ' '))`
	all := eval[[]string](t, ctx, rows)
	if len(all) != 5 {
		t.Fatalf("the list shows %d records, want 5: %q", len(all), all)
	}
	if !strings.Contains(all[0], "Referral cancelled") || !strings.Contains(all[1], "Dry run") || !strings.Contains(all[3], "Override") {
		t.Errorf("the list, newest first: %q", all)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('tr.row-override').length`); n != 2 {
		t.Errorf("%d rows marked as overrides, want 2", n)
	}
	checkAccessible(t, ctx, "decision list")
	checkListScannable(t, ctx, "5 records")
	screenshot(t, ctx, "ui-decisions.png")

	// Filter to the refused decisions; the address holds no filter value.
	must(t, ctx, "filter to refused", chromedp.SetValue(chromedp.ID("outcome"), "deny"), chromedp.Click(chromedp.CSS(`button[name="apply"]`)))
	waitFor(t, ctx, "the filtered list", `location.search.startsWith('?q=') && document.readyState === 'complete'`)
	loc := eval[string](t, ctx, `location.href`)
	if strings.Contains(loc, "deny") || strings.Contains(loc, "outcome") {
		t.Errorf("the filter is in the address: %s", loc)
	}
	denied := eval[[]string](t, ctx, rows)
	if len(denied) != 2 {
		t.Fatalf("the refused: %q", denied)
	}
	for _, r := range denied {
		if !strings.Contains(r, "Refused") {
			t.Errorf("a row that is not refused: %q", r)
		}
	}
	if eval[string](t, ctx, `document.getElementById('outcome').value`) != "deny" {
		t.Error("the form does not show the filter in force")
	}

	// Open the newest refusal: the dry run of an override without an
	// approver.
	must(t, ctx, "open a decision", chromedp.Click(chromedp.CSS(`table.decisions tbody tr:first-child a.view`)))
	waitFor(t, ctx, "the decision page", `document.getElementById('rules-heading') !== null`)
	if !strings.Contains(eval[string](t, ctx, `location.pathname`), s.dry) {
		t.Errorf("opened %s, want the dry run %s", eval[string](t, ctx, `location.pathname`), s.dry)
	}
	text := eval[string](t, ctx, `document.querySelector('main').innerText`)
	for _, want := range []string{
		"Refused", "Sharing without consent: safeguarding", "The policies refused this override", "No approver recorded", "Sam Patel", "dry run",
		"O-01", "What the policy found:", "Principle:", "Source:", "Yes: the student was told",
		"Place in the audit trail",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the decision page does not show %q", want)
		}
	}
	if strings.Contains(text, "9990000042") || strings.Contains(text, "Riley") {
		t.Error("the decision page shows the student's identity")
	}
	checkAccessible(t, ctx, "decision page")
	screenshot(t, ctx, "ui-decision.png")

	// An allowed decision is short: its passed rules are folded away.
	must(t, ctx, "open an allowed decision", chromedp.Navigate(env.srv.URL+"/ui/decisions/"+s.allow), chromedp.WaitVisible(chromedp.ID("rules-heading")))
	height := eval[int](t, ctx, `document.documentElement.scrollHeight`)
	t.Logf("an allowed decision's page is %d px tall at 1280×900", height)
	if height > 2600 {
		t.Errorf("an allowed decision's page is %d px tall, want at most 2600 (passed rules folded away)", height)
	}
	if !eval[bool](t, ctx, `(() => { const d = document.getElementById('passed-rules'); return d !== null && !d.open && d.querySelectorAll('li.rule').length > 10; })()`) {
		t.Error("the passed rules are not folded away in a closed <details>")
	}
	screenshot(t, ctx, "ui-decision-allowed.png")
	must(t, ctx, "unfold the passed rules", chromedp.Click(chromedp.CSS(`#passed-rules summary`)))
	waitFor(t, ctx, "the passed rules", `document.getElementById('passed-rules').open`)
	checkAccessible(t, ctx, "allowed decision page, rules unfolded")

	// Every override in the period, with who approved it, from the list
	// alone: the review an IG lead does first.
	must(t, ctx, "filter to every override",
		chromedp.Navigate(env.srv.URL+"/ui/decisions"), chromedp.WaitVisible(chromedp.ID("route")),
		chromedp.SetValue(chromedp.ID("outcome"), ""), chromedp.SetValue(chromedp.ID("route"), "override"),
		chromedp.Click(chromedp.CSS(`button[name="apply"]`)))
	// The unfiltered page has a table too: wait for the filtered page (its
	// address carries the opaque ?q=) to have loaded, not for any table.
	waitFor(t, ctx, "the list of overrides", `location.search.startsWith('?q=') && document.readyState === 'complete' && document.querySelector('table.decisions') !== null`)
	overrides := eval[string](t, ctx, `document.querySelector('table.decisions').innerText`)
	for _, want := range []string{"Approved by", "Jo Whitfield (safeguarding lead)", "none recorded"} {
		if !strings.Contains(overrides, want) {
			t.Errorf("the list of overrides lacks %q:\n%s", want, overrides)
		}
	}
	if strings.Contains(overrides, "Consent") {
		t.Errorf("the override filter lists a consent-route record:\n%s", overrides)
	}

	// Export the refused decisions as CSV through the browser's download.
	must(t, ctx, "back to the list", chromedp.Navigate(loc), chromedp.WaitVisible(chromedp.ID("export-csv")))
	dir := t.TempDir()
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	must(t, ctx, "export CSV",
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: ptrTo(true),
			})
			return err
		}),
		chromedp.Click(chromedp.ID("export-csv")),
	)
	var file string
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("download: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			file = filepath.Join(dir, ev.GUID)
			break
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatal("the download was cancelled")
		}
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0][0] != "seq" || recs[1][10] != "deny" || recs[2][10] != "deny" || recs[1][3] != s.deny || recs[2][3] != s.dry {
		t.Fatalf("the CSV export: %q", recs)
	}

	// A tablet: the same pages, without sideways scrolling.
	must(t, ctx, "tablet", chromedp.EmulateViewport(768, 1024), chromedp.Navigate(env.srv.URL+"/ui/decisions"), chromedp.WaitVisible(chromedp.ID("filter-heading")))
	checkAccessible(t, ctx, "decision list on a tablet")
	must(t, ctx, "tablet detail", chromedp.Navigate(env.srv.URL+"/ui/decisions/"+s.override), chromedp.WaitVisible(chromedp.ID("rules-heading")))
	checkAccessible(t, ctx, "decision page on a tablet")

	// Sign out: the list is gone.
	must(t, ctx, "sign out", chromedp.Click(chromedp.CSS(`.account button`)))
	waitFor(t, ctx, "the sign-in page", `document.getElementById('token') !== null`)
	must(t, ctx, "list after sign-out", chromedp.Navigate(env.srv.URL+"/ui/decisions"))
	if eval[string](t, ctx, `location.pathname`) != "/ui/" {
		t.Error("the list is still reachable after signing out")
	}
}

func ptrTo[T any](v T) *T { return &v }

// checkListScannable checks the decision list against issue #16 at the
// window's size: a record row is on the first screen, the count of matching
// records shows, every date keeps to one line, and a refusing rule is named
// with its title, and no column is off the screen.
func checkListScannable(t *testing.T, ctx context.Context, count string) {
	t.Helper()
	top := eval[int](t, ctx, `Math.round(document.querySelector('table.decisions tbody tr').getBoundingClientRect().bottom)`)
	t.Logf("the first record row ends %d px down a %d px window", top, eval[int](t, ctx, `window.innerHeight`))
	if top > eval[int](t, ctx, `window.innerHeight`) {
		t.Errorf("no record row on the first screen: the first ends at %d px", top)
	}
	if got := eval[string](t, ctx, `document.getElementById('result-count').innerText`); got != count {
		t.Errorf("the count says %q, want %q", got, count)
	}
	if !eval[bool](t, ctx, `(() => { const w = document.querySelector('.table-wrap'); return w.scrollWidth <= w.clientWidth; })()`) {
		t.Error("the list scrolls sideways: a column is off the screen")
	}
	if wrapped := eval[int](t, ctx, `Array.from(document.querySelectorAll('td.recorded a')).filter(a => a.getClientRects().length > 1).length`); wrapped > 0 {
		t.Errorf("%d dates wrap onto more than one line", wrapped)
	}
	if !eval[bool](t, ctx, `Array.from(document.querySelectorAll('table.decisions tbody tr')).some(r => r.innerText.includes('E-01 Not an emergency channel'))`) {
		t.Error("the Refused by column does not name the rule's title")
	}
}
