package postgres

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/student-mh-referrals/gateway/gateway"
)

const messageCols = `m.id, m.referral_id, m.institution, m.case_id, m.kind, m.service_id, m.request_id, m.correlation_id,
	%s, m.state, m.due_at, m.attempts, m.lease_owner, m.lease_id, m.last_attempt_at, m.last_error, m.response,
	m.operator_by, m.operator_reason, m.operator_at, m.created_at, m.updated_at`

// messageColsBody and messageColsNoBody fill messageCols' body column:
// listings leave the clinical content out.
var (
	messageColsBody   = strings.Replace(messageCols, "%s", "m.body", 1)
	messageColsNoBody = strings.Replace(messageCols, "%s", "NULL::text", 1)
)

func scanMessage(row pgx.Row) (gateway.OutboxMessage, error) {
	var (
		m                                              gateway.OutboxMessage
		kind, state                                    string
		body, owner, lease, lastErr, resp, opBy, opWhy *string
		lastAt, opAt                                   *time.Time
	)
	err := row.Scan(&m.ID, &m.ReferralID, &m.Institution, &m.CaseID, &kind, &m.ServiceID, &m.RequestID, &m.CorrelationID,
		&body, &state, &m.DueAt, &m.Attempts, &owner, &lease, &lastAt, &lastErr, &resp,
		&opBy, &opWhy, &opAt, &m.CreatedAt, &m.UpdatedAt)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return m, gateway.Errorf(gateway.ENOTFOUND, "no such message")
		}
		return m, err
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	m.Kind, m.State = gateway.MessageKind(kind), gateway.MessageState(state)
	m.Body, m.Response = rawJSON(body), rawJSON(resp)
	m.LeaseOwner, m.LeaseID, m.LastError = str(owner), str(lease), str(lastErr)
	m.OperatorBy, m.OperatorReason = str(opBy), str(opWhy)
	m.DueAt, m.CreatedAt, m.UpdatedAt = m.DueAt.UTC(), m.CreatedAt.UTC(), m.UpdatedAt.UTC()
	m.LastAttemptAt, m.OperatorAt = fromNullTime(lastAt), fromNullTime(opAt)
	return m, nil
}

// Claim implements gateway.Outbox. FOR UPDATE SKIP LOCKED lets claimers in
// any number of processes take disjoint sets of due messages without waiting
// on each other; a row another claimer has just leased fails the recheck of
// state and due_at and is skipped.
func (d *DB) Claim(ctx context.Context, owner string, max int, now time.Time, lease time.Duration) ([]gateway.OutboxMessage, error) {
	if owner == "" || max <= 0 || lease <= 0 {
		return nil, gateway.Errorf(gateway.EINVALID, "a claim needs an owner, a positive max and a positive lease")
	}
	now = utc(now)
	var out []gateway.OutboxMessage
	err := d.tx(ctx, nil, func(tx pgx.Tx) error {
		out = nil
		leaseID := uuid.NewString()
		rows, err := tx.Query(ctx, `WITH due AS (
				SELECT o.seq FROM outbox_messages o
				WHERE o.state IN ('pending', 'leased') AND o.due_at <= $1
				  AND NOT EXISTS (SELECT 1 FROM outbox_messages e
					WHERE e.institution = o.institution AND e.case_id = o.case_id
					  AND e.seq < o.seq AND e.state IN ('pending', 'leased'))
				ORDER BY o.due_at, o.seq
				LIMIT $2
				FOR UPDATE OF o SKIP LOCKED
			)
			UPDATE outbox_messages m SET state = 'leased', due_at = $3, lease_owner = $4, lease_id = $5,
				attempts = m.attempts + 1, last_attempt_at = $1, updated_at = $1
			FROM due WHERE m.seq = due.seq
			RETURNING `+messageColsBody,
			now, max, now.Add(lease), owner, leaseID)
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
		if len(out) == 0 {
			return nil
		}
		// The claimed referrals by id: a lookup by lease_id would scan the
		// whole outbox (no index on it) on every claim.
		var ids []string
		for _, m := range out {
			if m.Kind != gateway.KindCancel {
				ids = append(ids, m.ReferralID)
			}
		}
		if len(ids) == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE referrals SET status = 'delivering', updated_at = $1
			WHERE status = 'accepted' AND id = ANY($2)`,
			now, ids)
		return err
	})
	if err != nil {
		return nil, err
	}
	sortMessages(out)
	return out, nil
}

// sortMessages orders a claim oldest first; RETURNING gives no order.
func sortMessages(ms []gateway.OutboxMessage) {
	sort.Slice(ms, func(i, j int) bool {
		if !ms[i].CreatedAt.Equal(ms[j].CreatedAt) {
			return ms[i].CreatedAt.Before(ms[j].CreatedAt)
		}
		return ms[i].ID < ms[j].ID
	})
}

// RecordAttempt implements gateway.Outbox.
func (d *DB) RecordAttempt(ctx context.Context, messageID, leaseID string, a gateway.Attempt) error {
	if err := a.Validate(); err != nil {
		return err
	}
	at := utc(a.At)
	next, due := outcomeState(a, at)
	return d.tx(ctx, nil, func(tx pgx.Tx) error {
		var referralID, kind string
		err := tx.QueryRow(ctx, `UPDATE outbox_messages SET state = $1, due_at = $2, last_error = $3,
				response = COALESCE($4, response), updated_at = $5
			WHERE id = $6 AND state = 'leased' AND lease_id = $7
			RETURNING referral_id, kind`,
			string(next), due, nullString(a.Error), nullJSON(a.Response), at, messageID, leaseID).Scan(&referralID, &kind)
		if errors.Is(err, pgx.ErrNoRows) {
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM outbox_messages WHERE id = $1`, messageID).Scan(&n); err != nil {
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
			return setReferralStatus(ctx, tx, referralID, status, from, at)
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
var deliveryStatuses = []string{
	string(gateway.StatusAccepted), string(gateway.StatusDelivering), string(gateway.StatusDelivered),
	string(gateway.StatusFailed), string(gateway.StatusDeadLettered),
}

// referralStatusAfter is the referral status an attempt leads to ("" for
// none) and the statuses it may replace.
func referralStatusAfter(r gateway.AttemptResult) (gateway.ReferralStatus, []string) {
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

func setReferralStatus(ctx context.Context, tx pgx.Tx, id string, to gateway.ReferralStatus, from []string, at time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE referrals SET status = $1, updated_at = $2 WHERE id = $3 AND status = ANY($4)`,
		string(to), at, id, from)
	return err
}

// Message implements gateway.Outbox.
func (d *DB) Message(ctx context.Context, id string) (gateway.OutboxMessage, error) {
	m, err := scanMessage(d.pool.QueryRow(ctx, `SELECT `+messageColsBody+` FROM outbox_messages m WHERE m.id = $1`, id))
	return m, mapErr(err)
}

// Messages implements gateway.Outbox.
func (d *DB) Messages(ctx context.Context, state gateway.MessageState, limit int) ([]gateway.OutboxMessage, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := d.pool.Query(ctx, `SELECT `+messageColsNoBody+` FROM outbox_messages m
		WHERE m.state = $1 ORDER BY m.seq LIMIT $2`, string(state), limit)
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
	return d.operate(ctx, messageID, op, func(tx pgx.Tx, m target, at time.Time) error {
		if m.state != gateway.MessageFailed && m.state != gateway.MessageDead {
			return gateway.Errorf(gateway.ECONFLICT, "only a failed or dead message can be retried; this one is %s", m.state)
		}
		if m.purged {
			return gateway.Errorf(gateway.ECONFLICT, "the message's content has been purged; it cannot be sent again")
		}
		if _, err := tx.Exec(ctx, `UPDATE outbox_messages SET state = 'pending', due_at = $1, attempts = 0,
				operator_by = $2, operator_reason = $3, operator_at = $1, updated_at = $1 WHERE id = $4`,
			at, op.By, nullString(op.Reason), messageID); err != nil {
			return err
		}
		if m.kind == string(gateway.KindCancel) {
			return nil
		}
		return setReferralStatus(ctx, tx, m.referralID, gateway.StatusDelivering,
			[]string{string(gateway.StatusFailed), string(gateway.StatusDeadLettered)}, at)
	})
}

// Drop implements gateway.Outbox. A referral whose message is dropped before
// it was delivered becomes dead-lettered: it will not reach the receiver.
func (d *DB) Drop(ctx context.Context, messageID string, op gateway.OperatorAction) error {
	return d.operate(ctx, messageID, op, func(tx pgx.Tx, m target, at time.Time) error {
		switch {
		case m.state == gateway.MessagePending, m.state == gateway.MessageFailed, m.state == gateway.MessageDead:
		case m.state == gateway.MessageLeased && !m.due.After(at):
			// The worker holding it is gone (its lease ran out).
		case m.state == gateway.MessageLeased:
			return gateway.Errorf(gateway.ECONFLICT, "the message is being delivered; try again when its lease ends")
		default:
			return gateway.Errorf(gateway.ECONFLICT, "a %s message cannot be dropped", m.state)
		}
		if _, err := tx.Exec(ctx, `UPDATE outbox_messages SET state = 'dropped',
				operator_by = $1, operator_reason = $2, operator_at = $3, updated_at = $3 WHERE id = $4`,
			op.By, nullString(op.Reason), at, messageID); err != nil {
			return err
		}
		if m.kind == string(gateway.KindCancel) {
			return nil
		}
		return setReferralStatus(ctx, tx, m.referralID, gateway.StatusDeadLettered, deliveryStatuses[:2], at)
	})
}

// target is the message an operator acts on, locked.
type target struct {
	state      gateway.MessageState
	due        time.Time
	referralID string
	kind       string
	purged     bool
}

func (d *DB) operate(ctx context.Context, messageID string, op gateway.OperatorAction,
	fn func(tx pgx.Tx, m target, at time.Time) error) error {
	if op.By == "" || op.At.IsZero() {
		return gateway.Errorf(gateway.EINVALID, "an operator action needs who and when")
	}
	at := utc(op.At)
	return d.tx(ctx, nil, func(tx pgx.Tx) error {
		var m target
		var state string
		// Locking the referral too orders this against PurgeContent.
		err := tx.QueryRow(ctx, `SELECT m.state, m.due_at, m.referral_id, m.kind, m.body IS NULL OR r.purged_at IS NOT NULL
			FROM outbox_messages m JOIN referrals r ON r.id = m.referral_id
			WHERE m.id = $1 FOR UPDATE`, messageID).
			Scan(&state, &m.due, &m.referralID, &m.kind, &m.purged)
		if errors.Is(err, pgx.ErrNoRows) {
			return gateway.Errorf(gateway.ENOTFOUND, "no such message")
		} else if err != nil {
			return err
		}
		m.state = gateway.MessageState(state)
		return fn(tx, m, at)
	})
}

// QueueStats implements gateway.Outbox.
func (d *DB) QueueStats(ctx context.Context) (gateway.QueueStats, error) {
	st := gateway.QueueStats{Counts: map[gateway.MessageState]int{
		gateway.MessagePending: 0, gateway.MessageLeased: 0, gateway.MessageFailed: 0, gateway.MessageDead: 0,
	}}
	rows, err := d.pool.Query(ctx, `SELECT state, COUNT(*) FROM outbox_messages
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
	var oldest *time.Time
	if err := d.pool.QueryRow(ctx, `SELECT MIN(created_at) FROM outbox_messages WHERE state IN ('pending', 'leased')`).
		Scan(&oldest); err != nil {
		return st, mapErr(err)
	}
	st.OldestPending = fromNullTime(oldest)
	return st, nil
}
