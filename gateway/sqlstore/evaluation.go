package sqlstore

import (
	"context"
	"database/sql"
	"time"

	// The v2 decoder reads the bodies about twice as fast as
	// encoding/json; a report reads every decision of its institutions.
	"github.com/go-json-experiment/json"

	"github.com/student-mh-referrals/gateway/gateway"
)

// The facts behind the evaluation figures, read from what outlives the
// retention of clinical content: the decision records (each case's latest
// decision, never a dry run), the referrals' statuses and the return path's
// timeline (referral_steps). This file is the one place that reads them.

var (
	sqlEvalDecisions = read(`SELECT at, body FROM decision_records WHERE institution = ? AND at < ? ORDER BY seq`)
	// Every version of every case, in version order: the last row of a
	// case is its latest version.
	sqlEvalReferrals = read(`SELECT case_id, status, first_appointment_at FROM referrals WHERE institution = ? ORDER BY case_id, version`)
	// The return path of every case, each step by its own time.
	sqlEvalSteps = read(`SELECT case_id, step, at FROM referral_steps WHERE institution = ? ORDER BY case_id, at, seq`)
)

var _ gateway.EvaluationSource = (*DB)(nil)

// evalEntry is the part of a decision record body the figures read.
type evalEntry struct {
	Type           string     `json:"type"`
	DryRun         bool       `json:"dryRun"`
	CaseID         string     `json:"caseId"`
	Student        string     `json:"student"`
	Allow          bool       `json:"allow"`
	Route          string     `json:"route"`
	Rules          []evalRule `json:"rules"`
	DataCategories []string   `json:"dataCategories"`
	Recipient      struct {
		Service string `json:"service"`
	} `json:"recipient"`
}

// evalRule is a rule of a decision without its message, which the
// figures never need.
type evalRule struct {
	ID     string `json:"id"`
	Effect string `json:"effect"`
}

// evalCase is a case as its decisions are read.
type evalCase struct {
	first, firstAllowed time.Time
	latest              evalEntry
}

// EvaluationFacts implements gateway.EvaluationSource: the facts of the
// cases of institutions referred in [from, to), as their latest decision
// before to and their referral's status today leave them.
func (db *DB) EvaluationFacts(ctx context.Context, institutions []string, from, to time.Time) (gateway.EvaluationFacts, error) {
	out := gateway.EvaluationFacts{ReturnPath: true}
	for _, inst := range institutions {
		cases, order, err := db.evalDecisions(ctx, inst, to)
		if err != nil {
			return out, err
		}
		status, err := db.evalStatuses(ctx, inst)
		if err != nil {
			return out, err
		}
		for _, id := range order {
			c := cases[id]
			f := gateway.CaseFacts{
				Institution: inst, Service: c.latest.Recipient.Service, Student: c.latest.Student,
				ReferredAt: c.first, Allowed: c.latest.Allow, Route: c.latest.Route, Outcome: gateway.OutcomeRefused,
			}
			if !c.firstAllowed.IsZero() {
				f.ReferredAt = c.firstAllowed
			}
			if f.ReferredAt.Before(from) || !f.ReferredAt.Before(to) {
				continue
			}
			if f.Allowed {
				f.Categories = c.latest.DataCategories
				s := status[id]
				f.Outcome = outcomeOf(s.status)
				f.FirstAppointmentAt = s.firstAppointment
				s.steps.facts(&f)
			} else {
				for _, r := range c.latest.Rules {
					if r.Effect == gateway.EffectDeny {
						f.RefusedBy = append(f.RefusedBy, r.ID)
					}
				}
			}
			out.Cases = append(out.Cases, f)
		}
	}
	return out, nil
}

// evalDecisions reads an institution's decisions before to, case by case:
// the first, the first allowed, and the latest (dry runs and actions
// skipped). order is the cases in the order they were first decided.
func (db *DB) evalDecisions(ctx context.Context, inst string, to time.Time) (map[string]*evalCase, []string, error) {
	rows, err := db.query(ctx, sqlEvalDecisions, inst, db.time(to))
	if err != nil {
		return nil, nil, db.mapErr(err)
	}
	defer rows.Close()
	cases := map[string]*evalCase{}
	var order []string
	for rows.Next() {
		var at time.Time
		var body sql.RawBytes // valid until Next; the decoder copies what it keeps
		if err := rows.Scan(timeOf{&at}, &body); err != nil {
			return nil, nil, db.mapErr(err)
		}
		var e evalEntry
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, nil, gateway.Internal(err)
		}
		if e.Type != "" || e.DryRun || e.CaseID == "" {
			continue
		}
		c := cases[e.CaseID]
		if c == nil {
			c = &evalCase{first: at}
			cases[e.CaseID] = c
			order = append(order, e.CaseID)
		}
		if e.Allow && c.firstAllowed.IsZero() {
			c.firstAllowed = at
		}
		c.latest = e
	}
	return cases, order, db.mapErr(rows.Err())
}

// evalStatus is the status of a case's latest version, its first
// appointment, and the steps of the case.
type evalStatus struct {
	status           gateway.ReferralStatus
	firstAppointment time.Time
	steps            evalSteps
}

// evalSteps are the first time of each step of a case's timeline.
type evalSteps map[gateway.Step]time.Time

// facts sets what the timeline says of a case: acknowledged at the service's
// first answer of any kind, accepted and rejected at their first report, and
// whether the student ever missed an appointment.
func (st evalSteps) facts(f *gateway.CaseFacts) {
	for step, at := range st {
		if f.AcknowledgedAt.IsZero() || at.Before(f.AcknowledgedAt) {
			f.AcknowledgedAt = at
		}
		switch step {
		case gateway.StepAccepted:
			f.AcceptedAt = at
		case gateway.StepRejected:
			f.RejectedAt = at
		case gateway.StepDidNotAttend:
			f.DNA = true
		}
	}
}

func (db *DB) evalStatuses(ctx context.Context, inst string) (map[string]*evalStatus, error) {
	rows, err := db.query(ctx, sqlEvalReferrals, inst)
	if err != nil {
		return nil, db.mapErr(err)
	}
	defer rows.Close()
	out := map[string]*evalStatus{}
	for rows.Next() {
		var id string
		s := &evalStatus{steps: evalSteps{}}
		if err := rows.Scan(&id, &s.status, timeOf{&s.firstAppointment}); err != nil {
			return nil, db.mapErr(err)
		}
		out[id] = s // the later version overwrites the earlier
	}
	if err := rows.Err(); err != nil {
		return nil, db.mapErr(err)
	}
	steps, err := db.query(ctx, sqlEvalSteps, inst)
	if err != nil {
		return nil, db.mapErr(err)
	}
	defer steps.Close()
	for steps.Next() {
		var id string
		var step gateway.Step
		var at time.Time
		if err := steps.Scan(&id, &step, timeOf{&at}); err != nil {
			return nil, db.mapErr(err)
		}
		if s := out[id]; s != nil {
			if _, seen := s.steps[step]; !seen {
				s.steps[step] = at
			}
		}
	}
	return out, db.mapErr(steps.Err())
}

// outcomeOf is the outcome of an allowed case whose latest version has
// status s: the furthest it has gone.
func outcomeOf(s gateway.ReferralStatus) string {
	switch s {
	case gateway.StatusDelivered:
		return gateway.OutcomeAwaitingResponse
	case gateway.StatusFailed, gateway.StatusDeadLettered:
		return gateway.OutcomeUndelivered
	case gateway.StatusServiceAccepted:
		return gateway.OutcomeAccepted
	case gateway.StatusRejected:
		return gateway.OutcomeRejected
	case gateway.StatusCancelled:
		return gateway.OutcomeCancelled
	case gateway.StatusBooked, gateway.StatusRebooked:
		return gateway.OutcomeBooked
	case gateway.StatusSeen:
		return gateway.OutcomeSeen
	case gateway.StatusDidNotAttend:
		return gateway.OutcomeDidNotAttend
	case gateway.StatusDischarged:
		return gateway.OutcomeDischarged
	case gateway.StatusRedirected:
		return gateway.OutcomeRedirected
	}
	return gateway.OutcomeAwaitingDelivery // queued or being delivered
}
