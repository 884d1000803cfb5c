package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/student-mh-referrals/gateway/gateway"
)

var _ gateway.Webhooks = (*DB)(nil)

// SetWebhookClients names, by institution, the clients with a webhook: the
// store queues a call for each of them in every transaction that changes
// one of the institution's referrals. Call it before the store serves; nil
// (the default) queues nothing.
func (db *DB) SetWebhookClients(subs map[string][]gateway.WebhookSubscriber) { db.webhooks = subs }

const webhookCols = `id, client_id, institution, referral_id, case_id, event, status, at, state, attempts,
	next_attempt_at, lease_id, last_error_class, created_at, delivered_at`

func scanWebhook(s scanner) (gateway.WebhookCall, error) {
	var (
		c             gateway.WebhookCall
		state         string
		lease, errCls sql.NullString
	)
	err := s.Scan(&c.ID, &c.ClientID, &c.Institution, &c.ReferralID, &c.CaseID, &c.Event, &c.Status, timeOf{&c.At},
		&state, &c.Attempts, timeOf{&c.NextAttemptAt}, &lease, &errCls, timeOf{&c.CreatedAt}, timeOf{&c.DeliveredAt})
	c.State, c.LeaseID, c.LastErrorClass = gateway.WebhookState(state), lease.String, errCls.String
	return c, err
}

var (
	sqlInsertWebhook = query(`INSERT INTO webhook_calls (id, client_id, institution, referral_id, case_id, event, status,
		at, payload, next_attempt_at, state, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT (id) DO NOTHING`)
	// sqlClaimWebhooks leases due calls as sqlClaim leases messages: on
	// PostgreSQL, FOR UPDATE SKIP LOCKED keeps concurrent dispatchers apart.
	sqlClaimWebhooks = query(`UPDATE webhook_calls SET next_attempt_at = ?, lease_id = ?, attempts = attempts + 1, updated_at = ?
		WHERE seq IN (
			SELECT w.seq FROM webhook_calls w WHERE w.state = 'pending' AND w.next_attempt_at <= ?
			ORDER BY w.next_attempt_at, w.seq LIMIT ? {FOR UPDATE SKIP LOCKED})
		RETURNING ` + webhookCols)
	sqlFinishWebhook = query(`UPDATE webhook_calls SET state = ?, next_attempt_at = ?, last_error_class = ?,
			delivered_at = ?, lease_id = NULL, updated_at = ?
		WHERE id = ? AND state = 'pending' AND lease_id = ?`)
	sqlWebhookState   = query(`SELECT state FROM webhook_calls WHERE id = ? {FOR UPDATE}`)
	sqlRequeueWebhook = query(`UPDATE webhook_calls SET state = 'pending', next_attempt_at = ?, attempts = 0,
		lease_id = NULL, updated_at = ? WHERE id = ? AND state = 'dead'`)
	sqlDeadWebhooks = read(`SELECT ` + webhookCols + ` FROM webhook_calls
		WHERE state = 'dead' AND (? = '' OR institution = ?) ORDER BY seq LIMIT ?`)
	sqlPurgeWebhooks = query(`DELETE FROM webhook_calls WHERE state = 'delivered' AND delivered_at < ?`)
	// sqlWebhookCounts counts each state on its partial index, not by
	// reading the delivered calls too.
	sqlWebhookCounts = read(`SELECT (SELECT COUNT(*) FROM webhook_calls WHERE state = 'pending'),
		(SELECT COUNT(*) FROM webhook_calls WHERE state = 'dead')`)
)

// enqueueWebhooksTx queues, in t, a call of e for each client of e's
// institution that subscribes to its event type. Every change the store
// makes to a referral's status calls it in the changing transaction (and so
// may the return path's steps), so that the call is durable exactly when
// the change is. A status a university need not hear of (WebhookStatuses)
// queues nothing.
func (db *DB) enqueueWebhooksTx(t tx, e gateway.WebhookEvent) error {
	subs := db.webhooks[e.Institution]
	if len(subs) == 0 {
		return nil
	}
	if e.Event == gateway.WebhookEventStatus && !slices.Contains(gateway.WebhookStatuses, gateway.ReferralStatus(e.Status)) {
		return nil
	}
	at := utc(e.At)
	for _, s := range subs {
		if len(s.Events) > 0 && !slices.Contains(s.Events, e.Event) {
			continue
		}
		c := gateway.WebhookCall{ID: gateway.WebhookID(s.ClientID, e), ClientID: s.ClientID, Institution: e.Institution,
			ReferralID: e.ReferralID, CaseID: e.CaseID, Event: e.Event, Status: e.Status, At: at}
		if _, err := t.exec(sqlInsertWebhook, c.ID, c.ClientID, c.Institution, c.ReferralID, c.CaseID, c.Event, c.Status,
			t.time(at), string(c.Body(0)), t.time(at), t.time(at), t.time(at)); err != nil {
			return err
		}
	}
	return nil
}

// statusEvent is the webhook event of a referral's new status.
func statusEvent(institution, referralID, caseID string, status gateway.ReferralStatus, at time.Time) gateway.WebhookEvent {
	return gateway.WebhookEvent{Institution: institution, ReferralID: referralID, CaseID: caseID,
		Event: gateway.WebhookEventStatus, Status: string(status), At: at}
}

// EnqueueWebhooks implements gateway.Webhooks.
func (db *DB) EnqueueWebhooks(ctx context.Context, e gateway.WebhookEvent) error {
	if e.Institution == "" || e.ReferralID == "" || e.Event == "" || e.Status == "" || e.At.IsZero() {
		return gateway.Errorf(gateway.EINVALID, "a webhook event needs an institution, a referral, an event, a status and a time")
	}
	return db.write(ctx, nil, func(t tx) error { return db.enqueueWebhooksTx(t, e) })
}

// ClaimWebhooks implements gateway.Webhooks.
func (db *DB) ClaimWebhooks(ctx context.Context, max int, now time.Time, lease time.Duration) ([]gateway.WebhookCall, error) {
	if max <= 0 || lease <= 0 {
		return nil, gateway.Errorf(gateway.EINVALID, "a claim needs a positive max and a positive lease")
	}
	now = utc(now)
	var out []gateway.WebhookCall
	err := db.write(ctx, nil, func(t tx) error {
		out = nil
		rows, err := t.query(sqlClaimWebhooks, t.time(now.Add(lease)), uuid.NewString(), t.time(now), t.time(now), max)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanWebhook(rows)
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	// Oldest first (RETURNING gives no order), a change's calls by client.
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ClientID < out[j].ClientID
	})
	return out, nil
}

// CompleteWebhook implements gateway.Webhooks.
func (db *DB) CompleteWebhook(ctx context.Context, id, leaseID string, at time.Time) error {
	return db.finishWebhook(ctx, id, leaseID, gateway.WebhookDelivered, at, at, "")
}

// RetryWebhook implements gateway.Webhooks.
func (db *DB) RetryWebhook(ctx context.Context, id, leaseID string, next time.Time, errorClass string) error {
	return db.finishWebhook(ctx, id, leaseID, gateway.WebhookPending, next, time.Time{}, errorClass)
}

// DeadLetterWebhook implements gateway.Webhooks.
func (db *DB) DeadLetterWebhook(ctx context.Context, id, leaseID string, at time.Time, errorClass string) error {
	return db.finishWebhook(ctx, id, leaseID, gateway.WebhookDead, at, time.Time{}, errorClass)
}

// finishWebhook ends the attempt under leaseID: the call's next state, when
// it is next due, the error class and the delivery time (zero: none).
func (db *DB) finishWebhook(ctx context.Context, id, leaseID string, state gateway.WebhookState, due, delivered time.Time, errorClass string) error {
	if leaseID == "" || due.IsZero() {
		return gateway.Errorf(gateway.EINVALID, "finishing a webhook call needs its lease and a time")
	}
	var deliveredAt any
	if !delivered.IsZero() {
		deliveredAt = db.time(delivered)
	}
	return db.write(ctx, nil, func(t tx) error {
		res, err := t.exec(sqlFinishWebhook, string(state), t.time(due), nullString(errorClass), deliveredAt, t.time(due), id, leaseID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		if _, err := webhookState(t, id); err != nil {
			return err
		}
		return gateway.Errorf(gateway.ECONFLICT, "the lease on this webhook call is no longer held")
	})
}

func webhookState(t tx, id string) (gateway.WebhookState, error) {
	var s string
	err := t.queryRow(sqlWebhookState, id).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return "", gateway.Errorf(gateway.ENOTFOUND, "no such webhook call")
	}
	return gateway.WebhookState(s), err
}

// DeadWebhooks implements gateway.Webhooks.
func (db *DB) DeadWebhooks(ctx context.Context, institution string, limit int) ([]gateway.WebhookCall, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.query(ctx, sqlDeadWebhooks, institution, institution, limit)
	if err != nil {
		return nil, db.mapErr(err)
	}
	defer rows.Close()
	out := []gateway.WebhookCall{}
	for rows.Next() {
		c, err := scanWebhook(rows)
		if err != nil {
			return nil, db.mapErr(err)
		}
		out = append(out, c)
	}
	return out, db.mapErr(rows.Err())
}

// RequeueWebhook implements gateway.Webhooks.
func (db *DB) RequeueWebhook(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		return gateway.Errorf(gateway.EINVALID, "a requeue needs a time")
	}
	return db.write(ctx, nil, func(t tx) error {
		state, err := webhookState(t, id)
		if err != nil {
			return err
		}
		if state != gateway.WebhookDead {
			return gateway.Errorf(gateway.ECONFLICT, "only a dead webhook call can be retried; this one is %s", state)
		}
		_, err = t.exec(sqlRequeueWebhook, t.time(at), t.time(at), id)
		return err
	})
}

// WebhookCounts implements gateway.Webhooks.
func (db *DB) WebhookCounts(ctx context.Context) (pending, dead int, err error) {
	err = db.queryRow(ctx, sqlWebhookCounts).Scan(&pending, &dead)
	return pending, dead, db.mapErr(err)
}
