"""The example app's tests on selfmigrate's pytest fixtures.

``migrated_db_path`` is a database already at the newest version, private to
the test: the app starts on it without migrating anything. With
``@pytest.mark.migrate_to(1)`` it stops at version 1, which is how the data
migration in ``0002_add_custom_sql_query.py`` is tested: rows written the way
version 1 of the app wrote them, then the app starts and migrates them.

The migrations come from the ``selfmigrate_migrations`` fixture in conftest.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from flask_app import create_app

from selfmigrate.backends.sqlite.schema import read_schema
from selfmigrate.testing.templates import MigratedDatabaseFactory


def test_the_app_starts_on_a_migrated_database_without_migrating(migrated_db_path: Path) -> None:
    app = create_app({"TESTING": True, "DATABASE": str(migrated_db_path)})
    report = app.extensions["selfmigrate"].report
    assert report.applied == []
    assert report.current_version == 2
    client = app.test_client()
    created = client.post("/searches", json={"name": "recent", "query": "created > now"}).get_json()
    assert client.get("/searches").get_json() == {"searches": [created]}


def test_each_test_starts_from_an_empty_table(migrated_db: sqlite3.Connection) -> None:
    assert migrated_db.execute("SELECT count(*) FROM saved_search").fetchone() == (0,)
    migrated_db.execute("INSERT INTO saved_search (name, query) VALUES ('left behind?', 'x')")
    migrated_db.commit()


def test_and_sees_nothing_another_test_wrote(migrated_db: sqlite3.Connection) -> None:
    assert migrated_db.execute("SELECT count(*) FROM saved_search").fetchone() == (0,)


@pytest.mark.migrate_to(1)
def test_version_2_moves_pasted_sql_into_its_own_column(
    migrated_db: sqlite3.Connection, migrated_db_path: Path
) -> None:
    # Data as version 1 of the app stored it: SQL pasted into the text query.
    migrated_db.executemany(
        "INSERT INTO saved_search (name, query) VALUES (?, ?)",
        [("plain", "big orders"), ("pasted", "  select * from orders where total > 100")],
    )
    migrated_db.commit()

    app = create_app({"TESTING": True, "DATABASE": str(migrated_db_path)})

    assert [r.version for r in app.extensions["selfmigrate"].report.applied] == [2]
    rows = migrated_db.execute("SELECT name, query, custom_sql_query FROM saved_search ORDER BY id").fetchall()
    assert rows == [
        ("plain", "big orders", None),
        ("pasted", "  select * from orders where total > 100", "  select * from orders where total > 100"),
    ]


def test_an_upgraded_database_has_the_schema_of_a_new_one(migrated_db_factory: MigratedDatabaseFactory) -> None:
    upgraded, new = migrated_db_factory(to=1), migrated_db_factory()

    create_app({"TESTING": True, "DATABASE": str(upgraded)})  # migrates 1 -> 2 at startup

    assert read_schema(upgraded) == read_schema(new)
