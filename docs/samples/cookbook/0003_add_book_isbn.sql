-- Add columns. SQLite adds a column in place, at once, whatever the size of
-- the table. Existing rows get the default; a NOT NULL column needs one.
ALTER TABLE book ADD COLUMN isbn TEXT;
ALTER TABLE book ADD COLUMN in_print INTEGER NOT NULL DEFAULT 1;

-- migrate:down
ALTER TABLE book DROP COLUMN in_print;
ALTER TABLE book DROP COLUMN isbn;
