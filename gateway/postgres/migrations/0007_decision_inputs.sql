-- What every decision was made on, kept so that a candidate policy set can
-- be replayed against it (gateway policy replay): the case record as it was
-- validated, the registry entry the policies saw, and the decision time.
-- Content, like referrals.record: the retention purge deletes an input with
-- the content of its referral, or, for a refused share or a dry run (which
-- store no referral), once its decision time is past the retention cut-off.

-- Registry entries as the policies saw them, stored once per distinct
-- content (the registry rarely changes), keyed by the SHA-256 of the JSON.
CREATE TABLE registry_snapshots (
    hash     text PRIMARY KEY,
    snapshot text NOT NULL
);

CREATE TABLE decision_inputs (
    institution            text NOT NULL,
    decision_id            text NOT NULL,
    decided_at             timestamptz NOT NULL,  -- the decision time the policies saw
    dry_run                boolean NOT NULL,      -- true for POST /v1/referrals/$evaluate
    referral_id            text,                  -- the accepted referral, if any
    record                 text,                  -- the validated case record (content); NULL for an
                                                  -- allowed share, whose record is its referral's
    registry_snapshot_hash text NOT NULL REFERENCES registry_snapshots (hash),
    PRIMARY KEY (institution, decision_id)
);

CREATE INDEX decision_inputs_decided ON decision_inputs (decided_at);
