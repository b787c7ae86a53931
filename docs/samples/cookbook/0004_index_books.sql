-- Add indexes. A unique index is also how an existing table gets a UNIQUE
-- constraint: if duplicates exist, this fails and the migration rolls back.
CREATE INDEX book_title ON book (title);
CREATE UNIQUE INDEX book_isbn ON book (isbn);
CREATE INDEX author_name ON author (name);

-- migrate:down
DROP INDEX author_name;
DROP INDEX book_isbn;
DROP INDEX book_title;
