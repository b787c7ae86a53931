"""Helpers the PostgreSQL tests share: write migrations, dump a database, hold locks (processes: pgharness.py)."""

from __future__ import annotations

import contextlib
import textwrap
import typing as t
from pathlib import Path

import psycopg


def write(folder: Path, files: dict[str, str]) -> Path:
    """Write migration files (name → text, dedented) into ``folder``; return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip("\n"))
    return folder


def dump(url: str) -> list[tuple[object, ...]]:
    """Every user table's columns and rows, and every index: equal dumps, equal data."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema NOT IN"
            " ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        out: list[tuple[object, ...]] = []
        for schema, table in tables:
            columns = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s"
                " AND table_name = %s ORDER BY ordinal_position",
                (schema, table),
            ).fetchall()
            rows = conn.execute(f'SELECT * FROM "{schema}"."{table}" ORDER BY 1').fetchall()
            out.append((schema, table, tuple(columns), tuple(map(tuple, rows))))
        out.extend(
            conn.execute(
                "SELECT schemaname, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 2"
            )
        )
        return out


def rows(url: str, sql: str, params: t.Sequence[object] = ()) -> list[tuple[t.Any, ...]]:
    """The rows of one query."""
    with psycopg.connect(url, autocommit=True) as conn:
        return [tuple(r) for r in conn.execute(sql, params or None).fetchall()]


@contextlib.contextmanager
def holding(url: str, sql: str, *, application_name: str = "test-holder") -> t.Iterator[psycopg.Connection[t.Any]]:
    """A second connection inside an open transaction that ran ``sql`` (so it holds its locks)."""
    conn = psycopg.connect(url, application_name=application_name)
    try:
        conn.execute(sql)
        yield conn
    finally:
        conn.rollback()
        conn.close()
