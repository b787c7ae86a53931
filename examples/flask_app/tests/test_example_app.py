"""The example app: it migrates itself at startup and serves saved searches."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from flask_app import create_app

import selfmigrate

MIGRATIONS = "flask_app.migrations"


def _rows(database: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(database)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_fresh_database_is_migrated_at_startup(app: Flask, database: Path) -> None:
    report = app.extensions["selfmigrate"].report
    assert [r.id for r in report.applied] == ["0001_create_saved_search", "0002_add_custom_sql_query"]
    assert report.current_version == 2
    assert _rows(database, "SELECT version, name, state FROM schema_migrations ORDER BY version") == [
        (1, "create_saved_search", "applied"),
        (2, "add_custom_sql_query", "applied"),
    ]
    columns = [row[1] for row in _rows(database, "PRAGMA table_info(saved_search)")]
    assert "custom_sql_query" in columns


def test_health_reports_the_schema_version(client: FlaskClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["current_version"] == 2
    assert [row["version"] for row in body["applied"]] == [1, 2]


def test_save_list_and_get_searches(client: FlaskClient) -> None:
    created = client.post(
        "/searches",
        json={"name": "big orders", "query": "total > 100", "custom_sql_query": "SELECT * FROM orders"},
    )
    assert created.status_code == 201
    search = created.get_json()
    assert search["custom_sql_query"] == "SELECT * FROM orders"
    assert client.get(f"/searches/{search['id']}").get_json() == search
    assert client.get("/searches").get_json() == {"searches": [search]}


def test_bad_input_and_unknown_search(client: FlaskClient) -> None:
    assert client.post("/searches", json={"name": "no query"}).status_code == 400
    assert client.get("/searches/12345").status_code == 404
    assert client.get("/searches").get_json() == {"searches": []}


def test_version_1_database_is_upgraded_and_keeps_its_data(database: Path) -> None:
    # The database as version 1 of the app left it, with data in it.
    selfmigrate.migrate(database, MIGRATIONS, target=1)
    conn = sqlite3.connect(database)
    with conn:
        conn.execute("INSERT INTO saved_search (name, query) VALUES ('text', 'red shoes')")
        conn.execute("INSERT INTO saved_search (name, query) VALUES ('pasted sql', 'select id from shoe')")
    conn.close()

    app = create_app({"TESTING": True, "DATABASE": str(database)})

    assert [r.version for r in app.extensions["selfmigrate"].report.applied] == [2]
    searches = app.test_client().get("/searches").get_json()["searches"]
    assert [(s["name"], s["query"], s["custom_sql_query"]) for s in searches] == [
        ("pasted sql", "select id from shoe", "select id from shoe"),
        ("text", "red shoes", None),
    ]


def test_restart_applies_nothing_and_keeps_data(app: Flask, client: FlaskClient, database: Path) -> None:
    client.post("/searches", json={"name": "kept", "query": "blue"})
    before = _rows(database, "SELECT * FROM schema_migrations ORDER BY version")

    restarted = create_app({"TESTING": True, "DATABASE": str(database)})

    assert restarted.extensions["selfmigrate"].report.applied == []
    assert _rows(database, "SELECT * FROM schema_migrations ORDER BY version") == before
    names = [s["name"] for s in restarted.test_client().get("/searches").get_json()["searches"]]
    assert names == ["kept"]


def test_every_migration_can_be_undone(app: Flask, database: Path) -> None:
    # Both migrations have a down (the example shows the SQL and the Python form),
    # and running them newest first leaves no trace of the app's schema.
    loaded = [m.load() for m in selfmigrate.MigrationRegistry(MIGRATIONS).migrations]
    conn = sqlite3.connect(database)
    try:
        for body in reversed(loaded):
            if body.down_sql is not None:
                conn.executescript(body.down_sql.text)
            else:
                assert body.down_function is not None
                body.down_function(conn)
                conn.commit()
        tables = conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'saved_search%'").fetchall()
    finally:
        conn.close()
    assert tables == []
