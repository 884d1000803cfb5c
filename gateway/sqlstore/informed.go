package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// shareCols read a referral as T-01 sees it: without its content, with when
// its new or update message was delivered (NULL: never), whether the
// student was told, and the body of its decision record.
const shareCols = `r.id, r.institution, r.case_id, r.version, r.service_id, r.decision_id, r.status,
	r.accepted_at, r.updated_at, r.student_informed_at, r.student_informed_method,
	(SELECT MIN(o.updated_at) FROM outbox_messages o
		WHERE o.referral_id = r.id AND o.kind <> 'cancel' AND o.state = 'delivered'),
	(SELECT d.body FROM decision_records d
		WHERE d.institution = r.institution AND d.decision_id = r.decision_id ORDER BY d.seq LIMIT 1)`

var (
	sqlReadShare = read(`SELECT ` + shareCols + ` FROM referrals r WHERE r.id = ? AND r.institution = ?`)
	sqlLockShare = query(`SELECT ` + shareCols + ` FROM referrals r WHERE r.id = ? AND r.institution = ? {FOR UPDATE}`)
	// The shares whose student has not been told: through the partial
	// index referrals_untold, in acceptance order, those delivered and not
	// replaced by a later version of the case that was delivered too (its
	// notice, and whether it is held back, are then the case's).
	sqlUntold = read(`SELECT ` + shareCols + ` FROM referrals r
		WHERE r.institution = ? AND r.student_informed_at IS NULL AND EXISTS (
			SELECT 1 FROM outbox_messages o WHERE o.referral_id = r.id AND o.kind <> 'cancel' AND o.state = 'delivered')
		AND NOT EXISTS (SELECT 1 FROM referrals n JOIN outbox_messages o ON o.referral_id = n.id
			WHERE n.institution = r.institution AND n.case_id = r.case_id AND n.version > r.version
			AND o.kind <> 'cancel' AND o.state = 'delivered')
		ORDER BY r.accepted_at, r.id LIMIT ?`)
	sqlSetInformed = query(`UPDATE referrals SET student_informed_at = ?, student_informed_method = ? WHERE id = ?`)
)

func scanShare(s scanner) (gateway.Share, error) {
	var (
		sh           gateway.Share
		ref          = &sh.Referral
		status       string
		method, body sql.NullString
		informedAt   time.Time
	)
	err := s.Scan(&ref.ID, &ref.Institution, &ref.CaseID, &ref.Version, &ref.ServiceID, &ref.DecisionID, &status,
		timeOf{&ref.AcceptedAt}, timeOf{&ref.UpdatedAt}, timeOf{&informedAt}, &method, timeOf{&sh.DeliveredAt}, &body)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return sh, gateway.Errorf(gateway.ENOTFOUND, "no such referral")
		}
		return sh, err
	}
	ref.Status = gateway.ReferralStatus(status)
	if method.Valid {
		sh.Informed = &gateway.StudentInformedRecord{At: informedAt, Method: method.String}
	}
	if body.Valid {
		if err := json.Unmarshal([]byte(body.String), &sh.Decision); err != nil {
			return sh, fmt.Errorf("decision record of referral %s: %w", ref.ID, err)
		}
	}
	return sh, nil
}

// Share implements gateway.Notices.
func (db *DB) Share(ctx context.Context, institution, referralID string) (gateway.Share, error) {
	sh, err := scanShare(db.queryRow(ctx, sqlReadShare, referralID, institution))
	return sh, db.mapErr(err)
}

// RecordInformed implements gateway.Notices. The chain lock, taken first as
// by every append, also serialises two confirmations of one share.
func (db *DB) RecordInformed(ctx context.Context, req gateway.InformedRequest) (gateway.Share, error) {
	if req.Institution == "" || req.ReferralID == "" || req.Informed.At.IsZero() || req.Informed.Method == "" {
		return gateway.Share{}, gateway.Errorf(gateway.EINVALID, "a confirmation needs an institution, a referral, a time and a method")
	}
	if err := req.Action.Validate(); err != nil || req.Action.Institution != req.Institution {
		return gateway.Share{}, gateway.Errorf(gateway.EINVALID, "a confirmation needs its action record, of its institution")
	}
	var sh gateway.Share
	err := db.write(ctx, nil, func(t tx) error {
		seq, head, err := lockChain(t, req.Institution)
		if err != nil {
			return err
		}
		if sh, err = scanShare(t.queryRow(sqlLockShare, req.ReferralID, req.Institution)); err != nil {
			return err
		}
		if sh.Informed != nil {
			return gateway.Errorf(gateway.ECONFLICT, "the student was already recorded as told")
		}
		if sh.DeliveredAt.IsZero() {
			return gateway.Errorf(gateway.ECONFLICT, "the referral was not delivered")
		}
		at := utc(req.Informed.At)
		if _, err := t.exec(sqlSetInformed, t.time(at), req.Informed.Method, req.ReferralID); err != nil {
			return err
		}
		if _, err := appendDecision(t, req.Action, seq, head); err != nil {
			return err
		}
		sh.Informed = &gateway.StudentInformedRecord{At: at, Method: req.Informed.Method}
		return nil
	})
	return sh, err
}

// Untold implements gateway.Notices.
func (db *DB) Untold(ctx context.Context, institution string, limit int) ([]gateway.Share, error) {
	rows, err := db.query(ctx, sqlUntold, institution, limit)
	if err != nil {
		return nil, db.mapErr(err)
	}
	defer rows.Close()
	var out []gateway.Share
	for rows.Next() {
		sh, err := scanShare(rows)
		if err != nil {
			return nil, db.mapErr(err)
		}
		out = append(out, sh)
	}
	return out, db.mapErr(rows.Err())
}
