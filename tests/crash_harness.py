"""Kill a migrating process at a random moment and check what it left behind.

Shared by tests/test_crash.py (a few dozen trials) and benchmarks/stress_crash.py
(hundreds). A trial:

1. makes a database holding some data (so a snapshot is taken too), in
   rollback-journal or WAL mode;
2. forks a process that runs :func:`selfmigrate.migrate` on it with five
   pending migrations (thousands of rows rewritten, a slow Python one, an
   index, a table rebuilt from a query) and SIGKILLs it after a random delay;
3. checks that ``PRAGMA integrity_check`` is ok, that schema *and* data equal
   those of exactly one migration boundary ("after k"), and that the tracker
   lists exactly migrations 1..k;
4. starts again (in the test process) and checks that the database reaches
   the last boundary.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import selfmigrate

JournalMode = t.Literal["delete", "wal"]

MIGRATIONS = {
    "0001_items.sql": """
        CREATE TABLE item (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, label TEXT);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
        INSERT INTO item (id, value, label) SELECT i, i, 'item ' || i FROM n;
    """,
    "0002_double.sql": """
        UPDATE item SET value = value * 2;
        ALTER TABLE item ADD COLUMN flag INTEGER NOT NULL DEFAULT 0;
        UPDATE item SET flag = value % 3;
        UPDATE seed SET note = note || ' (seen by 2)';
    """,
    "0003_slow.py": '''
        import time


        def up(conn):
            for start in range(0, 3000, 300):
                conn.execute("UPDATE item SET label = upper(label) WHERE id > ? AND id <= ?", (start, start + 300))
                time.sleep(0.002)
            conn.execute("CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT)")
            conn.executemany("INSERT INTO audit (what) VALUES (?)", [(f"row {i}",) for i in range(1500)])
    ''',
    "0004_index.sql": """
        CREATE INDEX item_value ON item (value);
        DELETE FROM item WHERE flag = 1;
    """,
    "0005_rebuild.sql": """
        CREATE TABLE item_new (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, label TEXT NOT NULL);
        INSERT INTO item_new SELECT id, value, label FROM item;
        DROP TABLE item;
        ALTER TABLE item_new RENAME TO item;
        CREATE INDEX item_label ON item (label);
    """,
}
HEAD = len(MIGRATIONS)


def write_migrations(folder: Path) -> Path:
    """Write :data:`MIGRATIONS` into ``folder`` (created); return it."""
    import textwrap

    folder.mkdir(parents=True, exist_ok=True)
    for name, text in MIGRATIONS.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return folder


def make_database(path: Path, mode: JournalMode) -> None:
    """A database with a little data of its own, in ``mode``, nothing migrated."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA journal_mode = {mode}")
        conn.execute("CREATE TABLE seed (id INTEGER PRIMARY KEY, note TEXT)")
        conn.executemany("INSERT INTO seed (note) VALUES (?)", [(f"note {i}",) for i in range(50)])
    finally:
        conn.close()


def fingerprint(path: Path) -> str:
    """SHA-256 of the schema and data, the tracker table left out."""
    conn = sqlite3.connect(path)
    try:
        digest = hashlib.sha256()
        for line in conn.iterdump():
            if "schema_migrations" in line:
                continue
            digest.update(line.encode())
            digest.update(b"\n")
        return digest.hexdigest()
    finally:
        conn.close()


def tracker_versions(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'").fetchone():
            return []
        rows = conn.execute("SELECT version, state FROM schema_migrations ORDER BY version").fetchall()
        assert all(state == "applied" for _, state in rows), rows
        return [version for version, _ in rows]
    finally:
        conn.close()


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def boundaries(folder: Path, work: Path, mode: JournalMode) -> list[str]:
    """The fingerprint of the database after each migration k (index k, 0 = before the first)."""
    states = []
    for k in range(HEAD + 1):
        path = work / f"boundary_{mode}_{k}.sqlite"
        make_database(path, mode)
        if k:
            selfmigrate.migrate(path, str(folder), target=k, backup=False)
        states.append(fingerprint(path))
    assert len(set(states)) == HEAD + 1, "every migration must change the data"
    return states


def _child(path: Path, folder: Path, backup: bool) -> t.NoReturn:
    code = 0
    try:
        selfmigrate.migrate(path, str(folder), backup=backup, backup_keep=2)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def migrate_in_child(path: Path, folder: Path, *, backup: bool, kill_after: float | None) -> int | None:
    """Fork a process that migrates ``path``; SIGKILL it after ``kill_after`` seconds.

    Returns its exit code, or ``None`` if it was killed.
    """
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        _child(path, folder, backup)
    if kill_after is not None:
        deadline = time.monotonic() + kill_after
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(min(0.001, max(deadline - time.monotonic(), 0)))
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return None if code == -signal.SIGKILL else code


@dataclass
class Outcome:
    """What the trials of one journal mode saw."""

    mode: JournalMode
    trials: int = 0
    killed: int = 0
    #: How many times the kill left the database at boundary k.
    at_boundary: dict[int, int] = field(default_factory=dict)
    #: Descriptions of trials where something was wrong (target: none).
    failures: list[str] = field(default_factory=list)


def calibrate(folder: Path, work: Path, mode: JournalMode, runs: int = 3) -> float:
    """Seconds a full, unkilled run takes in a child (snapshot included): the fastest of ``runs``.

    The fastest, so that a run slowed by a busy machine does not stretch the
    kill window past the end of most runs.
    """
    spans = []
    for n in range(runs):
        path = work / f"calibrate_{mode}_{n}.sqlite"
        make_database(path, mode)
        started = time.monotonic()
        code = migrate_in_child(path, folder, backup=True, kill_after=None)
        assert code == 0, code
        spans.append(time.monotonic() - started)
    return min(spans)


def run_trials(folder: Path, work: Path, mode: JournalMode, trials: int, seed: int | None = None) -> Outcome:
    """Run ``trials`` kill trials in ``mode``; every check failure is recorded, not raised."""
    rng = random.Random(seed)
    states = boundaries(folder, work, mode)
    span = calibrate(folder, work, mode)
    outcome = Outcome(mode)
    for n in range(trials):
        path = work / f"trial_{mode}_{n}.sqlite"
        make_database(path, mode)
        code = migrate_in_child(path, folder, backup=n % 2 == 0, kill_after=rng.uniform(0, span * 1.1))
        outcome.trials += 1
        if code is None:
            outcome.killed += 1
        elif code != 0:
            outcome.failures.append(f"trial {n}: the migrating process exited with {code}")
            continue
        problem = check(path, states)
        if isinstance(problem, str):
            outcome.failures.append(f"trial {n}: {problem}")
            continue
        outcome.at_boundary[problem] = outcome.at_boundary.get(problem, 0) + 1
        try:
            report = selfmigrate.migrate(path, str(folder), backup=False)
        except selfmigrate.SelfMigrateError as e:
            outcome.failures.append(f"trial {n}: the next start failed: {e}")
            continue
        if report.current_version != HEAD or fingerprint(path) != states[HEAD]:
            outcome.failures.append(f"trial {n}: the next start did not reach version {HEAD}")
        # A snapshot cut short by the kill is never listed, and the next snapshot's pruning removes it.
        selfmigrate.take_snapshot(path, keep=2)
        for leftover in path.parent.glob(f".{path.name}.*"):
            outcome.failures.append(f"trial {n}: a partial snapshot was not cleaned up: {leftover}")
        for snapshot in selfmigrate.list_snapshots(path)[1:]:
            if integrity(snapshot.path) != "ok" or fingerprint(snapshot.path) != states[0]:
                outcome.failures.append(f"trial {n}: snapshot {snapshot.name} is not the data from before")
    return outcome


def check(path: Path, states: list[str]) -> int | str:
    """The boundary ``path`` is at, or a description of what is wrong."""
    result = integrity(path)
    if result != "ok":
        return f"integrity_check: {result}"
    found = fingerprint(path)
    if found not in states:
        return "schema and data are at no migration boundary"
    k = states.index(found)
    versions = tracker_versions(path)
    if versions != list(range(1, k + 1)):
        return f"data is after migration {k} but the tracker lists {versions}"
    return k
