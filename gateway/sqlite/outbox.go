package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/student-mh-referrals/gateway/gateway"
)

const messageCols = `id, referral_id, institution, case_id, kind, service_id, request_id, correlation_id,
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
		m                                              gateway.OutboxMessage
		kind, state                                    string
		body, owner, lease, lastErr, resp, opBy, opWhy sql.NullString
		due, created, updated                          int64
		lastAt, opAt                                   sql.NullInt64
	)
	err := s.Scan(&m.ID, &m.ReferralID, &m.Institution, &m.CaseID, &kind, &m.ServiceID, &m.RequestID, &m.CorrelationID,
		&body, &state, &due, &m.Attempts, &owner, &lease, &lastAt, &lastErr, &resp,
		&opBy, &opWhy, &opAt, &created, &updated)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return m, gateway.Errorf(gateway.ENOTFOUND, "no such message")
		}
		return m, err
	}
	m.Kind, m.State = gateway.MessageKind(kind), gateway.MessageState(state)
	m.Body, m.Response = rawJSON(body), rawJSON(resp)
	m.LeaseOwner, m.LeaseID, m.LastError = owner.String, lease.String, lastErr.String
	m.OperatorBy, m.OperatorReason = opBy.String, opWhy.String
	m.DueAt, m.CreatedAt, m.UpdatedAt = fromMicros(due), fromMicros(created), fromMicros(updated)
	m.LastAttemptAt, m.OperatorAt = fromNullMicros(lastAt), fromNullMicros(opAt)
	return m, nil
}

// Claim implements gateway.Outbox. SQLite has one writer, so the claim is a
// plain write transaction: no two claims can see the same message as due.
// The due messages are found through outbox_due (INDEXED BY: without
// statistics the planner took outbox_state and read every waiting row,
// body overflow pages included, on every claim).
func (d *DB) Claim(ctx context.Context, owner string, max int, now time.Time, lease time.Duration) ([]gateway.OutboxMessage, error) {
	if owner == "" || max <= 0 || lease <= 0 {
		return nil, gateway.Errorf(gateway.EINVALID, "a claim needs an owner, a positive max and a positive lease")
	}
	now = now.UTC().Truncate(time.Microsecond)
	var out []gateway.OutboxMessage
	err := d.write(ctx, func(t wtx) error {
		out = nil
		leaseID := uuid.NewString()
		rows, err := t.query(sqlClaim,
			toMicros(now.Add(lease)), owner, leaseID, toMicros(now), toMicros(now), toMicros(now), max)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			m, err := scanMessage(rows)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		// The claimed referrals by id: a lookup by lease_id would scan the
		// whole outbox (no index on it), reading past every body.
		for _, m := range out {
			if m.Kind == gateway.KindCancel {
				continue
			}
			if _, err := t.exec(sqlMarkDelivering, toMicros(now), m.ReferralID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortMessages(out)
	return out, nil
}

// RecordAttempt implements gateway.Outbox.
func (d *DB) RecordAttempt(ctx context.Context, messageID, leaseID string, a gateway.Attempt) error {
	if err := a.Validate(); err != nil {
		return err
	}
	at := a.At.UTC().Truncate(time.Microsecond)
	return d.write(ctx, func(t wtx) error {
		var state, lease, referralID, kind string
		err := t.queryRow(sqlLeaseOf,
			messageID).Scan(&state, &lease, &referralID, &kind)
		if errors.Is(err, sql.ErrNoRows) {
			return gateway.Errorf(gateway.ENOTFOUND, "no such message")
		} else if err != nil {
			return err
		}
		if state != string(gateway.MessageLeased) || lease != leaseID {
			return gateway.Errorf(gateway.ECONFLICT, "the lease on this message is no longer held")
		}
		next, due := outcomeState(a, at)
		if _, err := t.exec(sqlRecordAttempt,
			next, toMicros(due), nullString(a.Error), nullJSON(a.Response), toMicros(at), messageID); err != nil {
			return err
		}
		if status, from := referralStatusAfter(a.Result); kind != string(gateway.KindCancel) && status != "" {
			return setReferralStatus(t, referralID, status, from, at)
		}
		return nil
	})
}

// outcomeState is the message state and due time an attempt leaves.
func outcomeState(a gateway.Attempt, at time.Time) (gateway.MessageState, time.Time) {
	switch a.Result {
	case gateway.AttemptRetry:
		return gateway.MessagePending, a.RetryAt.UTC().Truncate(time.Microsecond)
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
	gateway.StatusAccepted, gateway.StatusDelivering, gateway.StatusDelivered,
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

func setReferralStatus(t wtx, id string, to gateway.ReferralStatus, from []gateway.ReferralStatus, at time.Time) error {
	args := []any{to, toMicros(at), id}
	for _, s := range from {
		args = append(args, s)
	}
	_, err := t.exec(sqlSetStatusIn(len(from)), args...)
	return err
}

// setStatusIn holds the status updates for one to five "from" statuses,
// prepared at Open: every recorded delivery runs one.
var setStatusIn = func() []string {
	out := []string{""}
	for n := 1; n <= len(deliveryStatuses); n++ {
		out = append(out, prepared(`UPDATE referrals SET status = ?, updated_at = ? WHERE id = ? AND status IN (?`+
			strings.Repeat(", ?", n-1)+`)`))
	}
	return out
}()

// sqlSetStatusIn is the status update with n "from" statuses.
func sqlSetStatusIn(n int) string {
	if n > 0 && n < len(setStatusIn) {
		return setStatusIn[n]
	}
	if n <= 0 {
		return `UPDATE referrals SET status = ?, updated_at = ? WHERE id = ? AND 0`
	}
	return `UPDATE referrals SET status = ?, updated_at = ? WHERE id = ? AND status IN (?` + strings.Repeat(", ?", n-1) + `)`
}

// Message implements gateway.Outbox.
func (d *DB) Message(ctx context.Context, id string) (gateway.OutboxMessage, error) {
	m, err := scanMessage(d.r.QueryRowContext(ctx, `SELECT `+messageColsBody+` FROM outbox_messages WHERE id = ?`, id))
	return m, mapErr(err)
}

// Messages implements gateway.Outbox.
func (d *DB) Messages(ctx context.Context, state gateway.MessageState, limit int) ([]gateway.OutboxMessage, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := d.r.QueryContext(ctx, `SELECT `+messageColsNoBody+` FROM outbox_messages
		WHERE state = ? ORDER BY seq LIMIT ?`, state, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []gateway.OutboxMessage
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, mapErr(err)
		}
		out = append(out, m)
	}
	return out, mapErr(rows.Err())
}

// Retry implements gateway.Outbox. The attempt count starts again, so the
// message gets the worker's whole retry budget.
func (d *DB) Retry(ctx context.Context, messageID string, op gateway.OperatorAction) error {
	return d.operate(ctx, messageID, op, func(t wtx, m target, at time.Time) error {
		if m.state != gateway.MessageFailed && m.state != gateway.MessageDead {
			return gateway.Errorf(gateway.ECONFLICT, "only a failed or dead message can be retried; this one is %s", m.state)
		}
		if m.purged {
			return gateway.Errorf(gateway.ECONFLICT, "the message's content has been purged; it cannot be sent again")
		}
		if _, err := t.exec(sqlOperatorRetry,
			toMicros(at), op.By, nullString(op.Reason), toMicros(at), toMicros(at), messageID); err != nil {
			return err
		}
		if m.kind == string(gateway.KindCancel) {
			return nil
		}
		return setReferralStatus(t, m.referralID, gateway.StatusDelivering,
			[]gateway.ReferralStatus{gateway.StatusFailed, gateway.StatusDeadLettered}, at)
	})
}

// Drop implements gateway.Outbox. A referral whose message is dropped before
// it was delivered becomes dead-lettered: it will not reach the receiver.
func (d *DB) Drop(ctx context.Context, messageID string, op gateway.OperatorAction) error {
	return d.operate(ctx, messageID, op, func(t wtx, m target, at time.Time) error {
		switch {
		case m.state == gateway.MessagePending, m.state == gateway.MessageFailed, m.state == gateway.MessageDead:
		case m.state == gateway.MessageLeased && !m.due.After(at):
			// The worker holding it is gone (its lease ran out).
		case m.state == gateway.MessageLeased:
			return gateway.Errorf(gateway.ECONFLICT, "the message is being delivered; try again when its lease ends")
		default:
			return gateway.Errorf(gateway.ECONFLICT, "a %s message cannot be dropped", m.state)
		}
		if _, err := t.exec(sqlOperatorDrop,
			op.By, nullString(op.Reason), toMicros(at), toMicros(at), messageID); err != nil {
			return err
		}
		if m.kind == string(gateway.KindCancel) {
			return nil
		}
		return setReferralStatus(t, m.referralID, gateway.StatusDeadLettered, deliveryStatuses[:2], at)
	})
}

// target is the message an operator acts on.
type target struct {
	state      gateway.MessageState
	due        time.Time
	referralID string
	kind       string
	purged     bool
}

func (d *DB) operate(ctx context.Context, messageID string, op gateway.OperatorAction,
	fn func(t wtx, m target, at time.Time) error) error {
	if op.By == "" || op.At.IsZero() {
		return gateway.Errorf(gateway.EINVALID, "an operator action needs who and when")
	}
	at := op.At.UTC().Truncate(time.Microsecond)
	return d.write(ctx, func(t wtx) error {
		var m target
		var state string
		var due int64
		err := t.queryRow(sqlMessageState, messageID).Scan(&state, &due, &m.referralID, &m.kind, &m.purged)
		if errors.Is(err, sql.ErrNoRows) {
			return gateway.Errorf(gateway.ENOTFOUND, "no such message")
		} else if err != nil {
			return err
		}
		m.state, m.due = gateway.MessageState(state), fromMicros(due)
		return fn(t, m, at)
	})
}

// QueueStats implements gateway.Outbox.
func (d *DB) QueueStats(ctx context.Context) (gateway.QueueStats, error) {
	st := gateway.QueueStats{Counts: map[gateway.MessageState]int{
		gateway.MessagePending: 0, gateway.MessageLeased: 0, gateway.MessageFailed: 0, gateway.MessageDead: 0,
	}}
	rows, err := d.r.QueryContext(ctx, `SELECT state, COUNT(*) FROM outbox_messages
		WHERE state IN ('pending', 'leased', 'failed', 'dead') GROUP BY state`)
	if err != nil {
		return st, mapErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return st, mapErr(err)
		}
		st.Counts[gateway.MessageState(s)] = n
	}
	if err := rows.Err(); err != nil {
		return st, mapErr(err)
	}
	var oldest sql.NullInt64
	if err := d.r.QueryRowContext(ctx, sqlOldestWaiting).
		Scan(&oldest); err != nil {
		return st, mapErr(err)
	}
	st.OldestPending = fromNullMicros(oldest)
	return st, nil
}

// sqlOldestWaiting finds the oldest waiting message in one index step
// (migration 0002).
const sqlOldestWaiting = `SELECT MIN(created_at) FROM outbox_messages INDEXED BY outbox_waiting_created
		WHERE state IN ('pending', 'leased')`

// sortMessages orders a claim oldest first; RETURNING gives no order.
func sortMessages(ms []gateway.OutboxMessage) {
	sort.Slice(ms, func(i, j int) bool {
		if !ms[i].CreatedAt.Equal(ms[j].CreatedAt) {
			return ms[i].CreatedAt.Before(ms[j].CreatedAt)
		}
		return ms[i].ID < ms[j].ID
	})
}

// Write statements, prepared at Open.
var (
	sqlClaim = prepared(`UPDATE outbox_messages SET state = 'leased', due_at = ?, lease_owner = ?, lease_id = ?,
				attempts = attempts + 1, last_attempt_at = ?, updated_at = ?
			WHERE seq IN (
				SELECT o.seq FROM outbox_messages o INDEXED BY outbox_due
				WHERE o.state IN ('pending', 'leased') AND o.due_at <= ?
				  AND NOT EXISTS (SELECT 1 FROM outbox_messages e
					WHERE e.institution = o.institution AND e.case_id = o.case_id
					  AND e.seq < o.seq AND e.state IN ('pending', 'leased'))
				ORDER BY o.due_at, o.seq LIMIT ?)
			RETURNING ` + messageColsBody)
	sqlMarkDelivering = prepared(`UPDATE referrals SET status = 'delivering', updated_at = ?
			WHERE id = ? AND status = 'accepted'`)
	sqlLeaseOf       = prepared(`SELECT state, COALESCE(lease_id, ''), referral_id, kind FROM outbox_messages WHERE id = ?`)
	sqlRecordAttempt = prepared(`UPDATE outbox_messages SET state = ?, due_at = ?, last_error = ?,
				response = COALESCE(?, response), updated_at = ? WHERE id = ?`)
	sqlOperatorRetry = prepared(`UPDATE outbox_messages SET state = 'pending', due_at = ?, attempts = 0,
				operator_by = ?, operator_reason = ?, operator_at = ?, updated_at = ? WHERE id = ?`)
	sqlOperatorDrop = prepared(`UPDATE outbox_messages SET state = 'dropped',
				operator_by = ?, operator_reason = ?, operator_at = ?, updated_at = ? WHERE id = ?`)
	sqlMessageState = prepared(`SELECT state, due_at, referral_id, kind, body IS NULL FROM outbox_messages WHERE id = ?`)
)
