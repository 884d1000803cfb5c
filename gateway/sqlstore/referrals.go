package sqlstore

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
	r.accepted_at, r.updated_at, r.purged_at, r.acknowledged_at, r.first_appointment_at`

func scanReferral(s scanner) (gateway.StoredReferral, error) {
	var (
		ref                   gateway.StoredReferral
		prev, resp, rec, bndl sql.NullString
		status                string
	)
	err := s.Scan(&ref.ID, &ref.Institution, &ref.CaseID, &ref.ContentHash, &ref.Version, &prev,
		&ref.ServiceID, &ref.DecisionID, &status, &resp, &rec, &bndl,
		timeOf{&ref.AcceptedAt}, timeOf{&ref.UpdatedAt}, timeOf{&ref.PurgedAt}, timeOf{&ref.AcknowledgedAt}, timeOf{&ref.FirstAppointmentAt})
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return ref, gateway.Errorf(gateway.ENOTFOUND, "no such referral")
		}
		return ref, err
	}
	ref.PreviousID = prev.String
	ref.Status = gateway.ReferralStatus(status)
	ref.Response, ref.Record, ref.Bundle = rawJSON(resp), rawJSON(rec), rawJSON(bndl)
	return ref, nil
}

var (
	sqlReadReferral = read(`SELECT ` + referralCols + ` FROM referrals r WHERE r.id = ? AND r.institution = ?`)
	sqlReadLatest   = read(`SELECT ` + referralCols + ` FROM referrals r
		WHERE r.institution = ? AND r.case_id = ? ORDER BY r.version DESC LIMIT 1`)
	sqlReferralByID     = query(`SELECT ` + referralCols + ` FROM referrals r WHERE r.id = ?`)
	sqlLockReferralByID = query(`SELECT ` + referralCols + ` FROM referrals r WHERE r.id = ? {FOR UPDATE}`)
	sqlLockReferralOf   = query(`SELECT ` + referralCols + ` FROM referrals r WHERE r.id = ? AND r.institution = ? {FOR UPDATE}`)
	sqlLatestVersion    = query(`SELECT id, version FROM referrals WHERE institution = ? AND case_id = ?
		ORDER BY version DESC LIMIT 1`)
	sqlInsertReferral = query(`INSERT INTO referrals (id, institution, case_id, content_hash, version, previous_id,
		service_id, decision_id, status, record, accepted_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	sqlInsertMessage = query(`INSERT INTO outbox_messages (id, referral_id, institution, case_id, kind, service_id,
		request_id, correlation_id, sender, body, state, due_at, created_at, updated_at, bundle_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	sqlMaxVersion = query(`SELECT MAX(version) FROM referrals WHERE institution = ? AND case_id = ?`)
	sqlSetStatus  = query(`UPDATE referrals SET status = ?, updated_at = ? WHERE id = ?`)
	// A referral is purged when its content is older than the cut-off and
	// nothing of its is still queued; then its messages that are out of
	// the queue lose their content too.
	sqlPurgeReferrals = query(`UPDATE referrals SET record = NULL, response = NULL, purged_at = ?
		WHERE purged_at IS NULL AND updated_at < ? AND NOT EXISTS (
			SELECT 1 FROM outbox_messages q WHERE q.referral_id = referrals.id AND q.state IN ('pending', 'leased'))
		RETURNING id`)
	sqlPurgeMessages = query(`UPDATE outbox_messages SET body = NULL, response = NULL
		WHERE referral_id = ? AND state NOT IN ('pending', 'leased')`)
)

// Accept implements gateway.Referrals. The chain-head lock taken first
// serialises accepts of one institution, so a duplicate waits for the first
// and then finds it; the unique keys are the backstop, and a violation is
// retried as a lookup.
func (db *DB) Accept(ctx context.Context, req gateway.AcceptRequest) (gateway.AcceptResult, error) {
	if err := req.Validate(); err != nil {
		return gateway.AcceptResult{}, err
	}
	var res gateway.AcceptResult
	err := db.write(ctx, db.unique, func(t tx) error {
		res = gateway.AcceptResult{}
		seq, head, err := lockChain(t, req.Institution)
		if err != nil {
			return err
		}
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
		at := utc(req.At)
		kind := gateway.KindNew
		if latestID != "" {
			kind = gateway.KindUpdate
		}
		if _, err := t.exec(sqlInsertReferral,
			id, req.Institution, req.CaseID, req.ContentHash, latestVersion+1, nullString(latestID),
			req.ServiceID, req.Decision.DecisionID, string(gateway.StatusQueued), string(req.Record), t.time(at), t.time(at)); err != nil {
			return err
		}
		dec := req.Decision
		dec.Institution = req.Institution
		if dec.Input != nil {
			in := *dec.Input
			in.ReferralID = id
			dec.Input = &in
		}
		if res.Decision, err = appendDecision(t, dec, seq, head); err != nil {
			return err
		}
		res.Message = newMessage(id, req.Institution, req.CaseID, req.ServiceID, kind, req.Sender, req.Bundle, req.CorrelationID, at)
		if err := insertMessage(t, res.Message); err != nil {
			return err
		}
		res.Referral = gateway.StoredReferral{
			ID: id, Institution: req.Institution, CaseID: req.CaseID, ContentHash: req.ContentHash,
			Version: latestVersion + 1, PreviousID: latestID, ServiceID: req.ServiceID,
			DecisionID: req.Decision.DecisionID, Status: gateway.StatusQueued,
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

// newMessage is a message about to be queued. Its ids are derived from the
// referral and the kind, so a message has the same X-Request-Id on every
// attempt and even after a restore from backup.
func newMessage(referralID, institution, caseID, serviceID string, kind gateway.MessageKind, sender gateway.Sender, body json.RawMessage, correlationID string, at time.Time) gateway.OutboxMessage {
	id := gateway.DeriveID("message", string(kind), referralID)
	reqID := gateway.DeriveID("x-request-id", id)
	if correlationID == "" {
		correlationID = reqID
	}
	return gateway.OutboxMessage{
		ID: id, ReferralID: referralID, Institution: institution, CaseID: caseID, Kind: kind,
		ServiceID: serviceID, RequestID: reqID, CorrelationID: correlationID, Sender: sender, Body: body,
		State: gateway.MessagePending, DueAt: at, CreatedAt: at, UpdatedAt: at,
	}
}

func insertMessage(t tx, m gateway.OutboxMessage) error {
	_, err := t.exec(sqlInsertMessage,
		m.ID, m.ReferralID, m.Institution, m.CaseID, string(m.Kind), m.ServiceID, m.RequestID, m.CorrelationID,
		senderJSON(m.Sender), string(m.Body), string(m.State), t.time(m.CreatedAt), t.time(m.CreatedAt), t.time(m.CreatedAt),
		bundleIDOf(m.Body))
	return err
}

// senderJSON is the sender column: NULL when there is none.
func senderJSON(s gateway.Sender) sql.NullString {
	if len(s.Identifier) == 0 && s.Name == "" {
		return sql.NullString{}
	}
	b, _ := json.Marshal(s) // strings only: cannot fail
	return sql.NullString{String: string(b), Valid: true}
}

// Referral implements gateway.Referrals.
func (db *DB) Referral(ctx context.Context, institution, id string) (gateway.StoredReferral, error) {
	ref, err := scanReferral(db.queryRow(ctx, sqlReadReferral, id, institution))
	return ref, db.mapErr(err)
}

// LatestReferral implements gateway.Referrals.
func (db *DB) LatestReferral(ctx context.Context, institution, caseID string) (gateway.StoredReferral, error) {
	ref, err := scanReferral(db.queryRow(ctx, sqlReadLatest, institution, caseID))
	return ref, db.mapErr(err)
}

// Cancel implements gateway.Referrals. It takes the institution's chain lock
// so that it cannot interleave with an accept of a new version of the case.
func (db *DB) Cancel(ctx context.Context, req gateway.CancelRequest) (gateway.StoredReferral, error) {
	if err := req.Validate(); err != nil {
		return gateway.StoredReferral{}, err
	}
	var ref gateway.StoredReferral
	err := db.write(ctx, nil, func(t tx) error {
		if _, _, err := lockChain(t, req.Institution); err != nil {
			return err
		}
		var err error
		if ref, err = scanReferral(t.queryRow(sqlLockReferralOf, req.ReferralID, req.Institution)); err != nil {
			return err
		}
		switch ref.Status {
		case gateway.StatusCancelled:
			return nil
		case gateway.StatusRejected:
			return gateway.Errorf(gateway.ECONFLICT, "the receiver rejected this referral; there is nothing to cancel")
		}
		var latest int
		if err := t.queryRow(sqlMaxVersion, ref.Institution, ref.CaseID).Scan(&latest); err != nil {
			return err
		}
		if latest != ref.Version {
			return gateway.Errorf(gateway.ECONFLICT, "a later version of this case exists; cancel that one")
		}
		at := utc(req.At)
		m := newMessage(ref.ID, ref.Institution, ref.CaseID, ref.ServiceID, gateway.KindCancel, req.Sender, req.Bundle, req.CorrelationID, at)
		if err := insertMessage(t, m); err != nil {
			return err
		}
		if _, err := t.exec(sqlSetStatus, string(gateway.StatusCancelled), t.time(at), ref.ID); err != nil {
			return err
		}
		ref.Status, ref.UpdatedAt = gateway.StatusCancelled, at
		return db.enqueueWebhooksTx(t, statusEvent(ref.Institution, ref.ID, ref.CaseID, ref.Status, at))
	})
	if err != nil {
		return gateway.StoredReferral{}, err
	}
	return ref, nil
}

// PurgeContent implements gateway.Store: the referrals chosen, then the
// messages of just those referrals, then the decision inputs past retention
// (purgeInputs), in one transaction. (A message put back in the queue by an
// operator meanwhile keeps its body.) Webhook calls delivered before the
// cut-off go too: they hold no content, but would otherwise pile up forever;
// dead ones stay for an operator.
func (db *DB) PurgeContent(ctx context.Context, before, now time.Time) (int, error) {
	var n int
	err := db.write(ctx, nil, func(t tx) error {
		rows, err := t.query(sqlPurgeReferrals, t.time(now), t.time(before))
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := t.exec(sqlPurgeMessages, id); err != nil {
				return err
			}
		}
		n = len(ids)
		if _, err = t.exec(sqlPurgeWebhooks, t.time(before)); err != nil {
			return err
		}
		return purgeInputs(t, before)
	})
	return n, err
}
