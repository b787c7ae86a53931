"""Saved searches as JSON, and a health check that reports the schema version."""

from __future__ import annotations

import sqlite3
import typing as t

from flask import Blueprint, abort, current_app, request

from .db import get_db

bp = Blueprint("searches", __name__)

Response = tuple[dict[str, t.Any], int] | dict[str, t.Any]


def _as_dict(row: sqlite3.Row) -> dict[str, t.Any]:
    return dict(zip(row.keys(), row, strict=True))


@bp.get("/searches")
def list_searches() -> Response:
    """Every saved search, newest first."""
    rows = get_db().execute(
        "SELECT id, name, query, custom_sql_query, created_at FROM saved_search ORDER BY id DESC"
    ).fetchall()
    return {"searches": [_as_dict(row) for row in rows]}


@bp.post("/searches")
def create_search() -> Response:
    """Save a search: ``{"name": ..., "query": ..., "custom_sql_query": ...}``."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or not data.get("name") or not data.get("query"):
        return {"error": "Send JSON with 'name' and 'query' (and optionally 'custom_sql_query')."}, 400
    db = get_db()
    with db:
        cursor = db.execute(
            "INSERT INTO saved_search (name, query, custom_sql_query) VALUES (?, ?, ?)",
            (data["name"], data["query"], data.get("custom_sql_query")),
        )
    return get_search(t.cast(int, cursor.lastrowid)), 201


@bp.get("/searches/<int:search_id>")
def get_search(search_id: int) -> dict[str, t.Any]:
    """One saved search, or 404."""
    row = get_db().execute(
        "SELECT id, name, query, custom_sql_query, created_at FROM saved_search WHERE id = ?",
        (search_id,),
    ).fetchone()
    if row is None:
        abort(404)
    return _as_dict(row)


@bp.get("/health")
def health() -> Response:
    """The app is up, and at which schema version its database is.

    ``current_version`` is what :func:`selfmigrate.apply` left at startup;
    ``applied`` is read from the tracker table now.
    """
    state = current_app.extensions["selfmigrate"]
    rows = get_db().execute(f"SELECT version, name, applied_at FROM {state.table} ORDER BY version").fetchall()
    return {
        "status": "ok",
        "current_version": state.report.current_version,
        "applied": [_as_dict(row) for row in rows],
    }
