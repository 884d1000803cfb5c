package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/student-mh-referrals/gateway/gateway"
)

// referralCols reads a referral; its bundle is the body of its new or update
// message, so the Bundle is stored once.
const referralCols = `r.id, r.institution, r.case_id, r.content_hash, r.version, r.previous_id,
	r.service_id, r.decision_id, r.status, r.response, r.record,
	(SELECT o.body FROM outbox_messages o WHERE o.referral_id = r.id AND o.kind <> 'cancel'),
	r.accepted_at, r.updated_at, r.purged_at`

type scanner interface{ Scan(...any) error }

func scanReferral(s scanner) (gateway.StoredReferral, error) {
	var (
		ref                   gateway.StoredReferral
		prev, resp, rec, bndl sql.NullString
		status                string
		accepted, updated     int64
		purged                sql.NullInt64
	)
	err := s.Scan(&ref.ID, &ref.Institution, &ref.CaseID, &ref.ContentHash, &ref.Version, &prev,
		&ref.ServiceID, &ref.DecisionID, &status, &resp, &rec, &bndl, &accepted, &updated, &purged)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return ref, gateway.Errorf(gateway.ENOTFOUND, "no such referral")
		}
		return ref, err
	}
	ref.PreviousID = prev.String
	ref.Status = gateway.ReferralStatus(status)
	ref.Response, ref.Record, ref.Bundle = rawJSON(resp), rawJSON(rec), rawJSON(bndl)
	ref.AcceptedAt, ref.UpdatedAt, ref.PurgedAt = fromMicros(accepted), fromMicros(updated), fromNullMicros(purged)
	return ref, nil
}

// Accept implements gateway.Referrals.
func (d *DB) Accept(ctx context.Context, req gateway.AcceptRequest) (gateway.AcceptResult, error) {
	if err := req.Validate(); err != nil {
		return gateway.AcceptResult{}, err
	}
	var res gateway.AcceptResult
	err := d.write(ctx, func(t wtx) error {
		res = gateway.AcceptResult{}
		id := gateway.ReferralID(req.Institution, req.CaseID, req.ContentHash)
		existing, err := scanReferral(t.queryRow(sqlReferralByID, id))
		if err == nil {
			res.Referral = existing
			return nil
		} else if gateway.ErrorCode(err) != gateway.ENOTFOUND {
			return err
		}
		var latestID string
		var latestVersion int
		err = t.queryRow(sqlLatestVersion, req.Institution, req.CaseID).Scan(&latestID, &latestVersion)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if latestID != req.PreviousID {
			return gateway.Errorf(gateway.ECONFLICT, "another version of this case was accepted meanwhile; rebuild the message and try again")
		}
		at := req.At.UTC().Truncate(time.Microsecond)
		kind := gateway.KindNew
		if latestID != "" {
			kind = gateway.KindUpdate
		}
		if _, err := t.exec(sqlInsertReferral,
			id, req.Institution, req.CaseID, req.ContentHash, latestVersion+1, nullString(latestID),
			req.ServiceID, req.Decision.DecisionID, gateway.StatusAccepted, string(req.Record), toMicros(at), toMicros(at)); err != nil {
			return err
		}
		dec := req.Decision
		dec.Institution = req.Institution
		if res.Decision, err = appendDecision(t, dec); err != nil {
			return err
		}
		if res.Message, err = insertMessage(t, id, req.Institution, req.CaseID, req.ServiceID, kind, req.Bundle, req.CorrelationID, at); err != nil {
			return err
		}
		res.Referral = gateway.StoredReferral{
			ID: id, Institution: req.Institution, CaseID: req.CaseID, ContentHash: req.ContentHash,
			Version: latestVersion + 1, PreviousID: latestID, ServiceID: req.ServiceID,
			DecisionID: req.Decision.DecisionID, Status: gateway.StatusAccepted,
			Record: req.Record, Bundle: req.Bundle, AcceptedAt: at, UpdatedAt: at,
		}
		res.Created = true
		return nil
	})
	if err != nil {
		return gateway.AcceptResult{}, err
	}
	return res, nil
}

// insertMessage queues a message. Its ids are derived from the referral and
// the kind, so a message has the same X-Request-Id on every attempt and even
// after a restore from backup.
func insertMessage(t wtx, referralID, institution, caseID, serviceID string, kind gateway.MessageKind, body json.RawMessage, correlationID string, at time.Time) (gateway.OutboxMessage, error) {
	id := gateway.DeriveID("message", string(kind), referralID)
	reqID := gateway.DeriveID("x-request-id", id)
	if correlationID == "" {
		correlationID = reqID
	}
	m := gateway.OutboxMessage{
		ID: id, ReferralID: referralID, Institution: institution, CaseID: caseID, Kind: kind,
		ServiceID: serviceID, RequestID: reqID, CorrelationID: correlationID, Body: body,
		State: gateway.MessagePending, DueAt: at, CreatedAt: at, UpdatedAt: at,
	}
	_, err := t.exec(sqlInsertMessage,
		id, referralID, institution, caseID, kind, serviceID, reqID, correlationID, string(body),
		gateway.MessagePending, toMicros(at), toMicros(at), toMicros(at))
	return m, err
}

// Referral implements gateway.Referrals.
func (d *DB) Referral(ctx context.Context, institution, id string) (gateway.StoredReferral, error) {
	ref, err := scanReferral(d.queryRow(ctx, sqlReadReferral, id, institution))
	return ref, mapErr(err)
}

// LatestReferral implements gateway.Referrals.
func (d *DB) LatestReferral(ctx context.Context, institution, caseID string) (gateway.StoredReferral, error) {
	ref, err := scanReferral(d.queryRow(ctx, sqlReadLatest, institution, caseID))
	return ref, mapErr(err)
}

// Hot reads, prepared on the reader pool at Open.
var (
	sqlReadReferral = preparedRead(`SELECT ` + referralCols + ` FROM referrals r
		WHERE r.id = ? AND r.institution = ?`)
	sqlReadLatest = preparedRead(`SELECT ` + referralCols + ` FROM referrals r
		WHERE r.institution = ? AND r.case_id = ? ORDER BY r.version DESC LIMIT 1`)
)

// RecordResponse implements gateway.Referrals.
func (d *DB) RecordResponse(ctx context.Context, referralID string, status gateway.ReferralStatus, response json.RawMessage, at time.Time) (gateway.StoredReferral, error) {
	if status != gateway.StatusAcknowledged && status != gateway.StatusRejected {
		return gateway.StoredReferral{}, gateway.Errorf(gateway.EINVALID, "a response sets acknowledged or rejected, not %q", status)
	}
	if (response != nil && !json.Valid(response)) || at.IsZero() {
		return gateway.StoredReferral{}, gateway.Errorf(gateway.EINVALID, "a response needs a time and a JSON message")
	}
	var ref gateway.StoredReferral
	err := d.write(ctx, func(t wtx) error {
		var err error
		if ref, err = scanReferral(t.queryRow(sqlReferralByID, referralID)); err != nil {
			return err
		}
		if ref.Status == gateway.StatusCancelled || ref.Status == gateway.StatusRejected {
			return gateway.Errorf(gateway.ECONFLICT, "the referral is %s", ref.Status)
		}
		at := at.UTC().Truncate(time.Microsecond)
		if _, err := t.exec(sqlSetResponse,
			status, nullJSON(response), toMicros(at), referralID); err != nil {
			return err
		}
		ref.Status, ref.Response, ref.UpdatedAt = status, response, at
		return nil
	})
	if err != nil {
		return gateway.StoredReferral{}, err
	}
	return ref, nil
}

// Cancel implements gateway.Referrals.
func (d *DB) Cancel(ctx context.Context, req gateway.CancelRequest) (gateway.StoredReferral, error) {
	if err := req.Validate(); err != nil {
		return gateway.StoredReferral{}, err
	}
	var ref gateway.StoredReferral
	err := d.write(ctx, func(t wtx) error {
		var err error
		ref, err = scanReferral(t.queryRow(sqlReferralOf,
			req.ReferralID, req.Institution))
		if err != nil {
			return err
		}
		switch ref.Status {
		case gateway.StatusCancelled:
			return nil
		case gateway.StatusRejected:
			return gateway.Errorf(gateway.ECONFLICT, "the receiver rejected this referral; there is nothing to cancel")
		}
		var latest int
		if err := t.queryRow(sqlMaxVersion,
			ref.Institution, ref.CaseID).Scan(&latest); err != nil {
			return err
		}
		if latest != ref.Version {
			return gateway.Errorf(gateway.ECONFLICT, "a later version of this case exists; cancel that one")
		}
		at := req.At.UTC().Truncate(time.Microsecond)
		if _, err := insertMessage(t, ref.ID, ref.Institution, ref.CaseID, ref.ServiceID, gateway.KindCancel, req.Bundle, req.CorrelationID, at); err != nil {
			return err
		}
		if _, err := t.exec(sqlSetStatus,
			gateway.StatusCancelled, toMicros(at), ref.ID); err != nil {
			return err
		}
		ref.Status, ref.UpdatedAt = gateway.StatusCancelled, at
		return nil
	})
	if err != nil {
		return gateway.StoredReferral{}, err
	}
	return ref, nil
}

// purgeable selects referrals whose content may go: not purged yet, last
// updated before the cut-off, and nothing of theirs still queued.
const purgeable = `r.purged_at IS NULL AND r.updated_at < ? AND NOT EXISTS (
	SELECT 1 FROM outbox_messages q WHERE q.referral_id = r.id AND q.state IN ('pending', 'leased'))`

// PurgeContent implements gateway.Store.
func (d *DB) PurgeContent(ctx context.Context, before, now time.Time) (int, error) {
	var n int64
	err := d.write(ctx, func(t wtx) error {
		if _, err := t.exec(sqlPurgeMessages, toMicros(before)); err != nil {
			return err
		}
		res, err := t.exec(sqlPurgeReferrals,
			toMicros(now), toMicros(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// Write statements, prepared at Open.
var (
	sqlReferralByID  = prepared(`SELECT ` + referralCols + ` FROM referrals r WHERE r.id = ?`)
	sqlLatestVersion = prepared(`SELECT id, version FROM referrals WHERE institution = ? AND case_id = ?
			ORDER BY version DESC LIMIT 1`)
	sqlInsertReferral = prepared(`INSERT INTO referrals (id, institution, case_id, content_hash, version, previous_id,
			service_id, decision_id, status, record, accepted_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	sqlInsertMessage = prepared(`INSERT INTO outbox_messages (id, referral_id, institution, case_id, kind, service_id,
		request_id, correlation_id, body, state, due_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	sqlSetResponse   = prepared(`UPDATE referrals SET status = ?, response = ?, updated_at = ? WHERE id = ?`)
	sqlReferralOf    = prepared(`SELECT ` + referralCols + ` FROM referrals r WHERE r.id = ? AND r.institution = ?`)
	sqlMaxVersion    = prepared(`SELECT MAX(version) FROM referrals WHERE institution = ? AND case_id = ?`)
	sqlSetStatus     = prepared(`UPDATE referrals SET status = ?, updated_at = ? WHERE id = ?`)
	sqlPurgeMessages = prepared(`UPDATE outbox_messages SET body = NULL, response = NULL
			WHERE referral_id IN (SELECT r.id FROM referrals r WHERE ` + purgeable + `)`)
	sqlPurgeReferrals = prepared(`UPDATE referrals AS r SET record = NULL, response = NULL, purged_at = ? WHERE ` + purgeable)
)
