"""Fixtures for the example app's tests: an app on a fresh database in tmp_path."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_app import create_app


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """Where the test's database file goes (it does not exist yet)."""
    return tmp_path / "app.sqlite"


@pytest.fixture
def app(database: Path) -> t.Iterator[Flask]:
    """The example app, started (and so migrated) on a fresh database."""
    yield create_app({"TESTING": True, "DATABASE": str(database)})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client for :func:`app`."""
    return app.test_client()


@pytest.fixture(scope="session")
def selfmigrate_migrations() -> str:
    """The migrations selfmigrate's ``migrated_db`` fixtures apply: the app's own."""
    return "flask_app.migrations"
