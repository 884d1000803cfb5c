-- The sender of each message (the university, as its MessageHeader.sender
-- names it: {"identifier": [...], "name": ...}), stored when the message is
-- queued so that delivery need not read the Bundle for its
-- NHSD-End-User-Organisation header. Messages that may still be sent get it
-- from their Bundle here, once; one whose Bundle names no sender this can
-- resolve keeps NULL, and delivery names its institution alone.
ALTER TABLE outbox_messages ADD COLUMN sender TEXT;

UPDATE outbox_messages SET sender = (
    SELECT json_object('identifier', e.value -> '$.resource.identifier', 'name', e.value ->> '$.resource.name')
    FROM json_each(outbox_messages.body, '$.entry') AS e
    WHERE e.value ->> '$.fullUrl' = outbox_messages.body ->> '$.entry[0].resource.sender.reference'
      AND e.value ->> '$.resource.resourceType' = 'Organization')
WHERE state IN ('pending', 'leased', 'failed', 'dead') AND body IS NOT NULL AND json_valid(body);

-- A cancellation finds the decision it revokes by its id.
CREATE INDEX decision_records_decision ON decision_records (institution, decision_id);
