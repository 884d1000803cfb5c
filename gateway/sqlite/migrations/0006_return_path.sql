-- The return path (issue #14): what the receiving service reports after
-- delivery, each step in its own row, tied to the message it answered.
--
-- Status names no longer clash: the gateway's own "accepted" (taken in and
-- queued) becomes "queued", and the service's acceptance, which was
-- "acknowledged", becomes "accepted". The order of the two updates matters.
ALTER TABLE referrals ADD COLUMN acknowledged_at INTEGER;        -- first acceptance by the service
ALTER TABLE referrals ADD COLUMN first_appointment_at INTEGER;   -- earliest booked start or seen time

UPDATE referrals SET acknowledged_at = updated_at WHERE status = 'acknowledged';
UPDATE referrals SET status = 'queued' WHERE status = 'accepted';
UPDATE referrals SET status = 'accepted' WHERE status = 'acknowledged';

-- The id of the Bundle each message carries: a response names it in
-- MessageHeader.response.identifier. Kept when the body is purged.
ALTER TABLE outbox_messages ADD COLUMN bundle_id TEXT;
UPDATE outbox_messages SET bundle_id = body ->> '$.id' WHERE body IS NOT NULL AND json_valid(body);
CREATE INDEX outbox_bundle ON outbox_messages (bundle_id);

-- The timeline: one row per step. Status, not content: ids, times and
-- codes only, kept when retention purges the referral's content.
CREATE TABLE referral_steps (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT, -- the feed order (StepsAfter)
    referral_id       TEXT NOT NULL REFERENCES referrals (id),
    institution       TEXT NOT NULL,
    case_id           TEXT NOT NULL,
    service_id        TEXT NOT NULL,
    step              TEXT NOT NULL,
    at                INTEGER NOT NULL,  -- when it happened
    recorded_at       INTEGER NOT NULL,  -- when the gateway recorded it
    response_id       TEXT NOT NULL,     -- the receiver's response Bundle id
    request_bundle_id TEXT NOT NULL,     -- the gateway's Bundle it answered
    message_id        TEXT NOT NULL,
    appointment_id    TEXT,
    appointment_start INTEGER,
    codes             TEXT NOT NULL DEFAULT '[]', -- [{"element","system","code"}]
    UNIQUE (service_id, response_id)
);
CREATE INDEX referral_steps_case ON referral_steps (institution, case_id, at);
CREATE INDEX referral_steps_feed ON referral_steps (institution, seq);
CREATE INDEX referral_steps_referral ON referral_steps (referral_id);

-- Responses recorded before the timeline existed become its first entries.
INSERT INTO referral_steps (referral_id, institution, case_id, service_id, step, at, recorded_at,
        response_id, request_bundle_id, message_id)
    SELECT r.id, r.institution, r.case_id, r.service_id, r.status, r.updated_at, r.updated_at,
        'migrated:' || r.id, COALESCE(o.bundle_id, ''), o.id
    FROM referrals r JOIN outbox_messages o ON o.referral_id = r.id AND o.kind <> 'cancel'
    WHERE r.status IN ('accepted', 'rejected');
