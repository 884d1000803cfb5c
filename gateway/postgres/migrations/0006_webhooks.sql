-- Webhook calls: one row per status change (or return-path step) per client
-- that has a webhook, written in the transaction that made the change, so
-- that a notification is never lost to a crash. The dispatcher leases a due
-- row by pushing next_attempt_at ahead under a fresh lease_id. The row holds
-- ids, statuses and times only: no clinical content, no personal data.
-- payload is the call's JSON body as queued (attempt 0); each attempt sends it
-- with its own attempt number.
CREATE TABLE webhook_calls (
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               text NOT NULL UNIQUE,
    client_id        text NOT NULL,
    institution      text NOT NULL,
    referral_id      text NOT NULL,
    case_id          text NOT NULL,
    event            text NOT NULL,
    status           text NOT NULL,
    at               timestamptz NOT NULL,
    payload          text NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    lease_id         text,
    state            text NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    last_error_class text,
    created_at       timestamptz NOT NULL,
    delivered_at     timestamptz,
    updated_at       timestamptz NOT NULL
);

CREATE INDEX webhook_calls_due ON webhook_calls (next_attempt_at, seq) WHERE state = 'pending';
CREATE INDEX webhook_calls_dead ON webhook_calls (institution, seq) WHERE state = 'dead';
