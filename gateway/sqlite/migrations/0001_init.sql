-- The gateway's store: referrals (one row per accepted version of a case),
-- the outbox that delivers them, and the per-institution decision chain.
-- Times are INTEGER microseconds since the Unix epoch, UTC.

CREATE TABLE referrals (
    id           TEXT PRIMARY KEY,
    institution  TEXT NOT NULL,
    case_id      TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    version      INTEGER NOT NULL CHECK (version >= 1),
    previous_id  TEXT REFERENCES referrals (id),
    service_id   TEXT NOT NULL,
    decision_id  TEXT NOT NULL,
    status       TEXT NOT NULL,
    response     TEXT,            -- receiver's response message (content)
    record       TEXT,            -- case record (content); NULL once purged
    accepted_at  INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    purged_at    INTEGER,
    UNIQUE (institution, case_id, content_hash),
    UNIQUE (institution, case_id, version)
);

CREATE INDEX referrals_purge ON referrals (updated_at) WHERE purged_at IS NULL;

CREATE TABLE outbox_messages (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    referral_id     TEXT NOT NULL REFERENCES referrals (id),
    institution     TEXT NOT NULL,
    case_id         TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('new', 'update', 'cancel')),
    service_id      TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    correlation_id  TEXT NOT NULL,
    body            TEXT,         -- the Bundle (content); NULL once purged
    state           TEXT NOT NULL CHECK (state IN ('pending', 'leased', 'delivered', 'failed', 'dead', 'dropped')),
    due_at          INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_id        TEXT,
    last_attempt_at INTEGER,
    last_error      TEXT,
    response        TEXT,         -- receiver's OperationOutcome (content)
    operator_by     TEXT,
    operator_reason TEXT,
    operator_at     INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE INDEX outbox_due ON outbox_messages (due_at, seq) WHERE state IN ('pending', 'leased');
CREATE INDEX outbox_case ON outbox_messages (institution, case_id, seq) WHERE state IN ('pending', 'leased');
CREATE INDEX outbox_state ON outbox_messages (state, seq);
CREATE INDEX outbox_referral ON outbox_messages (referral_id);

CREATE TABLE decision_chains (
    institution TEXT PRIMARY KEY,
    seq         INTEGER NOT NULL,
    hash        TEXT NOT NULL
);

CREATE TABLE decision_records (
    institution TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    decision_id TEXT NOT NULL,
    at          INTEGER NOT NULL,
    body        TEXT NOT NULL,    -- exact bytes that were hashed
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    PRIMARY KEY (institution, seq)
) WITHOUT ROWID;

-- Append-only: the store never updates or deletes a decision record. The
-- guard stops bugs; Verify catches anyone who lifts it.
CREATE TRIGGER decision_records_no_update BEFORE UPDATE ON decision_records
BEGIN
    SELECT RAISE(ABORT, 'decision_records is append-only');
END;

CREATE TRIGGER decision_records_no_delete BEFORE DELETE ON decision_records
BEGIN
    SELECT RAISE(ABORT, 'decision_records is append-only');
END;
