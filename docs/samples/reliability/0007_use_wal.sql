-- Switch the database to write-ahead logging: readers no longer block the
-- writer. SQLite cannot change the journal mode inside a transaction, so this
-- migration runs outside one. It is safe to run twice.
-- migrate:no-transaction
PRAGMA journal_mode = WAL;
