-- The age of the oldest message still waiting (the gateway_outbox_oldest_age_seconds
-- gauge, read on every scrape of /metrics) is found through this index in one
-- step. Without it every waiting row was read, through the overflow pages of
-- its body, on every scrape: slowest exactly when a receiver is down and the
-- queue is long.
CREATE INDEX outbox_waiting_created ON outbox_messages (created_at) WHERE state IN ('pending', 'leased');
