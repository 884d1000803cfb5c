-- The gateway's store: referrals (one row per accepted version of a case),
-- the outbox that delivers them, and the per-institution decision chain.
-- JSON is kept as text: the bundle sent must be byte for byte the bundle
-- validated, and a decision record's body byte for byte what was hashed.

CREATE TABLE referrals (
    id           text PRIMARY KEY,
    institution  text NOT NULL,
    case_id      text NOT NULL,
    content_hash text NOT NULL,
    version      integer NOT NULL CHECK (version >= 1),
    previous_id  text REFERENCES referrals (id),
    service_id   text NOT NULL,
    decision_id  text NOT NULL,
    status       text NOT NULL,
    response     text,            -- receiver's response message (content)
    record       text,            -- case record (content); NULL once purged
    accepted_at  timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    purged_at    timestamptz,
    UNIQUE (institution, case_id, content_hash),
    UNIQUE (institution, case_id, version)
);

CREATE INDEX referrals_purge ON referrals (updated_at) WHERE purged_at IS NULL;

CREATE TABLE outbox_messages (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              text NOT NULL UNIQUE,
    referral_id     text NOT NULL REFERENCES referrals (id),
    institution     text NOT NULL,
    case_id         text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('new', 'update', 'cancel')),
    service_id      text NOT NULL,
    request_id      text NOT NULL,
    correlation_id  text NOT NULL,
    body            text,         -- the Bundle (content); NULL once purged
    state           text NOT NULL CHECK (state IN ('pending', 'leased', 'delivered', 'failed', 'dead', 'dropped')),
    due_at          timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    lease_owner     text,
    lease_id        text,
    last_attempt_at timestamptz,
    last_error      text,
    response        text,         -- receiver's OperationOutcome (content)
    operator_by     text,
    operator_reason text,
    operator_at     timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE INDEX outbox_due ON outbox_messages (due_at, seq) WHERE state IN ('pending', 'leased');
CREATE INDEX outbox_case ON outbox_messages (institution, case_id, seq) WHERE state IN ('pending', 'leased');
CREATE INDEX outbox_state ON outbox_messages (state, seq);
CREATE INDEX outbox_referral ON outbox_messages (referral_id);

-- One row per institution: the head of its chain, and the row every append
-- locks, so that concurrent appends from any number of gateways queue up
-- instead of forking the chain.
CREATE TABLE decision_chains (
    institution text PRIMARY KEY,
    seq         bigint NOT NULL,
    hash        text NOT NULL
);

CREATE TABLE decision_records (
    institution text NOT NULL,
    seq         bigint NOT NULL,
    decision_id text NOT NULL,
    at          timestamptz NOT NULL,
    body        text NOT NULL,    -- exact bytes that were hashed
    prev_hash   text NOT NULL,
    hash        text NOT NULL,
    PRIMARY KEY (institution, seq)
);

-- Append-only: the store never updates or deletes a decision record. The
-- guard stops bugs; Verify catches anyone who lifts it.
CREATE FUNCTION decision_records_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'decision_records is append-only';
END
$$;

CREATE TRIGGER decision_records_no_change BEFORE UPDATE OR DELETE ON decision_records
    FOR EACH ROW EXECUTE FUNCTION decision_records_append_only();

CREATE TRIGGER decision_records_no_truncate BEFORE TRUNCATE ON decision_records
    FOR EACH STATEMENT EXECUTE FUNCTION decision_records_append_only();
