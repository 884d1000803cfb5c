package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/student-mh-referrals/gateway/conformance"
	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/config"
)

// `gateway demo seed` fills an empty demo store with a year of invented
// referrals from the two demo universities, so that the evaluation page has
// something worth looking at: every case goes through the real intake (the
// policies decide, the mapping builds the message, the gate validates it),
// with the clock set to when it happened. Then the seed plays the receiving
// services: it delivers each message and accepts, rejects or leaves it
// unanswered, plays each accepted case's journey (booked, sometimes missed
// and rebooked, seen, discharged; a few redirected), and the universities
// cancel a few. It runs only on a demo
// configuration, and only on a store that holds no university's decision.

// demoRef is the time the example case records were written for (the
// evaluate goldens' --at): the seed shifts every date in a record by the
// distance from it to the case's own time, so that consents stay in date.
var demoRef = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// demoInstitutions are the demo clients' universities.
var demoInstitutions = []struct{ ukprn, name, client string }{
	{"10007164", "University of the West of England", "uwe-cms"},
	{"10006842", "University of Liverpool", "liverpool-cms"},
}

// demoMix is, per demo institution, which example case records its
// referrals are made from and how often. Records of other universities are
// rewritten to the demo one: where the service does not take that
// university's students, the policies refuse it, as they would.
var demoMix = map[string][]struct {
	file   string
	weight int
}{
	"10007164": {
		{"allow-uwe-bristol-awp-trusted-contact", 46}, {"allow-uwe-safeguarding-override", 10},
		{"allow-icope-camden", 12}, {"allow-gm-limited-categories", 3}, {"allow-sheffield-no-nhs-number", 3},
		{"deny-consent-refused", 2}, {"deny-consent-expired", 2},
	},
	"10006842": {
		{"allow-liverpool-u-cope", 30}, {"allow-liverpool-liaison-update", 18}, {"allow-icope-camden", 8},
		{"deny-consent-expired", 3}, {"deny-consent-refused", 3}, {"deny-emergency", 2},
		{"deny-recipient-not-consented", 2}, {"deny-u-cope-psychosis", 3},
		{"allow-gm-limited-categories", 2}, {"allow-sheffield-no-nhs-number", 2},
	},
}

// cmdDemo is `gateway demo seed`.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const use = "usage: gateway demo seed [--config FILE] [--referrals N] [--end DATE] [--seed N]"
	if len(args) == 0 || args[0] != "seed" {
		fmt.Fprintln(stderr, use)
		return &exitStatus{code: exitFailure}
	}
	fs := newFlags("demo seed", stderr)
	cfgPath := fs.String("config", "", "configuration `file` (demo: true)")
	n := fs.Int("referrals", 480, "how many cases to refer")
	end := fs.String("end", "", "the history ends at this `date` (default now)")
	seed := fs.Uint64("seed", 16, "random seed: the same seed and end give the same history")
	if err := parseNoArgs(fs, args[1:], use+"\n", stderr); err != nil {
		return err
	}
	endAt := time.Now().UTC()
	if *end != "" {
		t, err := time.Parse(time.DateOnly, *end)
		if err != nil {
			return &exitStatus{code: exitFailure, err: fmt.Errorf("demo seed --end %q: a date such as 2026-12-01", *end)}
		}
		endAt = t
	}
	if *n < 1 || *n > 100000 {
		return &exitStatus{code: exitFailure, err: fmt.Errorf("demo seed --referrals %d: between 1 and 100000", *n)}
	}
	if demo, err := config.DemoMode(*cfgPath); err != nil || !demo {
		return &exitStatus{code: exitFailure, err: cmp.Or(err, fmt.Errorf("demo seed writes invented referrals: it runs only on a demo configuration (demo: true)"))}
	}
	a, err := newApp(ctx, *cfgPath, io.Discard, "error")
	if err != nil {
		return err
	}
	key, store, err := a.openKeyed(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	heads, err := store.Chains(ctx)
	if err != nil {
		return err
	}
	for _, h := range heads {
		// The gateway's own chain (policy reloads, retention runs) may
		// have records from an earlier `make run`; a university's may not.
		if h.Institution != gateway.GatewayChain && h.Seq > 0 {
			return &exitStatus{code: exitFailure, err: fmt.Errorf("demo seed: the store already holds decisions; seed an empty demo store (remove %s first)", a.cfg.Store.Path)}
		}
	}
	s := &demoSeeder{rng: rand.New(rand.NewPCG(*seed, 2026)), store: store, steps: map[gateway.Step]int{}}
	s.intake = &gateway.Intake{Evaluator: a.evaluator, Store: store, PseudonymKey: key, Now: func() time.Time { return s.now }}
	if err := s.run(ctx, *n, endAt); err != nil {
		return err
	}
	st := s.steps
	fmt.Fprintf(stdout, "seeded %d cases from %s to %s: %d allowed, %d refused, %d dry runs; %d accepted, %d rejected, %d cancelled; "+
		"journeys: %d booked, %d did not attend, %d rebooked, %d seen, %d discharged, %d redirected\n",
		*n, endAt.AddDate(-1, 0, 0).Format(time.DateOnly), endAt.Format(time.DateOnly), s.allowed, s.refused, s.dryRuns,
		st[gateway.StepAccepted], st[gateway.StepRejected], s.cancelled,
		st[gateway.StepBooked], st[gateway.StepDidNotAttend], st[gateway.StepRebooked], st[gateway.StepSeen], st[gateway.StepDischarged], st[gateway.StepRedirected])
	return nil
}

// demoSeeder plays universities and services on a simulated clock.
type demoSeeder struct {
	rng    *rand.Rand
	store  gateway.Store
	intake *gateway.Intake
	now    time.Time
	// Counts for the summary line: cases, and the steps recorded (a step
	// for a case withdrawn or superseded meanwhile is not).
	allowed, refused, dryRuns, cancelled int
	steps                                map[gateway.Step]int
}

// demoEvent is something that happens to a case at a time.
type demoEvent struct {
	at   time.Time
	run  func(ctx context.Context) error
	kind string
}

// demoStudent is an invented student whom later cases may refer again.
type demoStudent struct {
	nhs, studentID string
	last           time.Time
}

func (s *demoSeeder) run(ctx context.Context, n int, end time.Time) error {
	templates, err := demoTemplates()
	if err != nil {
		return err
	}
	start := end.AddDate(-1, 0, 0)
	var events []demoEvent
	students := map[string][]*demoStudent{}
	for i := range n {
		inst := demoInstitutions[s.rng.IntN(len(demoInstitutions))]
		at := s.caseTime(start, end)
		file := s.pick(demoMix[inst.ukprn])
		// One referral in eight is a student referred again within weeks.
		var st *demoStudent
		if prev := students[inst.ukprn]; len(prev) > 0 && s.rng.IntN(8) == 0 {
			st = prev[s.rng.IntN(len(prev))]
		} else {
			st = &demoStudent{nhs: s.nhsNumber(), studentID: fmt.Sprintf("%08d", s.rng.IntN(1e8))}
			students[inst.ukprn] = append(students[inst.ukprn], st)
		}
		rec := demoRecord(templates[file], inst.ukprn, inst.name, fmt.Sprintf("DEMO-%s-%05d", inst.ukprn, i), st, at)
		client := &gateway.Client{ID: inst.client, Institution: inst.ukprn, Roles: []string{gateway.RoleSubmitter}}
		events = append(events, demoEvent{at: at, kind: "submit", run: func(ctx context.Context) error {
			return s.submit(ctx, client, rec, end, &events)
		}})
		if s.rng.IntN(10) == 0 { // an adviser tries the record first
			events = append(events, demoEvent{at: at.Add(-20 * time.Minute), kind: "dry-run", run: func(ctx context.Context) error {
				s.dryRuns++
				_, err := s.intake.DryRun(ctx, client, rec, s.now)
				return err
			}})
		}
	}
	// Play the events in time order; submitting schedules the responses.
	for len(events) > 0 {
		slices.SortStableFunc(events, func(a, b demoEvent) int { return a.at.Compare(b.at) })
		ev := events[0]
		events = events[1:]
		if !ev.at.Before(end) {
			continue
		}
		s.now = ev.at
		if err := ev.run(ctx); err != nil {
			return fmt.Errorf("demo seed: %s at %s: %w", ev.kind, ev.at.Format(time.RFC3339), err)
		}
	}
	return nil
}

// submit refers a case; when allowed, the service receives it a minute
// later and answers in the days after, and the university may withdraw it.
func (s *demoSeeder) submit(ctx context.Context, c *gateway.Client, rec []byte, end time.Time, events *[]demoEvent) error {
	sub, err := s.intake.Submit(ctx, c, rec)
	if err != nil {
		return err
	}
	if sub.Evaluation != nil && sub.Evaluation.Outcome == gateway.OutcomeDeny {
		s.refused++
		return nil
	}
	s.allowed++
	if err := s.deliver(ctx, s.now.Add(time.Minute)); err != nil {
		return err
	}
	ref := sub.Referral
	// Hours to days for a response, longer for some services; the most
	// recent referrals may not have one yet.
	wait := time.Duration(4+s.rng.ExpFloat64()*40) * time.Hour
	if ref.ServiceID == "icope-camden" || ref.ServiceID == "liverpool-liaison" {
		wait *= 2
	}
	at := s.now.Add(time.Minute + wait)
	switch r := s.rng.IntN(100); {
	case r < 4: // withdrawn before an answer
		*events = append(*events, demoEvent{at: s.now.Add(wait / 2), kind: "cancel", run: func(ctx context.Context) error {
			s.cancelled++
			_, err := s.intake.Cancel(ctx, c, ref.ID)
			if err == nil {
				err = s.deliver(ctx, s.now.Add(time.Minute))
			}
			return err
		}})
	case r < 14:
		*events = append(*events, demoEvent{at: at, kind: "reject", run: func(ctx context.Context) error {
			return s.respond(ctx, ref, gateway.StepRejected, time.Time{})
		}})
	default:
		*events = append(*events, demoEvent{at: at, kind: "accept", run: func(ctx context.Context) error {
			if err := s.respond(ctx, ref, gateway.StepAccepted, time.Time{}); err != nil {
				return err
			}
			s.journey(ref, events)
			return nil
		}})
	}
	return nil
}

// journey schedules what happens after the service accepts: mostly a
// booking a week or two later and an appointment days after it, sometimes
// missed and rebooked, then seen and, weeks later, discharged; a few are
// redirected to another service instead.
func (s *demoSeeder) journey(ref gateway.StoredReferral, events *[]demoEvent) {
	step := func(at time.Time, st gateway.Step, appt time.Time, next func(time.Time)) {
		*events = append(*events, demoEvent{at: at, kind: string(st), run: func(ctx context.Context) error {
			if err := s.respond(ctx, ref, st, appt); err != nil {
				return err
			}
			if next != nil {
				next(at)
			}
			return nil
		}})
	}
	days := func(lo, spread int) time.Duration {
		return time.Duration(lo*24+s.rng.IntN(spread*24+1)) * time.Hour
	}
	if s.rng.IntN(100) < 6 {
		step(s.now.Add(days(2, 10)), gateway.StepRedirected, time.Time{}, nil)
		return
	}
	var seen func(time.Time)
	seen = func(at time.Time) {
		step(at.Add(days(1, 0)), gateway.StepSeen, time.Time{}, func(at time.Time) {
			step(at.Add(days(21, 60)), gateway.StepDischarged, time.Time{}, nil)
		})
	}
	booked := s.now.Add(days(3, 14))
	appt := booked.Add(days(3, 10))
	step(booked, gateway.StepBooked, appt, func(time.Time) {
		if s.rng.IntN(100) < 15 {
			step(appt, gateway.StepDidNotAttend, time.Time{}, func(at time.Time) {
				again := at.Add(days(2, 5))
				step(again, gateway.StepRebooked, again.Add(days(3, 7)), func(at time.Time) { seen(at.Add(days(3, 7))) })
			})
			return
		}
		seen(appt.Add(-24 * time.Hour))
	})
}

// respond records a step the service reports about the message delivered
// for ref (its appointment's start with a booking), as the inbound
// $process-message does after checking it; a case withdrawn or superseded
// meanwhile keeps its status.
func (s *demoSeeder) respond(ctx context.Context, ref gateway.StoredReferral, step gateway.Step, appt time.Time) error {
	latest, err := s.store.LatestReferral(ctx, ref.Institution, ref.CaseID)
	if err != nil || latest.Status == gateway.StatusCancelled || latest.ID != ref.ID {
		return err
	}
	var bundle struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(latest.Bundle, &bundle); err != nil {
		return err
	}
	m, err := s.store.SentMessage(ctx, bundle.ID)
	if err != nil {
		return err
	}
	e := gateway.TimelineEntry{Step: step, At: s.now, ResponseID: gateway.DeriveID("demo-response", ref.ID, string(step), s.now.String()), RequestBundleID: bundle.ID}
	if !appt.IsZero() {
		e.AppointmentID, e.AppointmentStart = "demo-"+e.ResponseID, appt
	}
	if _, _, err = s.store.RecordStep(ctx, gateway.StepRequest{Message: m, Entry: e, At: s.now}); err != nil {
		return err
	}
	s.steps[step]++
	return nil
}

// deliver plays the delivery worker: every due message is posted and the
// service answers 200.
func (s *demoSeeder) deliver(ctx context.Context, at time.Time) error {
	for {
		msgs, err := s.store.Claim(ctx, "demo-seed", 50, at, time.Minute)
		if err != nil || len(msgs) == 0 {
			return err
		}
		for _, m := range msgs {
			if err := s.store.RecordAttempt(ctx, m.ID, m.LeaseID, gateway.Attempt{Result: gateway.AttemptDelivered, At: at}); err != nil {
				return err
			}
		}
	}
}

// caseTime draws when a case is referred: more in the autumn and spring
// terms, fewer in the summer, on weekdays in working hours.
func (s *demoSeeder) caseTime(start, end time.Time) time.Time {
	termWeight := map[time.Month]int{
		time.January: 8, time.February: 10, time.March: 10, time.April: 6, time.May: 8, time.June: 4,
		time.July: 2, time.August: 2, time.September: 6, time.October: 12, time.November: 12, time.December: 7,
	}
	for {
		t := start.Add(time.Duration(s.rng.Int64N(int64(end.Sub(start)))))
		if s.rng.IntN(12) >= termWeight[t.Month()] || t.Weekday() == time.Saturday || t.Weekday() == time.Sunday {
			continue
		}
		day := time.Date(t.Year(), t.Month(), t.Day(), 8, 0, 0, 0, time.UTC)
		return day.Add(time.Duration(s.rng.IntN(9*60)) * time.Minute)
	}
}

func (s *demoSeeder) pick(mix []struct {
	file   string
	weight int
}) string {
	total := 0
	for _, m := range mix {
		total += m.weight
	}
	r := s.rng.IntN(total)
	for _, m := range mix {
		if r -= m.weight; r < 0 {
			return m.file
		}
	}
	return mix[0].file
}

// nhsNumber is an invented NHS number with a valid check digit, in the 999
// range that is never issued to a patient.
func (s *demoSeeder) nhsNumber() string {
	for {
		n := fmt.Sprintf("999%07d", s.rng.IntN(1e7))[:9]
		sum := 0
		for i := range 9 {
			sum += int(n[i]-'0') * (10 - i)
		}
		if check := (11 - sum%11) % 11; check < 10 {
			return n + fmt.Sprint(check)
		}
	}
}

// demoTemplates reads the example case records built into the binary.
func demoTemplates() (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	err := fs.WalkDir(conformance.Scenarios, "testdata/cases", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(conformance.Scenarios, p)
		if err != nil {
			return err
		}
		var rec map[string]any
		if err := json.Unmarshal(b, &rec); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		out[strings.TrimSuffix(d.Name(), ".json")] = rec
		return nil
	})
	return out, err
}

var (
	dateOnly = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	dateTime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T`)
)

// demoRecord is a copy of template as a case of institution made at at: a
// new case id, the student's identifiers, and every date but the date of
// birth moved by the distance from demoRef to at.
func demoRecord(template map[string]any, ukprn, name, caseID string, st *demoStudent, at time.Time) []byte {
	days := int(at.Sub(demoRef).Hours() / 24)
	var shift func(key string, v any) any
	shift = func(key string, v any) any {
		switch v := v.(type) {
		case map[string]any:
			out := make(map[string]any, len(v))
			for k, x := range v {
				out[k] = shift(k, x)
			}
			return out
		case []any:
			out := make([]any, len(v))
			for i, x := range v {
				out[i] = shift(key, x)
			}
			return out
		case string:
			if key == "dateOfBirth" {
				return v
			}
			if dateOnly.MatchString(v) {
				if t, err := time.Parse(time.DateOnly, v); err == nil {
					return t.AddDate(0, 0, days).Format(time.DateOnly)
				}
			}
			if dateTime.MatchString(v) {
				if t, err := time.Parse(time.RFC3339, v); err == nil {
					return t.Add(at.Sub(demoRef)).UTC().Format(time.RFC3339)
				}
			}
		}
		return v
	}
	rec := shift("", template).(map[string]any)
	rec["caseId"] = caseID
	rec["institution"] = map[string]any{"ukprn": ukprn, "name": name}
	if student, ok := rec["student"].(map[string]any); ok {
		if _, has := student["nhsNumber"]; has {
			student["nhsNumber"] = st.nhs
		}
		student["studentId"] = st.studentID
	}
	b, _ := json.Marshal(rec) // a decoded JSON document encodes
	return b
}
