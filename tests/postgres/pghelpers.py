"""Helpers the PostgreSQL tests share: write migrations, dump a database, hold locks, run workers."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import typing as t
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]


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


WORKER = """
import json, os, sys, time
start = float(sys.argv[3])
while time.time() < start:
    time.sleep(0.001)
import selfmigrate
try:
    report = selfmigrate.migrate(sys.argv[1], sys.argv[2], lock_timeout=float(os.environ.get("LOCK", "60")))
    print(json.dumps({"ok": True, "applied": [r.version for r in report.applied], "version": report.current_version}))
except selfmigrate.SelfMigrateError as e:
    print(json.dumps({"ok": False, "error": type(e).__name__, "message": str(e)}))
"""


def start_workers(
    url: str, folder: Path, count: int, at: float, env: dict[str, str] | None = None
) -> list[subprocess.Popen[str]]:
    """``count`` processes that each call ``selfmigrate.migrate(url, folder)`` at time ``at``."""
    environment = {**os.environ, **(env or {})}
    return [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(folder), str(at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for _ in range(count)
    ]


def results(processes: list[subprocess.Popen[str]]) -> list[dict[str, t.Any]]:
    """Each worker's JSON result (a crashed worker is a result with its stderr)."""
    out = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        try:
            out.append(json.loads(stdout.strip().splitlines()[-1]))
        except (IndexError, json.JSONDecodeError):
            out.append({"ok": False, "error": "crashed", "message": stderr[-2000:], "rc": process.returncode})
    return out
