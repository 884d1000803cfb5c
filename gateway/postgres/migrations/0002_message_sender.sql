-- The sender of each message (the university, as its MessageHeader.sender
-- names it: {"identifier": [...], "name": ...}), stored when the message is
-- queued so that delivery need not read the Bundle for its
-- NHSD-End-User-Organisation header. Messages that may still be sent get it
-- from their Bundle here, once; one whose Bundle names no sender this can
-- resolve keeps NULL, and delivery names its institution alone.
ALTER TABLE outbox_messages ADD COLUMN sender text;

UPDATE outbox_messages m SET sender = (
    SELECT jsonb_build_object('identifier', e -> 'resource' -> 'identifier', 'name', e -> 'resource' -> 'name')::text
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(m.body::jsonb -> 'entry') = 'array' THEN m.body::jsonb -> 'entry' ELSE '[]' END) e
    WHERE e ->> 'fullUrl' = m.body::jsonb #>> '{entry,0,resource,sender,reference}'
      AND e -> 'resource' ->> 'resourceType' = 'Organization'
    LIMIT 1)
WHERE m.state IN ('pending', 'leased', 'failed', 'dead') AND m.body IS NOT NULL
  AND strpos(m.body, '\u0000') = 0; -- which jsonb refuses

-- A cancellation finds the decision it revokes by its id.
CREATE INDEX decision_records_decision ON decision_records (institution, decision_id);
