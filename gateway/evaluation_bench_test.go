package gateway_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// BenchmarkBuildReport computes the published figures of 100,000 cases (two
// institutions, six services, a year by month): grouping, re-referrals and
// suppression, the domain's part of a report.
func BenchmarkBuildReport(b *testing.B) {
	const n = 100000
	services := []string{"u-cope", "liverpool-liaison", "gm-student-mhs", "icope-camden", "bristol-awp", "sheffield-shsc"}
	insts := []string{"10007164", "10006842"}
	start := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)
	outcomes := gateway.CaseOutcomes[1:] // every outcome of an allowed case
	facts := gateway.EvaluationFacts{Cases: make([]gateway.CaseFacts, n), ReturnPath: true}
	for i := range facts.Cases {
		at := start.Add(time.Duration(i) * 315 * time.Second)
		c := gateway.CaseFacts{Institution: insts[i%2], Service: services[i%6], Student: fmt.Sprint("s", i%70000), ReferredAt: at,
			Allowed: i%5 != 0, Route: "consent", Categories: []string{"demographics", "needs"}, Outcome: outcomes[i%len(outcomes)]}
		if !c.Allowed {
			c.RefusedBy, c.Outcome, c.Categories = []string{"C-02"}, gateway.OutcomeRefused, nil
		} else {
			timeline(&c, i)
		}
		facts.Cases[i] = c
	}
	scope := gateway.EvaluationScope{Institutions: insts, Services: services}
	q, err := gateway.ParseEvaluationQuery("2025-12-01", "2026-12-01", "month", "", start)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if r := gateway.BuildReport(facts, scope, q); len(r.Groups) != 13*9 {
			b.Fatalf("%d groups", len(r.Groups))
		}
	}
}

// timeline gives an allowed case the steps its outcome implies, at times
// that vary with i.
func timeline(c *gateway.CaseFacts, i int) {
	stage := slices.Index(gateway.CaseOutcomes, c.Outcome)
	after := func(h int) time.Time { return c.ReferredAt.Add(time.Duration(h) * time.Hour) }
	if stage >= slices.Index(gateway.CaseOutcomes, gateway.OutcomeRejected) {
		c.AcknowledgedAt = after(i % 97)
	}
	switch {
	case c.Outcome == gateway.OutcomeRejected:
		c.RejectedAt = c.AcknowledgedAt
	case stage >= slices.Index(gateway.CaseOutcomes, gateway.OutcomeAccepted):
		c.AcceptedAt = c.AcknowledgedAt
	}
	if stage >= slices.Index(gateway.CaseOutcomes, gateway.OutcomeBooked) {
		c.FirstAppointmentAt = after(i%97 + 24*(3+i%20))
		c.DNA = c.Outcome == gateway.OutcomeDidNotAttend || i%7 == 0
	}
}
