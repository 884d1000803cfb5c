-- When and how the university told the student of a delivered share (T-01),
-- set in the transaction that appends the student-informed action to the
-- audit trail. NULL: not yet told. The partial index finds the shares whose
-- student has not been told, oldest first, without reading those who were.
ALTER TABLE referrals ADD COLUMN student_informed_at INTEGER;
ALTER TABLE referrals ADD COLUMN student_informed_method TEXT;

CREATE INDEX referrals_untold ON referrals (institution, accepted_at) WHERE student_informed_at IS NULL;
