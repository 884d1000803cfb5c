package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// bundleIDOf is the id of the Bundle a message carries, stored beside it so
// that a response naming it (MessageHeader.response.identifier) finds the
// message after its body is purged. NULL when the body names none.
func bundleIDOf(body json.RawMessage) sql.NullString {
	var b struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &b) // a body without an id has none to find
	return nullString(b.ID)
}

const stepCols = `seq, referral_id, institution, case_id, service_id, step, at, recorded_at,
	response_id, request_bundle_id, appointment_id, appointment_start, codes`

var (
	sqlSentMessage = read(`SELECT ` + messageColsNoBody + ` FROM outbox_messages WHERE bundle_id = ?
		ORDER BY seq LIMIT 1`)
	sqlReferralMessages = read(`SELECT ` + messageColsNoBody + ` FROM outbox_messages WHERE referral_id = ? ORDER BY seq`)
	sqlCaseSteps        = read(`SELECT ` + stepCols + ` FROM referral_steps WHERE institution = ? AND case_id = ?
		ORDER BY at, seq`)
	sqlStepsAfter = read(`SELECT ` + stepCols + ` FROM referral_steps WHERE institution = ? AND seq > ?
		ORDER BY seq LIMIT ?`)
	sqlReferralSteps = query(`SELECT ` + stepCols + ` FROM referral_steps WHERE referral_id = ? ORDER BY seq`)
	sqlStepExists    = query(`SELECT COUNT(*) FROM referral_steps WHERE service_id = ? AND response_id = ?`)
	sqlInsertStep    = query(`INSERT INTO referral_steps (referral_id, institution, case_id, service_id, step, at,
		recorded_at, response_id, request_bundle_id, message_id, appointment_id, appointment_start, codes)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`)
	sqlSetStep = query(`UPDATE referrals SET status = ?, response = ?, acknowledged_at = ?, first_appointment_at = ?,
		updated_at = ? WHERE id = ?`)
	sqlLockLatest = query(`SELECT ` + referralCols + ` FROM referrals r
		WHERE r.institution = ? AND r.case_id = ? ORDER BY r.version DESC LIMIT 1 {FOR UPDATE}`)
)

func scanStep(s scanner) (gateway.TimelineEntry, error) {
	var (
		e     gateway.TimelineEntry
		appt  sql.NullString
		codes string
		step  string
	)
	err := s.Scan(&e.Seq, &e.ReferralID, &e.Institution, &e.CaseID, &e.ServiceID, &step, timeOf{&e.At}, timeOf{&e.RecordedAt},
		&e.ResponseID, &e.RequestBundleID, &appt, timeOf{&e.AppointmentStart}, &codes)
	if err != nil {
		return e, err
	}
	e.Step, e.AppointmentID = gateway.Step(step), appt.String
	_ = json.Unmarshal([]byte(codes), &e.Codes) // written by the store as a JSON list
	return e, nil
}

// scanAll reads every row of a query with scan, and closes the rows.
func scanAll[T any](scan func(scanner) (T, error)) func(*sql.Rows, error) ([]T, error) {
	return func(rows *sql.Rows, err error) ([]T, error) {
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := []T{}
		for rows.Next() {
			v, err := scan(rows)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, rows.Err()
	}
}

// nullTime is a time parameter, NULL when zero.
func (t tx) nullTime(v time.Time) any {
	if v.IsZero() {
		return nil
	}
	return t.time(v)
}

// SentMessage implements gateway.Timeline.
func (db *DB) SentMessage(ctx context.Context, bundleID string) (gateway.OutboxMessage, error) {
	if bundleID == "" {
		return gateway.OutboxMessage{}, gateway.Errorf(gateway.ENOTFOUND, "no such message")
	}
	m, err := scanMessage(db.queryRow(ctx, sqlSentMessage, bundleID))
	return m, db.mapErr(err)
}

// ReferralMessages implements gateway.Timeline.
func (db *DB) ReferralMessages(ctx context.Context, referralID string) ([]gateway.OutboxMessage, error) {
	ms, err := scanAll(scanMessage)(db.query(ctx, sqlReferralMessages, referralID))
	return ms, db.mapErr(err)
}

// Steps implements gateway.Timeline.
func (db *DB) Steps(ctx context.Context, institution, caseID string) ([]gateway.TimelineEntry, error) {
	es, err := scanAll(scanStep)(db.query(ctx, sqlCaseSteps, institution, caseID))
	return es, db.mapErr(err)
}

// StepsAfter implements gateway.Timeline.
func (db *DB) StepsAfter(ctx context.Context, institution string, afterSeq int64, limit int) ([]gateway.TimelineEntry, error) {
	if limit <= 0 {
		return nil, gateway.Errorf(gateway.EINVALID, "a limit must be positive")
	}
	es, err := scanAll(scanStep)(db.query(ctx, sqlStepsAfter, institution, afterSeq, limit))
	return es, db.mapErr(err)
}

// RecordStep implements gateway.Timeline. It locks the latest version of
// the case, so that steps of one case are applied one at a time and never
// race an accept of a new version on the version they apply to.
func (db *DB) RecordStep(ctx context.Context, req gateway.StepRequest) (gateway.StoredReferral, gateway.TimelineEntry, error) {
	m, e := req.Message, req.Entry
	if !e.Step.Valid() || e.At.IsZero() || req.At.IsZero() || e.ResponseID == "" || m.ID == "" ||
		(req.Response != nil && !json.Valid(req.Response)) {
		return gateway.StoredReferral{}, e, gateway.Errorf(gateway.EINVALID, "a step needs a known step, its time, a response id, the message answered and a time")
	}
	var ref gateway.StoredReferral
	var out gateway.TimelineEntry
	err := db.write(ctx, db.unique, func(t tx) error {
		// The institution's chain lock first, as Accept takes it: a new
		// version being accepted meanwhile is then committed before the
		// latest version is read (on PostgreSQL, a row lock alone would
		// still hand back the version it replaced).
		if _, _, err := lockChain(t, m.Institution); err != nil {
			return err
		}
		var err error
		if ref, err = scanReferral(t.queryRow(sqlLockLatest, m.Institution, m.CaseID)); err != nil {
			return err
		}
		if (e.Step == gateway.StepAccepted || e.Step == gateway.StepRejected) && (ref.ID != m.ReferralID || m.Kind == gateway.KindCancel) {
			return gateway.Refusal(gateway.RefusedSuperseded, "MessageHeader.response.identifier",
				"an acceptance or rejection must answer the referral's current version; a later version was sent (or the referral was withdrawn)")
		}
		var n int
		if err := t.queryRow(sqlStepExists, m.ServiceID, e.ResponseID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return gateway.Refusal(gateway.RefusedDuplicate, "Bundle.id", "this response message was recorded before")
		}
		earlier, err := scanAll(scanStep)(t.query(sqlReferralSteps, ref.ID))
		if err != nil {
			return err
		}
		e.ReferralID, e.Institution, e.CaseID, e.ServiceID, e.RecordedAt = ref.ID, ref.Institution, ref.CaseID, m.ServiceID, utc(req.At)
		e.At = utc(e.At)
		if !e.AppointmentStart.IsZero() {
			e.AppointmentStart = utc(e.AppointmentStart)
		}
		before := ref.Status
		e, ref = gateway.ApplyStep(ref, earlier, e)
		codes, err := json.Marshal(slices.Clip(append([]gateway.StepCode{}, e.Codes...)))
		if err != nil {
			return err
		}
		if err := t.queryRow(sqlInsertStep, e.ReferralID, e.Institution, e.CaseID, e.ServiceID, string(e.Step), t.time(e.At),
			t.time(e.RecordedAt), e.ResponseID, e.RequestBundleID, m.ID, nullString(e.AppointmentID),
			t.nullTime(e.AppointmentStart), string(codes)).Scan(&e.Seq); err != nil {
			return err
		}
		response := req.Response
		if ref.PurgedAt.IsZero() {
			ref.Response = response
		} else {
			response = nil // content is not stored again once purged
		}
		ref.UpdatedAt = e.RecordedAt
		if _, err := t.exec(sqlSetStep, string(ref.Status), nullJSON(response), t.nullTime(ref.AcknowledgedAt),
			t.nullTime(ref.FirstAppointmentAt), t.time(ref.UpdatedAt), ref.ID); err != nil {
			return err
		}
		out = e
		// The university hears of every step, and of the status when the
		// step changed it (a late step may not), in this transaction.
		step := gateway.WebhookEvent{Institution: ref.Institution, ReferralID: ref.ID, CaseID: ref.CaseID,
			Event: gateway.WebhookEventStep, Status: string(e.Step), At: e.At}
		if err := db.enqueueWebhooksTx(t, step); err != nil || ref.Status == before {
			return err
		}
		return db.enqueueWebhooksTx(t, statusEvent(ref.Institution, ref.ID, ref.CaseID, ref.Status, e.At))
	})
	if err != nil {
		var ge *gateway.Error
		if !errors.As(err, &ge) && db.unique(err) {
			return gateway.StoredReferral{}, e, gateway.Refusal(gateway.RefusedDuplicate, "Bundle.id", "this response message was recorded before")
		}
		return gateway.StoredReferral{}, e, err
	}
	return ref, out, nil
}
