"""Small helpers the test modules share (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def dump(path: Path) -> list[str]:
    """The whole database as SQL statements, schema and rows: equal dumps, equal data."""
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()
