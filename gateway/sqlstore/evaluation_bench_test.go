package sqlstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
	"github.com/student-mh-referrals/gateway/gateway/sqlite"
)

// BenchmarkEvaluationFacts reads the facts of 100,000 cases of one
// institution (a year of decisions, 80% allowed, with their referrals and
// the timelines of their journeys), the store's part of a report over them. The rows are written beneath the
// store in bulk (SQLite's encoding of times): the facts read neither hashes
// nor chain order.
func BenchmarkEvaluationFacts(b *testing.B) {
	const n = 100000
	s := openSQLite(b, sqlite.Options{})
	ctx := context.Background()
	start := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)
	services := []string{"u-cope", "liverpool-liaison", "gm-student-mhs", "icope-camden", "bristol-awp", "sheffield-shsc"}
	var stmts []string
	var dec, ref, steps []string
	flush := func() {
		if len(dec) > 0 {
			stmts = append(stmts, "INSERT INTO decision_records (institution, seq, decision_id, at, body, prev_hash, hash) VALUES "+strings.Join(dec, ","))
		}
		if len(ref) > 0 {
			stmts = append(stmts, "INSERT INTO referrals (id, institution, case_id, content_hash, version, service_id, decision_id, status, accepted_at, updated_at, first_appointment_at) VALUES "+strings.Join(ref, ","))
		}
		if len(steps) > 0 {
			stmts = append(stmts, "INSERT INTO referral_steps (referral_id, institution, case_id, service_id, step, at, recorded_at, response_id, request_bundle_id, message_id) VALUES "+strings.Join(steps, ","))
		}
		dec, ref, steps = nil, nil, nil
	}
	// Journeys by case, each step a number of days after the referral.
	journeys := []struct {
		status string
		steps  []string
		days   []int
	}{
		{"discharged", []string{"accepted", "booked", "seen", "discharged"}, []int{1, 3, 9, 40}},
		{"seen", []string{"accepted", "booked", "seen"}, []int{2, 4, 12}},
		{"did-not-attend", []string{"accepted", "booked", "did-not-attend"}, []int{1, 5, 10}},
		{"rejected", []string{"rejected"}, []int{3}},
		{"delivered", nil, nil},
		{"cancelled", nil, nil},
	}
	for i := range n {
		at := start.Add(time.Duration(i) * 315 * time.Second)
		caseID := fmt.Sprintf("CASE-%06d", i)
		allow := i%5 != 0
		body := decisionBody(caseID, fmt.Sprintf("student-%d", i%70000), services[i%len(services)], allow, false, "C-02")
		dec = append(dec, fmt.Sprintf("('%s', %d, 'd-%d', %d, %s, '', '')", instA, i+1, i, at.UnixMicro(), sqlQuote(string(body))))
		if allow {
			j, svc := journeys[i%len(journeys)], services[i%len(services)]
			appt := "NULL"
			for k, step := range j.steps {
				stepAt := at.AddDate(0, 0, j.days[k]).UnixMicro()
				if step == "booked" {
					appt = fmt.Sprint(at.AddDate(0, 0, j.days[k+1]).UnixMicro())
				}
				steps = append(steps, fmt.Sprintf("('r-%d', '%s', '%s', '%s', '%s', %d, %d, 'resp-%d-%d', 'b-%d', 'm-%d')", i, instA, caseID, svc, step, stepAt, stepAt, i, k, i, i))
			}
			ref = append(ref, fmt.Sprintf("('r-%d', '%s', '%s', 'h-%d', 1, '%s', 'd-%d', '%s', %d, %d, %s)", i, instA, caseID, i, svc, i, j.status, at.UnixMicro(), at.Add(30*time.Hour).UnixMicro(), appt))
		}
		if len(dec) == 500 {
			flush()
		}
	}
	flush()
	if err := s.Exec(ctx, stmts...); err != nil {
		b.Fatal(err)
	}
	src := s.Store.(gateway.EvaluationSource)
	b.ResetTimer()
	for b.Loop() {
		f, err := src.EvaluationFacts(ctx, []string{instA}, start, start.AddDate(1, 0, 0))
		if err != nil || len(f.Cases) != n || f.Cases[1].Outcome != gateway.OutcomeSeen || f.Cases[1].FirstAppointmentAt.IsZero() {
			b.Fatalf("%d cases, %v", len(f.Cases), err)
		}
	}
}
