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
// institution (a year of decisions, 80% allowed, with their referrals),
// the store's part of a report over them. The rows are written beneath the
// store in bulk (SQLite's encoding of times): the facts read neither hashes
// nor chain order.
func BenchmarkEvaluationFacts(b *testing.B) {
	const n = 100000
	s := openSQLite(b, sqlite.Options{})
	ctx := context.Background()
	start := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)
	services := []string{"u-cope", "liverpool-liaison", "gm-student-mhs", "icope-camden", "bristol-awp", "sheffield-shsc"}
	var stmts []string
	var dec, ref []string
	flush := func() {
		if len(dec) > 0 {
			stmts = append(stmts, "INSERT INTO decision_records (institution, seq, decision_id, at, body, prev_hash, hash) VALUES "+strings.Join(dec, ","))
		}
		if len(ref) > 0 {
			stmts = append(stmts, "INSERT INTO referrals (id, institution, case_id, content_hash, version, service_id, decision_id, status, accepted_at, updated_at) VALUES "+strings.Join(ref, ","))
		}
		dec, ref = nil, nil
	}
	statuses := []string{"acknowledged", "acknowledged", "acknowledged", "rejected", "delivered", "cancelled"}
	for i := range n {
		at := start.Add(time.Duration(i) * 315 * time.Second)
		caseID := fmt.Sprintf("CASE-%06d", i)
		allow := i%5 != 0
		body := decisionBody(caseID, fmt.Sprintf("student-%d", i%70000), services[i%len(services)], allow, false, "C-02")
		dec = append(dec, fmt.Sprintf("('%s', %d, 'd-%d', %d, %s, '', '')", instA, i+1, i, at.UnixMicro(), sqlQuote(string(body))))
		if allow {
			ref = append(ref, fmt.Sprintf("('r-%d', '%s', '%s', 'h-%d', 1, '%s', 'd-%d', '%s', %d, %d)", i, instA, caseID, i, services[i%len(services)], i, statuses[i%len(statuses)], at.UnixMicro(), at.Add(30*time.Hour).UnixMicro()))
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
		if err != nil || len(f.Cases) != n {
			b.Fatalf("%d cases, %v", len(f.Cases), err)
		}
	}
}
