package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/student-mh-referrals/gateway/gateway"
)

// referralCols reads a referral; its bundle is the body of its new or update
// message, so the Bundle is stored once.
const referralCols = `r.id, r.institution, r.case_id, r.content_hash, r.version, r.previous_id,
	r.service_id, r.decision_id, r.status, r.response, r.record,
	(SELECT o.body FROM outbox_messages o WHERE o.referral_id = r.id AND o.kind <> 'cancel'),
	r.accepted_at, r.updated_at, r.purged_at`

func scanReferral(row pgx.Row) (gateway.StoredReferral, error) {
	var (
		ref                   gateway.StoredReferral
		prev, resp, rec, bndl *string
		status                string
		purged                *time.Time
	)
	err := row.Scan(&ref.ID, &ref.Institution, &ref.CaseID, &ref.ContentHash, &ref.Version, &prev,
		&ref.ServiceID, &ref.DecisionID, &status, &resp, &rec, &bndl, &ref.AcceptedAt, &ref.UpdatedAt, &purged)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return ref, gateway.Errorf(gateway.ENOTFOUND, "no such referral")
		}
		return ref, err
	}
	if prev != nil {
		ref.PreviousID = *prev
	}
	ref.Status = gateway.ReferralStatus(status)
	ref.Response, ref.Record, ref.Bundle = rawJSON(resp), rawJSON(rec), rawJSON(bndl)
	ref.AcceptedAt, ref.UpdatedAt, ref.PurgedAt = ref.AcceptedAt.UTC(), ref.UpdatedAt.UTC(), fromNullTime(purged)
	return ref, nil
}

// Accept implements gateway.Referrals. The chain-head lock taken first
// serialises accepts of one institution, so a duplicate waits for the first
// and then finds it; the unique keys are the backstop, and a violation is
// retried as a lookup.
func (d *DB) Accept(ctx context.Context, req gateway.AcceptRequest) (gateway.AcceptResult, error) {
	if err := req.Validate(); err != nil {
		return gateway.AcceptResult{}, err
	}
	var res gateway.AcceptResult
	err := d.tx(ctx, isUnique, func(tx pgx.Tx) error {
		res = gateway.AcceptResult{}
		seq, head, err := lockChain(ctx, tx, req.Institution)
		if err != nil {
			return err
		}
		id := gateway.ReferralID(req.Institution, req.CaseID, req.ContentHash)
		existing, err := scanReferral(tx.QueryRow(ctx, `SELECT `+referralCols+` FROM referrals r WHERE r.id = $1`, id))
		if err == nil {
			res.Referral = existing
			return nil
		} else if gateway.ErrorCode(err) != gateway.ENOTFOUND {
			return err
		}
		var latestID string
		var latestVersion int
		err = tx.QueryRow(ctx, `SELECT id, version FROM referrals WHERE institution = $1 AND case_id = $2
			ORDER BY version DESC LIMIT 1`, req.Institution, req.CaseID).Scan(&latestID, &latestVersion)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
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
		dec := req.Decision
		dec.Institution = req.Institution
		dec = chainRecord(dec, seq, head)
		msg := newMessage(id, req.Institution, req.CaseID, req.ServiceID, kind, req.Bundle, req.CorrelationID, at)
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO referrals (id, institution, case_id, content_hash, version, previous_id,
			service_id, decision_id, status, record, accepted_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)`,
			id, req.Institution, req.CaseID, req.ContentHash, latestVersion+1, nullString(latestID),
			req.ServiceID, req.Decision.DecisionID, string(gateway.StatusAccepted), string(req.Record), at)
		queueDecision(b, dec)
		queueMessage(b, msg)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		res.Referral = gateway.StoredReferral{
			ID: id, Institution: req.Institution, CaseID: req.CaseID, ContentHash: req.ContentHash,
			Version: latestVersion + 1, PreviousID: latestID, ServiceID: req.ServiceID,
			DecisionID: req.Decision.DecisionID, Status: gateway.StatusAccepted,
			Record: req.Record, Bundle: req.Bundle, AcceptedAt: at, UpdatedAt: at,
		}
		res.Created, res.Decision, res.Message = true, dec, msg
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
func newMessage(referralID, institution, caseID, serviceID string, kind gateway.MessageKind, body json.RawMessage, correlationID string, at time.Time) gateway.OutboxMessage {
	id := gateway.DeriveID("message", string(kind), referralID)
	reqID := gateway.DeriveID("x-request-id", id)
	if correlationID == "" {
		correlationID = reqID
	}
	return gateway.OutboxMessage{
		ID: id, ReferralID: referralID, Institution: institution, CaseID: caseID, Kind: kind,
		ServiceID: serviceID, RequestID: reqID, CorrelationID: correlationID, Body: body,
		State: gateway.MessagePending, DueAt: at, CreatedAt: at, UpdatedAt: at,
	}
}

func queueMessage(b *pgx.Batch, m gateway.OutboxMessage) {
	b.Queue(`INSERT INTO outbox_messages (id, referral_id, institution, case_id, kind, service_id,
		request_id, correlation_id, body, state, due_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $11)`,
		m.ID, m.ReferralID, m.Institution, m.CaseID, string(m.Kind), m.ServiceID, m.RequestID, m.CorrelationID,
		string(m.Body), string(m.State), m.CreatedAt)
}

// Referral implements gateway.Referrals.
func (d *DB) Referral(ctx context.Context, institution, id string) (gateway.StoredReferral, error) {
	ref, err := scanReferral(d.pool.QueryRow(ctx, `SELECT `+referralCols+` FROM referrals r
		WHERE r.id = $1 AND r.institution = $2`, id, institution))
	return ref, mapErr(err)
}

// LatestReferral implements gateway.Referrals.
func (d *DB) LatestReferral(ctx context.Context, institution, caseID string) (gateway.StoredReferral, error) {
	ref, err := scanReferral(d.pool.QueryRow(ctx, `SELECT `+referralCols+` FROM referrals r
		WHERE r.institution = $1 AND r.case_id = $2 ORDER BY r.version DESC LIMIT 1`, institution, caseID))
	return ref, mapErr(err)
}

// RecordResponse implements gateway.Referrals.
func (d *DB) RecordResponse(ctx context.Context, referralID string, status gateway.ReferralStatus, response json.RawMessage, at time.Time) (gateway.StoredReferral, error) {
	if status != gateway.StatusAcknowledged && status != gateway.StatusRejected {
		return gateway.StoredReferral{}, gateway.Errorf(gateway.EINVALID, "a response sets acknowledged or rejected, not %q", status)
	}
	if (response != nil && !json.Valid(response)) || at.IsZero() {
		return gateway.StoredReferral{}, gateway.Errorf(gateway.EINVALID, "a response needs a time and a JSON message")
	}
	var ref gateway.StoredReferral
	err := d.tx(ctx, nil, func(tx pgx.Tx) error {
		var err error
		if ref, err = scanReferral(tx.QueryRow(ctx, `SELECT `+referralCols+` FROM referrals r WHERE r.id = $1 FOR UPDATE OF r`, referralID)); err != nil {
			return err
		}
		if ref.Status == gateway.StatusCancelled || ref.Status == gateway.StatusRejected {
			return gateway.Errorf(gateway.ECONFLICT, "the referral is %s", ref.Status)
		}
		at := utc(at)
		if _, err := tx.Exec(ctx, `UPDATE referrals SET status = $1, response = $2, updated_at = $3 WHERE id = $4`,
			string(status), nullJSON(response), at, referralID); err != nil {
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

// Cancel implements gateway.Referrals. It takes the institution's chain lock
// so that it cannot interleave with an accept of a new version of the case.
func (d *DB) Cancel(ctx context.Context, req gateway.CancelRequest) (gateway.StoredReferral, error) {
	if err := req.Validate(); err != nil {
		return gateway.StoredReferral{}, err
	}
	var ref gateway.StoredReferral
	err := d.tx(ctx, nil, func(tx pgx.Tx) error {
		if _, _, err := lockChain(ctx, tx, req.Institution); err != nil {
			return err
		}
		var err error
		ref, err = scanReferral(tx.QueryRow(ctx, `SELECT `+referralCols+` FROM referrals r WHERE r.id = $1 AND r.institution = $2 FOR UPDATE OF r`,
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
		if err := tx.QueryRow(ctx, `SELECT MAX(version) FROM referrals WHERE institution = $1 AND case_id = $2`,
			ref.Institution, ref.CaseID).Scan(&latest); err != nil {
			return err
		}
		if latest != ref.Version {
			return gateway.Errorf(gateway.ECONFLICT, "a later version of this case exists; cancel that one")
		}
		at := utc(req.At)
		b := &pgx.Batch{}
		queueMessage(b, newMessage(ref.ID, ref.Institution, ref.CaseID, ref.ServiceID, gateway.KindCancel, req.Bundle, req.CorrelationID, at))
		b.Queue(`UPDATE referrals SET status = $1, updated_at = $2 WHERE id = $3`, string(gateway.StatusCancelled), at, ref.ID)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
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

// PurgeContent implements gateway.Store, in one statement so that the
// referrals chosen and the messages cleared are the same set. (A message
// put back in the queue by an operator meanwhile keeps its body.)
func (d *DB) PurgeContent(ctx context.Context, before, now time.Time) (int, error) {
	var n int
	err := d.tx(ctx, nil, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `WITH p AS (
				UPDATE referrals r SET record = NULL, response = NULL, purged_at = $2
				WHERE r.purged_at IS NULL AND r.updated_at < $1 AND NOT EXISTS (
					SELECT 1 FROM outbox_messages q WHERE q.referral_id = r.id AND q.state IN ('pending', 'leased'))
				RETURNING r.id
			), m AS (
				UPDATE outbox_messages o SET body = NULL, response = NULL FROM p
				WHERE o.referral_id = p.id AND o.state NOT IN ('pending', 'leased')
			)
			SELECT COUNT(*) FROM p`, utc(before), utc(now)).Scan(&n)
	})
	return n, err
}
