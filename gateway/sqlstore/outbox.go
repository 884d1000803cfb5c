package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/student-mh-referrals/gateway/gateway"
)

const messageCols = `id, referral_id, institution, case_id, kind, service_id, request_id, correlation_id, sender,
	%s, state, due_at, attempts, lease_owner, lease_id, last_attempt_at, last_error, response,
	operator_by, operator_reason, operator_at, created_at, updated_at`

// messageColsBody and messageColsNoBody fill messageCols' body column:
// listings leave the clinical content out.
var (
	messageColsBody   = strings.Replace(messageCols, "%s", "body", 1)
	messageColsNoBody = strings.Replace(messageCols, "%s", "NULL", 1)
)

func scanMessage(s scanner) (gateway.OutboxMessage, error) {
	var (
		m                                                      gateway.OutboxMessage
		kind, state                                            string
		sender, body, owner, lease, lastErr, resp, opBy, opWhy sql.NullString
	)
	err := s.Scan(&m.ID, &m.ReferralID, &m.Institution, &m.CaseID, &kind, &m.ServiceID, &m.RequestID, &m.CorrelationID, &sender,
		&body, &state, timeOf{&m.DueAt}, &m.Attempts, &owner, &lease, timeOf{&m.LastAttemptAt}, &lastErr, &resp,
		&opBy, &opWhy, timeOf{&m.OperatorAt}, timeOf{&m.CreatedAt}, timeOf{&m.UpdatedAt})
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return m, gateway.Errorf(gateway.ENOTFOUND, "no such message")
		}
		return m, err
	}
	if sender.Valid {
		// A sender the store cannot read is left out: delivery then names
		// the institution alone.
		_ = json.Unmarshal([]byte(sender.String), &m.Sender)
	}
	m.Kind, m.State = gateway.MessageKind(kind), gateway.MessageState(state)
	m.Body, m.Response = rawJSON(body), rawJSON(resp)
	m.LeaseOwner, m.LeaseID, m.LastError = owner.String, lease.String, lastErr.String
	m.OperatorBy, m.OperatorReason = opBy.String, opWhy.String
	return m, nil
}

var (
	// sqlClaim leases the due messages whose case has no earlier message
	// queued. On SQLite, outbox_due is named: without statistics the
	// planner took outbox_state and read every waiting row, body overflow
	// pages included, on every claim. On PostgreSQL, FOR UPDATE SKIP LOCKED
	// lets claimers in any number of processes take disjoint sets without
	// waiting on each other; a row another claimer has just leased fails
	// the recheck of state and due_at and is skipped.
	sqlClaim = query(`UPDATE outbox_messages SET state = 'leased', due_at = ?, lease_owner = ?, lease_id = ?,
			attempts = attempts + 1, last_attempt_at = ?, updated_at = ?
		WHERE seq IN (
			SELECT o.seq FROM outbox_messages o {INDEXED BY outbox_due}
			WHERE o.state IN ('pending', 'leased') AND o.due_at <= ?
			  AND NOT EXISTS (SELECT 1 FROM outbox_messages e
				WHERE e.institution = o.institution AND e.case_id = o.case_id
				  AND e.seq < o.seq AND e.state IN ('pending', 'leased'))
			ORDER BY o.due_at, o.seq LIMIT ? {FOR UPDATE SKIP LOCKED})
		RETURNING ` + messageColsBody)
	sqlMarkDelivering = query(`UPDATE referrals SET status = 'delivering', updated_at = ?
		WHERE id = ? AND status = 'queued'`)
	sqlRecordAttempt = query(`UPDATE outbox_messages SET state = ?, due_at = ?, last_error = ?,
			response = COALESCE(?, response), updated_at = ?
		WHERE id = ? AND state = 'leased' AND lease_id = ?
		RETURNING referral_id, kind, institution, case_id`)
	sqlMessageExists = query(`SELECT COUNT(*) FROM outbox_messages WHERE id = ?`)
	// sqlTarget reads (and on PostgreSQL locks, with its referral, so that
	// it is ordered against PurgeContent) the message an operator acts on.
	sqlTarget = query(`SELECT m.state, m.due_at, m.referral_id, m.kind, m.body IS NULL OR r.purged_at IS NOT NULL,
			m.institution, m.case_id
		FROM outbox_messages m JOIN referrals r ON r.id = m.referral_id
		WHERE m.id = ? {FOR UPDATE}`)
	sqlOperatorRetry = query(`UPDATE outbox_messages SET state = 'pending', due_at = ?, attempts = 0,
		operator_by = ?, operator_reason = ?, operator_at = ?, updated_at = ? WHERE id = ?`)
	sqlOperatorDrop = query(`UPDATE outbox_messages SET state = 'dropped',
		operator_by = ?, operator_reason = ?, operator_at = ?, updated_at = ? WHERE id = ?`)
	sqlMessage  = read(`SELECT ` + messageColsBody + ` FROM outbox_messages WHERE id = ?`)
	sqlMessages = read(`SELECT ` + messageColsNoBody + ` FROM outbox_messages WHERE state = ? ORDER BY seq LIMIT ?`)
	sqlCounts   = read(`SELECT state, COUNT(*) FROM outbox_messages
		WHERE state IN ('pending', 'leased', 'failed', 'dead') GROUP BY state`)
	// sqlOldestWaiting is one index step (outbox_waiting_created) on
	// SQLite, where the planner would otherwise read every waiting row.
	sqlOldestWaiting = read(`SELECT MIN(created_at) FROM outbox_messages {INDEXED BY outbox_waiting_created}
		WHERE state IN ('pending', 'leased')`)
)

// Claim implements gateway.Outbox.
func (db *DB) Claim(ctx context.Context, owner string, max int, now time.Time, lease time.Duration) ([]gateway.OutboxMessage, error) {
	if owner == "" || max <= 0 || lease <= 0 {
		return nil, gateway.Errorf(gateway.EINVALID, "a claim needs an owner, a positive max and a positive lease")
	}
	now = utc(now)
	var out []gateway.OutboxMessage
	err := db.write(ctx, nil, func(t tx) error {
		out = nil
		var err error
		if out, err = scanAll(scanMessage)(t.query(sqlClaim, t.time(now.Add(lease)), owner, uuid.NewString(), t.time(now), t.time(now), t.time(now), max)); err != nil {
			return err
		}
		// The claimed referrals by id: a lookup by lease_id would scan the
		// whole outbox (no index on it), reading past every body.
		for _, m := range out {
			if m.Kind == gateway.KindCancel {
				continue
			}
			if _, err := t.exec(sqlMarkDelivering, t.time(now), m.ReferralID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Oldest first; RETURNING gives no order.
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// RecordAttempt implements gateway.Outbox.
func (db *DB) RecordAttempt(ctx context.Context, messageID, leaseID string, a gateway.Attempt) error {
	if err := a.Validate(); err != nil {
		return err
	}
	at := utc(a.At)
	next, due := outcomeState(a, at)
	return db.write(ctx, nil, func(t tx) error {
		var ref referralRef
		var kind string
		err := t.queryRow(sqlRecordAttempt, string(next), t.time(due), nullString(a.Error), nullJSON(a.Response), t.time(at),
			messageID, leaseID).Scan(&ref.id, &kind, &ref.institution, &ref.caseID)
		if errors.Is(err, sql.ErrNoRows) {
			var n int
			if err := t.queryRow(sqlMessageExists, messageID).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return gateway.Errorf(gateway.ENOTFOUND, "no such message")
			}
			return gateway.Errorf(gateway.ECONFLICT, "the lease on this message is no longer held")
		} else if err != nil {
			return err
		}
		if status, from := referralStatusAfter(a.Result); kind != string(gateway.KindCancel) && status != "" {
			return setReferralStatus(t, ref, status, from, at)
		}
		return nil
	})
}

// outcomeState is the message state and due time an attempt leaves.
func outcomeState(a gateway.Attempt, at time.Time) (gateway.MessageState, time.Time) {
	switch a.Result {
	case gateway.AttemptRetry:
		return gateway.MessagePending, utc(a.RetryAt)
	case gateway.AttemptDelivered:
		return gateway.MessageDelivered, at
	case gateway.AttemptFailed:
		return gateway.MessageFailed, at
	default:
		return gateway.MessageDead, at
	}
}

// deliveryStatuses are the referral statuses that delivery may change; a
// receiver's response or a cancellation is never overwritten by it.
var deliveryStatuses = []gateway.ReferralStatus{
	gateway.StatusQueued, gateway.StatusDelivering, gateway.StatusDelivered,
	gateway.StatusFailed, gateway.StatusDeadLettered,
}

// referralStatusAfter is the referral status an attempt leads to ("" for
// none) and the statuses it may replace.
func referralStatusAfter(r gateway.AttemptResult) (gateway.ReferralStatus, []gateway.ReferralStatus) {
	switch r {
	case gateway.AttemptDelivered:
		return gateway.StatusDelivered, deliveryStatuses
	case gateway.AttemptFailed:
		return gateway.StatusFailed, deliveryStatuses[:2]
	case gateway.AttemptDeadLettered:
		return gateway.StatusDeadLettered, deliveryStatuses[:2]
	}
	return "", nil
}

// sqlSetStatusIn[n] moves a referral's status from one of n statuses.
var sqlSetStatusIn = func() []string {
	out := []string{""}
	for n := 1; n <= len(deliveryStatuses); n++ {
		out = append(out, query(`UPDATE referrals SET status = ?, updated_at = ? WHERE id = ? AND status IN (?`+
			strings.Repeat(", ?", n-1)+`)`))
	}
	return out
}()

// referralRef names a referral whose status changes: its id, and the
// institution and case id its webhook calls carry.
type referralRef struct{ id, institution, caseID string }

// setReferralStatus moves the referral to status to when it stands at one
// of from (other than to itself) and, when it moved, queues its webhook
// calls in the same transaction.
func setReferralStatus(t tx, ref referralRef, to gateway.ReferralStatus, from []gateway.ReferralStatus, at time.Time) error {
	args := []any{string(to), t.time(at), ref.id}
	for _, s := range from {
		if s != to {
			args = append(args, string(s))
		}
	}
	res, err := t.exec(sqlSetStatusIn[len(args)-3], args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err
	}
	return t.db.enqueueWebhooksTx(t, statusEvent(ref.institution, ref.id, ref.caseID, to, at))
}

// Message implements gateway.Outbox.
func (db *DB) Message(ctx context.Context, id string) (gateway.OutboxMessage, error) {
	m, err := scanMessage(db.queryRow(ctx, sqlMessage, id))
	return m, db.mapErr(err)
}

// Messages implements gateway.Outbox.
func (db *DB) Messages(ctx context.Context, state gateway.MessageState, limit int) ([]gateway.OutboxMessage, error) {
	if limit <= 0 {
		limit = 100
	}
	out, err := scanAll(scanMessage)(db.query(ctx, sqlMessages, string(state), limit))
	return out, db.mapErr(err)
}

// Retry implements gateway.Outbox. The attempt count starts again, so the
// message gets the worker's whole retry budget.
func (db *DB) Retry(ctx context.Context, messageID string, op gateway.OperatorAction) error {
	return db.operate(ctx, messageID, op, func(t tx, m target, at time.Time) error {
		if m.state != gateway.MessageFailed && m.state != gateway.MessageDead {
			return gateway.Errorf(gateway.ECONFLICT, "only a failed or dead message can be retried; this one is %s", m.state)
		}
		if m.purged {
			return gateway.Errorf(gateway.ECONFLICT, "the message's content has been purged; it cannot be sent again")
		}
		if _, err := t.exec(sqlOperatorRetry, t.time(at), op.By, nullString(op.Reason), t.time(at), t.time(at), messageID); err != nil {
			return err
		}
		if m.kind == string(gateway.KindCancel) {
			return nil
		}
		return setReferralStatus(t, m.referral, gateway.StatusDelivering,
			[]gateway.ReferralStatus{gateway.StatusFailed, gateway.StatusDeadLettered}, at)
	})
}

// Drop implements gateway.Outbox. A referral whose message is dropped before
// it was delivered becomes dead-lettered: it will not reach the receiver.
func (db *DB) Drop(ctx context.Context, messageID string, op gateway.OperatorAction) error {
	return db.operate(ctx, messageID, op, func(t tx, m target, at time.Time) error {
		switch {
		case m.state == gateway.MessagePending, m.state == gateway.MessageFailed, m.state == gateway.MessageDead:
		case m.state == gateway.MessageLeased && !m.due.After(at):
			// The worker holding it is gone (its lease ran out).
		case m.state == gateway.MessageLeased:
			return gateway.Errorf(gateway.ECONFLICT, "the message is being delivered; try again when its lease ends")
		default:
			return gateway.Errorf(gateway.ECONFLICT, "a %s message cannot be dropped", m.state)
		}
		if _, err := t.exec(sqlOperatorDrop, op.By, nullString(op.Reason), t.time(at), t.time(at), messageID); err != nil {
			return err
		}
		if m.kind == string(gateway.KindCancel) {
			return nil
		}
		return setReferralStatus(t, m.referral, gateway.StatusDeadLettered, deliveryStatuses[:2], at)
	})
}

// target is the message an operator acts on.
type target struct {
	state    gateway.MessageState
	due      time.Time
	referral referralRef
	kind     string
	purged   bool
}

func (db *DB) operate(ctx context.Context, messageID string, op gateway.OperatorAction,
	fn func(t tx, m target, at time.Time) error) error {
	if op.By == "" || op.At.IsZero() {
		return gateway.Errorf(gateway.EINVALID, "an operator action needs who and when")
	}
	at := utc(op.At)
	return db.write(ctx, nil, func(t tx) error {
		var m target
		var state string
		err := t.queryRow(sqlTarget, messageID).Scan(&state, timeOf{&m.due}, &m.referral.id, &m.kind, &m.purged,
			&m.referral.institution, &m.referral.caseID)
		if errors.Is(err, sql.ErrNoRows) {
			return gateway.Errorf(gateway.ENOTFOUND, "no such message")
		} else if err != nil {
			return err
		}
		m.state = gateway.MessageState(state)
		return fn(t, m, at)
	})
}

// QueueStats implements gateway.Outbox.
func (db *DB) QueueStats(ctx context.Context) (gateway.QueueStats, error) {
	st := gateway.QueueStats{Counts: map[gateway.MessageState]int{
		gateway.MessagePending: 0, gateway.MessageLeased: 0, gateway.MessageFailed: 0, gateway.MessageDead: 0,
	}}
	rows, err := db.query(ctx, sqlCounts)
	if err != nil {
		return st, db.mapErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return st, db.mapErr(err)
		}
		st.Counts[gateway.MessageState(s)] = n
	}
	if err := rows.Err(); err != nil {
		return st, db.mapErr(err)
	}
	err = db.queryRow(ctx, sqlOldestWaiting).Scan(timeOf{&st.OldestPending})
	return st, db.mapErr(err)
}
