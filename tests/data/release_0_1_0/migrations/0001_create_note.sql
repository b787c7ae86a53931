-- The first migration: a table with a down.
CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE INDEX note_body ON note (body);

-- migrate:down
DROP INDEX note_body;
DROP TABLE note;
