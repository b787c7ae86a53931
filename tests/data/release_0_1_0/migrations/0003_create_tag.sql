-- No down: this migration cannot be rolled back.
CREATE TABLE tag (note_id INTEGER NOT NULL REFERENCES note (id), tag TEXT NOT NULL);
