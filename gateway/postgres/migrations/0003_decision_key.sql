-- The chain key (gateway.KeyID) whose HMAC-SHA256 a decision record's hash
-- is; '' for the plain SHA-256 scheme of records written before a key was
-- configured. Existing records keep their scheme and hash: re-hashing a
-- chain is exactly what the key is there to make detectable.
ALTER TABLE decision_records ADD COLUMN key_id text NOT NULL DEFAULT '';
