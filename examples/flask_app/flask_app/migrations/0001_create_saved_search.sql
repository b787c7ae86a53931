-- Saved searches: a name and the text to search for.

CREATE TABLE saved_search (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    query TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE INDEX saved_search_name ON saved_search (name);

-- migrate:down
DROP INDEX saved_search_name;
DROP TABLE saved_search;
