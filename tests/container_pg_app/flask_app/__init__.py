"""The many-hosts test's app: notes in a PostgreSQL database that migrates itself.

Shaped like the shipped example (``examples/flask_app``), which uses SQLite:
every gunicorn worker calls :func:`create_app`, which calls
:func:`selfmigrate.apply` before serving. The database is the PostgreSQL URL in
``FLASK_DATABASE`` (the image's ``SELFMIGRATE_DATABASE`` is set to the same URL
for its health check, ``python -m selfmigrate status``).
"""

from __future__ import annotations

import logging
import os
import time
import typing as t

import psycopg
from flask import Blueprint, Flask, current_app, request
from flask.logging import default_handler
from psycopg.rows import dict_row

import selfmigrate

bp = Blueprint("notes", __name__)


def create_app() -> Flask:
    """The app, its database migrated on the way (FLASK_* environment variables are its config)."""
    app = Flask(__name__)
    app.config.from_prefixed_env()
    logger = logging.getLogger("selfmigrate")
    if not logger.handlers:
        logger.addHandler(default_handler)
        logger.setLevel(logging.INFO)
    selfmigrate.apply(app)
    app.register_blueprint(bp)
    return app


def connect() -> psycopg.Connection[dict[str, t.Any]]:
    """A connection to the database selfmigrate migrated (closed by its ``with`` block)."""
    return psycopg.connect(str(current_app.extensions["selfmigrate"].database), row_factory=dict_row)


@bp.get("/health")
def health() -> dict[str, t.Any]:
    """The version this worker's start left, and the tracker's rows now."""
    state = current_app.extensions["selfmigrate"]
    with connect() as conn:
        rows = conn.execute(f"SELECT version, name FROM {state.table} ORDER BY version").fetchall()
    return {"status": "ok", "current_version": state.report.current_version, "applied": rows}


@bp.get("/worker")
def worker() -> dict[str, t.Any]:
    """Which worker answers, and what its own start applied; ``?hold=S`` keeps it busy S seconds.

    A sync gunicorn worker serves one request at a time, so requests held at
    once are answered by as many different workers.
    """
    time.sleep(float(request.args.get("hold", "0")))
    report = current_app.extensions["selfmigrate"].report
    return {
        "pid": os.getpid(),
        "current_version": report.current_version,
        "applied": [result.version for result in report.applied],
    }


@bp.get("/notes")
def list_notes() -> dict[str, t.Any]:
    """Every note, oldest first."""
    with connect() as conn:
        return {"notes": conn.execute("SELECT id, body FROM note ORDER BY id").fetchall()}


@bp.post("/notes")
def create_note() -> tuple[dict[str, t.Any], int]:
    """Save ``{"body": ...}``."""
    body = (request.get_json(silent=True) or {}).get("body")
    if not isinstance(body, str) or not body:
        return {"error": "Send JSON with a non-empty 'body'."}, 400
    with connect() as conn:
        row = conn.execute("INSERT INTO note (body) VALUES (%s) RETURNING id, body", (body,)).fetchone()
    return t.cast(dict[str, t.Any], row), 201
