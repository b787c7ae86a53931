"""Small helpers the test modules share (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import sqlite3
import typing as t
from pathlib import Path


@contextlib.contextmanager
def connected(path: str | Path) -> t.Iterator[sqlite3.Connection]:
    """A connection that commits on success, rolls back on error, and is closed.

    ``with sqlite3.connect(...)`` only commits; the connection stays open until
    garbage collection, which Python 3.13 reports as a ResourceWarning.
    """
    conn = sqlite3.connect(path)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def dump(path: Path) -> list[str]:
    """The whole database as SQL statements, schema and rows: equal dumps, equal data."""
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()
