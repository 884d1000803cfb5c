-- Webhook calls: one row per status change (or return-path step) per client
-- that has a webhook, written in the transaction that made the change, so
-- that a notification is never lost to a crash. The dispatcher leases a due
-- row by pushing next_attempt_at ahead under a fresh lease_id. The row holds
-- ids, statuses and times only: no clinical content, no personal data.
-- payload is the call's JSON body as queued (attempt 0); each attempt sends it
-- with its own attempt number.
CREATE TABLE webhook_calls (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    client_id        TEXT NOT NULL,
    institution      TEXT NOT NULL,
    referral_id      TEXT NOT NULL,
    case_id          TEXT NOT NULL,
    event            TEXT NOT NULL,
    status           TEXT NOT NULL,
    at               INTEGER NOT NULL,
    payload          TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_id         TEXT,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    last_error_class TEXT,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER,
    updated_at       INTEGER NOT NULL
);

CREATE INDEX webhook_calls_due ON webhook_calls (next_attempt_at, seq) WHERE state = 'pending';
CREATE INDEX webhook_calls_dead ON webhook_calls (institution, seq) WHERE state = 'dead';
