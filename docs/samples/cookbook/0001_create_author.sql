-- Create a table. INTEGER PRIMARY KEY is SQLite's rowid; give every column
-- its constraints now, because adding one later means rebuilding the table.
CREATE TABLE author (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT
);

-- migrate:down
DROP TABLE author;
