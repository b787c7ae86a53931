"""One SQLite connection per request, closed when the request ends.

The schema is not created here: the migrations in ``flask_app.migrations`` own
it, and :func:`selfmigrate.apply` has run them before the first request.
"""

from __future__ import annotations

import sqlite3

from flask import Flask, current_app, g


def get_db() -> sqlite3.Connection:
    """The request's connection to the app's database, opened on first use."""
    if "db" not in g:
        # The file selfmigrate migrated (DATABASE, resolved from the instance folder).
        path = current_app.extensions["selfmigrate"].database
        g.db = sqlite3.connect(path)
        g.db.row_factory = sqlite3.Row
    conn: sqlite3.Connection = g.db
    return conn


def close_db(exception: BaseException | None = None) -> None:
    """Close the request's connection, if one was opened."""
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def init_app(app: Flask) -> None:
    """Close the connection at the end of every request."""
    app.teardown_appcontext(close_db)
