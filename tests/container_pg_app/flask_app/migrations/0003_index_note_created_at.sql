-- migrate:no-transaction
-- Outside a transaction, under the session lock. Run twice, this fails: the index exists.
CREATE INDEX CONCURRENTLY note_created_at ON note (created_at);
