package gateway

import (
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // periods are UK months and years wherever the gateway runs
)

// The evaluation figures (issue #16): how referrals fare, by institution,
// pathway (service) and period, for the IG lead of an institution and for
// a partnership's evaluator. They are computed from the decision records and
// the referrals' statuses, which outlive the retention of clinical content,
// and never from clinical content. Only aggregates leave: every count goes
// through Suppress. docs/evaluation.md defines each figure.

// Period groupings of the figures.
const (
	GroupMonth        = "month"
	GroupQuarter      = "quarter"
	GroupAcademicYear = "academic-year" // 1 August to 31 July
	GroupYear         = "year"
)

// PeriodGroupings lists the groupings, for validation and documentation.
var PeriodGroupings = []string{GroupMonth, GroupQuarter, GroupAcademicYear, GroupYear}

// TotalPeriod labels the figures over the whole of from–to.
const TotalPeriod = "total"

// ReReferralWindow is how soon after an earlier referral of the same
// student a referral counts as the student being referred again.
const ReReferralWindow = 90 * 24 * time.Hour

// maxEvaluationSpan bounds from–to, so that a report stays a report.
const maxEvaluationSpan = 10 * 366 * 24 * time.Hour

// ukTime is the zone periods are cut in: a referral at 00:30 on 1 August
// British Summer Time belongs to the new academic year.
var ukTime = func() *time.Location {
	l, err := time.LoadLocation("Europe/London")
	if err != nil {
		panic(err) // time/tzdata is embedded
	}
	return l
}()

// Outcomes of a case: the furthest it has gone, as its referral's status
// today leaves it (the service's steps come back on the return path).
const (
	OutcomeRefused          = "refused"           // the latest decision refused the share
	OutcomeCancelled        = "cancelled"         // the university withdrew it
	OutcomeUndelivered      = "undelivered"       // the receiver refused the message, or delivery gave up
	OutcomeAwaitingDelivery = "awaiting-delivery" // queued or being delivered
	OutcomeAwaitingResponse = "awaiting-response" // delivered, no answer from the service yet
	OutcomeRejected         = "rejected"          // the service turned it down
	OutcomeRedirected       = "redirected"        // the service sent the student elsewhere
	OutcomeAccepted         = "accepted"          // the service took it on; nothing booked yet
	OutcomeBooked           = "booked"            // a first appointment (or a new one) is booked
	OutcomeDidNotAttend     = "did-not-attend"    // the student missed the appointment, not yet rebooked
	OutcomeSeen             = "seen"              // the student was seen
	OutcomeDischarged       = "discharged"        // care ended
)

// CaseOutcomes are the outcomes in the order of a journey, so that a
// stacked chart and its table read from "went nowhere" to "discharged".
var CaseOutcomes = []string{
	OutcomeRefused, OutcomeCancelled, OutcomeUndelivered, OutcomeAwaitingDelivery, OutcomeAwaitingResponse,
	OutcomeRejected, OutcomeRedirected, OutcomeAccepted, OutcomeBooked, OutcomeDidNotAttend, OutcomeSeen, OutcomeDischarged,
}

// Figures that need the timeline of the service's steps (when each was
// reported); a report over a source without it names them in Unavailable.
const (
	FigureAcceptanceRate         = "acceptanceRate"
	FigureTimeToFirstAppointment = "timeToFirstAppointment"
	FigureDidNotAttendRate       = "didNotAttendRate"
)

// CaseFacts is what the figures know of one case: its latest decision (not
// a dry run) and what became of its referral. It holds no clinical content
// and no direct identifier; Student is the keyed pseudonym, used only to
// count students referred again, and never published.
type CaseFacts struct {
	Institution string
	Service     string
	Student     string
	// ReferredAt is when the case was first allowed to go (its first
	// version accepted), or, for a case never allowed, its first decision.
	ReferredAt time.Time
	Allowed    bool
	// Route is "consent" or the override ground of the latest decision.
	Route      string
	RefusedBy  []string // rule ids, on a refusal
	Categories []string // data categories sent, on an allow
	// The steps after delivery; zero when the case has not reached them.
	AcknowledgedAt, AcceptedAt, RejectedAt, FirstAppointmentAt time.Time
	DNA                                                        bool
	// Outcome is the furthest the case has gone (one of CaseOutcomes).
	Outcome string
}

// EvaluationFacts is what a store gives the figures.
type EvaluationFacts struct {
	Cases []CaseFacts
	// ReturnPath says the source has the timeline of the service's steps
	// (acceptance, appointments, attendance), as the SQL store always
	// does; any other source without it has those figures reported
	// unavailable rather than 0.
	ReturnPath bool
}

// EvaluationSource is a store that can give the facts of the cases of some
// institutions referred in [from, to).
type EvaluationSource interface {
	EvaluationFacts(ctx context.Context, institutions []string, from, to time.Time) (EvaluationFacts, error)
}

// Partnership is a set of institutions and services that evaluate a
// pathway together; its evaluator sees its figures and never a record.
type Partnership struct {
	ID           string
	Name         string
	Institutions []string // UKPRNs
	Services     []string // service ids
}

// EvaluationScope is whose figures a report holds.
type EvaluationScope struct {
	Partnership  string   `json:"partnership,omitempty"`
	Name         string   `json:"name,omitempty"`
	Institutions []string `json:"institutions"`
	Services     []string `json:"services"`
}

// EvaluationQuery is what a report covers: cases referred in [From, To),
// grouped by period, optionally of one service.
type EvaluationQuery struct {
	From, To time.Time
	GroupBy  string
	Service  string
}

// ParseEvaluationQuery reads the parameters of GET /v1/evaluation and of
// `gateway evaluation report`. from and to are dates (UK midnight) or RFC
// 3339 times, to exclusive; by default the twelve months to the end of the
// current one, grouped by month.
func ParseEvaluationQuery(from, to, groupBy, service string, now time.Time) (EvaluationQuery, error) {
	var issues []Issue
	parse := func(field, v string, def time.Time) time.Time {
		if v == "" {
			return def
		}
		if t, err := time.ParseInLocation(time.DateOnly, v, ukTime); err == nil {
			return t
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			issues = append(issues, searchIssue(field, field+" must be a date (2006-01-02) or an RFC 3339 time"))
		}
		return t
	}
	n := now.In(ukTime)
	end := time.Date(n.Year(), n.Month()+1, 1, 0, 0, 0, 0, ukTime)
	q := EvaluationQuery{
		To:      parse("to", to, end),
		GroupBy: cmp.Or(groupBy, GroupMonth),
		Service: service,
	}
	q.From = parse("from", from, q.To.In(ukTime).AddDate(-1, 0, 0))
	if !slices.Contains(PeriodGroupings, q.GroupBy) {
		issues = append(issues, searchIssue("groupBy", "groupBy must be one of "+strings.Join(PeriodGroupings, ", ")))
	}
	switch {
	case len(issues) > 0:
	case !q.From.Before(q.To):
		issues = append(issues, searchIssue("to", "to must be after from"))
	case q.To.Sub(q.From) > maxEvaluationSpan:
		issues = append(issues, searchIssue("from", "from–to spans at most ten years"))
	}
	if len(service) > 200 {
		issues = append(issues, searchIssue("service", "service is too long"))
	}
	if len(issues) > 0 {
		return q, &Error{Code: EINVALID, Message: "bad evaluation query", Issues: issues}
	}
	return q, nil
}

// Evaluations produces the figures for the clients entitled to them.
type Evaluations struct {
	Source       EvaluationSource
	Partnerships []Partnership
	// Services are the registry's service ids: an IG auditor's scope.
	Services []string
}

// Scope is whose figures c may see: an IG auditor's own institution over
// every service, or a partnership evaluator's partnership.
func (e *Evaluations) Scope(c *Client) (EvaluationScope, error) {
	switch {
	case c.Has(RolePartnershipEvaluator) && c.Partnership != "":
		for _, p := range e.Partnerships {
			if p.ID == c.Partnership {
				return EvaluationScope{Partnership: p.ID, Name: p.Name, Institutions: p.Institutions, Services: p.Services}, nil
			}
		}
	case c.Has(RoleAuditor) && c.Institution != "":
		return EvaluationScope{Institutions: []string{c.Institution}, Services: e.Services}, nil
	}
	return EvaluationScope{}, &Error{Code: EFORBIDDEN, Message: "forbidden", Issues: []Issue{{
		Severity: "error", Type: "forbidden", Message: "the evaluation figures are open to IG auditors of an institution and to partnership evaluators",
	}}}
}

// Report computes the figures of q for client c.
func (e *Evaluations) Report(ctx context.Context, c *Client, q EvaluationQuery) (*EvaluationReport, error) {
	if e == nil || e.Source == nil {
		return nil, Errorf(EUNAVAILABLE, "the evaluation figures are not available: no store is configured")
	}
	scope, err := e.Scope(c)
	if err != nil {
		return nil, err
	}
	if q.Service != "" && !slices.Contains(scope.Services, q.Service) {
		return nil, badSearch("service", "service is not one of the services these figures cover: "+strings.Join(scope.Services, ", "))
	}
	facts, err := e.Source.EvaluationFacts(ctx, scope.Institutions, q.From.Add(-ReReferralWindow), q.To)
	if err != nil {
		return nil, err
	}
	return BuildReport(facts, scope, q), nil
}

// EvaluationReport is the published figures: aggregates only, every count
// suppressed and rounded.
type EvaluationReport struct {
	Scope EvaluationScope `json:"scope"`
	// From and To bound the referral time, To exclusive.
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	GroupBy string    `json:"groupBy"`
	Periods []string  `json:"periods"`
	// Unavailable names the figures the store has no data for.
	Unavailable []string `json:"unavailable,omitempty"`
	// Groups are, for each period and then the total: all of the scope,
	// each institution (when there are several) and each service (when
	// there are several).
	Groups []FigureGroup `json:"groups"`
}

// FigureGroup is the figures of one period over all of the scope, one
// institution or one service.
type FigureGroup struct {
	Period      string  `json:"period"`
	Institution string  `json:"institution,omitempty"`
	Service     string  `json:"service,omitempty"`
	Figures     Figures `json:"figures"`
}

// Named is a cell of a breakdown.
type Named struct {
	Name string `json:"name"`
	Cell
}

// Figures are the published figures of a group; docs/evaluation.md defines
// each.
type Figures struct {
	Referrals              Cell    `json:"referrals"`
	Allowed                Cell    `json:"allowed"`
	Refused                Cell    `json:"refused"`
	RefusalsByRule         []Named `json:"refusalsByRule"`
	Routes                 []Named `json:"routes"`
	DataCategories         []Named `json:"dataCategories"`
	AcknowledgementRate    Rate    `json:"acknowledgementRate"`
	AcceptanceRate         Rate    `json:"acceptanceRate"`
	RejectionRate          Rate    `json:"rejectionRate"`
	TimeToAcknowledgement  Wait    `json:"timeToAcknowledgement"`
	TimeToFirstAppointment Wait    `json:"timeToFirstAppointment"`
	DidNotAttendRate       Rate    `json:"didNotAttendRate"`
	Outcomes               []Named `json:"outcomes"`
	// ReferredAgain counts the students with a referral in the group made
	// within 90 days of an earlier one; ReferredAgainServices breaks them
	// down by how many services those referrals went to ("1", "2", "3+").
	ReferredAgain         Cell    `json:"referredAgain"`
	ReferredAgainServices []Named `json:"referredAgainServices"`
}

// RouteUnstated is the route of a decision that names none.
const RouteUnstated = "unstated"

// ReferredAgainBuckets are the breakdown of ReferredAgain.
var ReferredAgainBuckets = []string{"1", "2", "3+"}

// reReferral is, for one case, whether it came within the window of an
// earlier case of its student, and how many services the student's cases
// in the window (this one included) went to.
type reReferral struct {
	again    bool
	services int
}

// reReferrals computes reReferral for each case of cases whose index is in
// inScope, from those cases only, the look-back included.
func reReferrals(cases []CaseFacts, inScope []int) []reReferral {
	out := make([]reReferral, len(cases))
	byStudent := map[string][]int{}
	for _, i := range inScope {
		if st := cases[i].Student; st != "" {
			byStudent[st] = append(byStudent[st], i)
		}
	}
	for _, idx := range byStudent {
		slices.SortFunc(idx, func(a, b int) int { return cases[a].ReferredAt.Compare(cases[b].ReferredAt) })
		for k, i := range idx {
			var services []string
			for j := k - 1; j >= 0 && cases[i].ReferredAt.Sub(cases[idx[j]].ReferredAt) <= ReReferralWindow; j-- {
				if services == nil {
					services = []string{cases[i].Service}
				}
				if !slices.Contains(services, cases[idx[j]].Service) {
					services = append(services, cases[idx[j]].Service)
				}
			}
			out[i] = reReferral{again: services != nil, services: len(services)}
		}
	}
	return out
}

// periodOf labels t's period.
func periodOf(groupBy string, t time.Time) string {
	t = t.In(ukTime)
	switch groupBy {
	case GroupQuarter:
		return fmt.Sprintf("%d-Q%d", t.Year(), (int(t.Month())+2)/3)
	case GroupAcademicYear:
		y := t.Year()
		if t.Month() < time.August {
			y--
		}
		return fmt.Sprintf("%d/%02d", y, (y+1)%100)
	case GroupYear:
		return fmt.Sprintf("%d", t.Year())
	}
	return t.Format("2006-01")
}

// periodsOf lists the periods [from, to) touches, in order.
func periodsOf(groupBy string, from, to time.Time) []string {
	var out []string
	for t := from.In(ukTime); t.Before(to); t = t.AddDate(0, 1, 0) {
		if p := periodOf(groupBy, t); len(out) == 0 || out[len(out)-1] != p {
			out = append(out, p)
		}
		t = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, ukTime)
	}
	return out
}

// rawGroup is a group's raw figures before publication: never exported.
type rawGroup struct {
	period, institution, service string
	counts                       map[string]int
	ackDays, apptDays            []float64
	allowed, ack, acc, rej       int
	booked, dna                  int
	students                     map[string]int // pseudonym → most services; never published
}

// Keys of the counts in a rawGroup's ledger.
const (
	kReferrals = "referrals"
	kAllowed   = "allowed"
	kRefused   = "refused"
	kRule      = "rule:"
	kRoute     = "route:"
	kCategory  = "category:"
	kOutcome   = "outcome:"
	kAgain     = "again"
	kAgainBy   = "again:"
)

// BuildReport computes the published figures of the cases in scope (of
// q.Service, when set) referred in [q.From, q.To). The other cases in scope,
// earlier ones and those of other services, serve only to find the students
// referred again.
func BuildReport(facts EvaluationFacts, scope EvaluationScope, q EvaluationQuery) *EvaluationReport {
	cases := facts.Cases
	var inScope []int
	for i := range cases {
		if slices.Contains(scope.Institutions, cases[i].Institution) && slices.Contains(scope.Services, cases[i].Service) {
			inScope = append(inScope, i)
		}
	}
	again := reReferrals(cases, inScope)
	if q.Service != "" {
		scope.Services = []string{q.Service}
	}
	r := &EvaluationReport{Scope: scope, From: q.From, To: q.To, GroupBy: q.GroupBy, Periods: periodsOf(q.GroupBy, q.From, q.To)}
	if !facts.ReturnPath {
		r.Unavailable = []string{FigureAcceptanceRate, FigureTimeToFirstAppointment, FigureDidNotAttendRate}
	}
	// The rows of each period: all of the scope, then each institution
	// and each service when there are several.
	rows := []rawGroup{{}}
	if len(scope.Institutions) > 1 {
		for _, inst := range scope.Institutions {
			rows = append(rows, rawGroup{institution: inst})
		}
	}
	if len(scope.Services) > 1 {
		for _, svc := range scope.Services {
			rows = append(rows, rawGroup{service: svc})
		}
	}
	periods := append(slices.Clone(r.Periods), TotalPeriod)
	groups := make([]rawGroup, 0, len(periods)*len(rows))
	for _, p := range periods {
		for _, row := range rows {
			row.period, row.counts, row.students = p, map[string]int{}, map[string]int{}
			groups = append(groups, row)
		}
	}
	// Each case counts in six groups: its period's and the total's, each
	// over the whole scope, its institution and its service.
	periodAt, instRow, svcRow := map[string]int{}, map[string]int{}, map[string]int{}
	for i, p := range periods {
		periodAt[p] = i * len(rows)
	}
	for r, row := range rows {
		switch {
		case row.institution != "":
			instRow[row.institution] = r
		case row.service != "":
			svcRow[row.service] = r
		}
	}
	total := periodAt[TotalPeriod]
	rules, outcomes := map[string]bool{}, map[string]bool{}
	for _, i := range inScope {
		c := &cases[i]
		if c.ReferredAt.Before(q.From) || !c.ReferredAt.Before(q.To) || !slices.Contains(scope.Services, c.Service) {
			continue
		}
		keys := caseKeys(*c)
		for _, base := range []int{periodAt[periodOf(q.GroupBy, c.ReferredAt)], total} {
			groups[base].add(c, keys, again[i])
			if r, ok := instRow[c.Institution]; ok {
				groups[base+r].add(c, keys, again[i])
			}
			if r, ok := svcRow[c.Service]; ok {
				groups[base+r].add(c, keys, again[i])
			}
		}
		for _, id := range c.RefusedBy {
			rules[id] = true
		}
		outcomes[c.Outcome] = true
	}
	keys := ledgerKeys(rules, outcomes)
	cells := publish(groups, keys, len(rows), len(periods))
	for g, grp := range groups {
		r.Groups = append(r.Groups, FigureGroup{Period: grp.period, Institution: grp.institution, Service: grp.service, Figures: grp.figures(cells[g], keys, facts.ReturnPath)})
	}
	return r
}

// caseKeys are the counts case c adds to, in every group it is in.
func caseKeys(c CaseFacts) []string {
	keys := []string{kReferrals, kRoute + cmp.Or(c.Route, RouteUnstated), kOutcome + c.Outcome}
	if !c.Allowed {
		keys = append(keys, kRefused)
		for _, id := range c.RefusedBy {
			keys = append(keys, kRule+id)
		}
		return keys
	}
	keys = append(keys, kAllowed)
	for _, cat := range c.Categories {
		keys = append(keys, kCategory+cat)
	}
	return keys
}

// add counts case c, whose counts are keys, into the group.
func (g *rawGroup) add(c *CaseFacts, keys []string, again reReferral) {
	for _, k := range keys {
		g.counts[k]++
	}
	if c.Allowed {
		g.allowed++
	}
	days := func(t time.Time) float64 { return t.Sub(c.ReferredAt).Hours() / 24 }
	if !c.AcknowledgedAt.IsZero() {
		g.ack++
		g.ackDays = append(g.ackDays, days(c.AcknowledgedAt))
	}
	if !c.AcceptedAt.IsZero() {
		g.acc++
	}
	if !c.RejectedAt.IsZero() {
		g.rej++
	}
	if !c.FirstAppointmentAt.IsZero() {
		g.booked++
		g.apptDays = append(g.apptDays, days(c.FirstAppointmentAt))
		if c.DNA {
			g.dna++
		}
	}
	if again.again {
		g.students[c.Student] = max(g.students[c.Student], again.services)
	}
}

// ledger is the keys of every group's counts, the same in every group so
// that a breakdown lists the same names across a table.
type ledger struct {
	routes, outcomes, rules, categories, all []string
}

func ledgerKeys(rules, outcomes map[string]bool) ledger {
	l := ledger{routes: append(append([]string{"consent"}, OverrideGrounds...), RouteUnstated), categories: DataCategories}
	l.outcomes = slices.Clone(CaseOutcomes)
	for o := range outcomes {
		if !slices.Contains(l.outcomes, o) {
			l.outcomes = append(l.outcomes, o)
		}
	}
	for id := range rules {
		l.rules = append(l.rules, id)
	}
	slices.Sort(l.rules)
	l.all = []string{kReferrals, kAllowed, kRefused}
	for _, set := range []struct {
		prefix string
		names  []string
	}{{kRoute, l.routes}, {kOutcome, l.outcomes}, {kRule, l.rules}, {kCategory, l.categories}} {
		for _, n := range set.names {
			l.all = append(l.all, set.prefix+n)
		}
	}
	return l
}

// publish suppresses every count of every group at once, with the
// relations a reader could combine: within a group (allowed and refused
// make the referrals; so do the routes and the outcomes; refused cases
// have the outcome refused, allowed ones the others; the service
// breakdown makes the students referred again), across the rows of a
// period (the institutions make the whole; so do the services), and across
// periods (the periods make the total). It returns each group's cells by
// key.
func publish(groups []rawGroup, l ledger, nrows, nperiods int) []map[string]Cell {
	var counts []int
	var sums []Additive
	at := make([]map[string]int, len(groups)) // group → key → index in counts
	cell := func(g int, key string, n int) int {
		at[g][key] = len(counts)
		counts = append(counts, n)
		return len(counts) - 1
	}
	for g, grp := range groups {
		at[g] = map[string]int{}
		for _, k := range l.all {
			cell(g, k, grp.counts[k])
		}
		byServices := make([]int, len(ReferredAgainBuckets))
		for _, n := range grp.students {
			byServices[min(n, 3)-1]++
		}
		total := cell(g, kAgain, len(grp.students))
		var parts []int
		for b, name := range ReferredAgainBuckets {
			parts = append(parts, cell(g, kAgainBy+name, byServices[b]))
		}
		sums = append(sums,
			Additive{Total: total, Parts: parts},
			Additive{Total: at[g][kReferrals], Parts: []int{at[g][kAllowed], at[g][kRefused]}},
			Additive{Total: at[g][kReferrals], Parts: keysOf(at[g], kRoute, l.routes)},
			Additive{Total: at[g][kReferrals], Parts: keysOf(at[g], kOutcome, l.outcomes)},
			// A refused case's outcome is "refused", so the allowed ones
			// have the other outcomes.
			Additive{Total: at[g][kRefused], Parts: []int{at[g][kOutcome+OutcomeRefused]}},
			Additive{Total: at[g][kAllowed], Parts: keysOf(at[g], kOutcome, slices.DeleteFunc(slices.Clone(l.outcomes), func(o string) bool { return o == OutcomeRefused }))},
		)
	}
	// Across rows: row 0 is the whole; the institution rows and the
	// service rows each add up to it. Students referred again do not add
	// up (a student may be in two rows), so they are left out.
	instRows, svcRows := rowKinds(groups[:nrows])
	for p := range nperiods {
		base := p * nrows
		for _, k := range l.all {
			for _, kind := range [][]int{instRows, svcRows} {
				if len(kind) > 0 {
					sums = append(sums, Additive{Total: at[base][k], Parts: mapIdx(kind, func(r int) int { return at[base+r][k] })})
				}
			}
		}
	}
	// Across periods: the last period is the total.
	total := (nperiods - 1) * nrows
	for r := range nrows {
		for _, k := range l.all {
			parts := make([]int, nperiods-1)
			for p := range nperiods - 1 {
				parts[p] = at[p*nrows+r][k]
			}
			sums = append(sums, Additive{Total: at[total+r][k], Parts: parts})
		}
	}
	published := Suppress(counts, sums)
	out := make([]map[string]Cell, len(groups))
	for g := range groups {
		out[g] = map[string]Cell{}
		for k, i := range at[g] {
			out[g][k] = published[i]
		}
	}
	return out
}

// rowKinds splits the rows of a period (after the whole) into institution
// rows and service rows, by position.
func rowKinds(rows []rawGroup) (inst, svc []int) {
	for r, row := range rows {
		switch {
		case row.institution != "":
			inst = append(inst, r)
		case row.service != "":
			svc = append(svc, r)
		}
	}
	return inst, svc
}

func keysOf(at map[string]int, prefix string, names []string) []int {
	return mapIdx(names, func(n string) int { return at[prefix+n] })
}

func mapIdx[T any](in []T, f func(T) int) []int {
	out := make([]int, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

// figures assembles a group's published figures from its cells.
func (g *rawGroup) figures(cells map[string]Cell, l ledger, returnPath bool) Figures {
	named := func(prefix string, names []string) []Named {
		out := make([]Named, len(names))
		for i, n := range names {
			out[i] = Named{Name: n, Cell: cells[prefix+n]}
		}
		return out
	}
	f := Figures{
		Referrals: cells[kReferrals], Allowed: cells[kAllowed], Refused: cells[kRefused],
		RefusalsByRule: named(kRule, l.rules), Routes: named(kRoute, l.routes),
		DataCategories: named(kCategory, l.categories), Outcomes: named(kOutcome, l.outcomes),
		AcknowledgementRate: PublishRate(g.ack, g.allowed), RejectionRate: PublishRate(g.rej, g.allowed),
		TimeToAcknowledgement: PublishWait(g.ackDays),
		ReferredAgain:         cells[kAgain], ReferredAgainServices: named(kAgainBy, ReferredAgainBuckets),
	}
	if returnPath {
		f.AcceptanceRate = PublishRate(g.acc, g.allowed)
		f.TimeToFirstAppointment = PublishWait(g.apptDays)
		f.DidNotAttendRate = PublishRate(g.dna, g.booked)
	} else {
		f.AcceptanceRate = Rate{Display: DisplayUnavailable}
		f.TimeToFirstAppointment = Wait{Display: DisplayUnavailable}
		f.DidNotAttendRate = Rate{Display: DisplayUnavailable}
	}
	return f
}

// WriteCSV writes the report as one row per published figure: period,
// institution, service, figure, breakdown, value and display. A hidden
// figure has an empty value.
func (r *EvaluationReport) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"period", "institution", "service", "figure", "breakdown", "value", "display"})
	for _, g := range r.Groups {
		put := func(figure, breakdown string, value *float64, display string) {
			v := ""
			if value != nil {
				v = strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", *value), "0"), ".")
			}
			_ = cw.Write([]string{g.Period, cmp.Or(g.Institution, "all"), cmp.Or(g.Service, "all"), figure, breakdown, v, display})
		}
		cell := func(figure, breakdown string, c Cell) {
			var v *float64
			if c.Value != nil {
				f := float64(*c.Value)
				v = &f
			}
			put(figure, breakdown, v, c.Display)
		}
		f := g.Figures
		cell("referrals", "", f.Referrals)
		cell("allowed", "", f.Allowed)
		cell("refused", "", f.Refused)
		for _, set := range []struct {
			figure string
			cells  []Named
		}{{"refusalsByRule", f.RefusalsByRule}, {"routes", f.Routes}, {"dataCategories", f.DataCategories}, {"outcomes", f.Outcomes}, {"referredAgainServices", f.ReferredAgainServices}} {
			for _, n := range set.cells {
				cell(set.figure, n.Name, n.Cell)
			}
		}
		cell("referredAgain", "", f.ReferredAgain)
		for _, rt := range []struct {
			figure string
			rate   Rate
		}{{"acknowledgementRate", f.AcknowledgementRate}, {FigureAcceptanceRate, f.AcceptanceRate}, {"rejectionRate", f.RejectionRate}, {FigureDidNotAttendRate, f.DidNotAttendRate}} {
			put(rt.figure, "percent", rt.rate.Percent, rt.rate.Display)
		}
		for _, wt := range []struct {
			figure string
			wait   Wait
		}{{"timeToAcknowledgement", f.TimeToAcknowledgement}, {FigureTimeToFirstAppointment, f.TimeToFirstAppointment}} {
			put(wt.figure, "medianDays", wt.wait.Median, wt.wait.Display)
			put(wt.figure, "p90Days", wt.wait.P90, wt.wait.Display)
		}
	}
	cw.Flush()
	return cw.Error()
}
