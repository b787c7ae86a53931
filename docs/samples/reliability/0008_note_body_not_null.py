"""Make note.body NOT NULL: SQLite's table-rebuild procedure.

Foreign key enforcement must be off during a rebuild, and PRAGMA foreign_keys
does nothing inside a transaction, so this migration runs outside the one
selfmigrate would open and manages its own. If the process dies half-way, the
BEGIN ... COMMIT below is rolled back by SQLite, and selfmigrate refuses to
start until someone runs 'python -m selfmigrate resolve 8 --retry' (or --done).
"""

transactional = False


def up(conn):
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        conn.execute("BEGIN")
        conn.execute("CREATE TABLE note_new (id INTEGER PRIMARY KEY, body TEXT NOT NULL DEFAULT '')")
        conn.execute("INSERT INTO note_new (id, body) SELECT id, coalesce(body, '') FROM note")
        conn.execute("DROP TABLE note")
        conn.execute("ALTER TABLE note_new RENAME TO note")
        broken = conn.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"the rebuild would break foreign keys: {broken}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.execute("PRAGMA foreign_keys = ON")
