-- Rename a column. SQLite rewrites the indexes, triggers and views that use it.
ALTER TABLE author RENAME COLUMN name TO full_name;

-- migrate:down
ALTER TABLE author RENAME COLUMN full_name TO name;
