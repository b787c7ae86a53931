"""Make ``database.sqlite``: a database migrated by selfmigrate 0.1.0 (the release before
the tracker stored downs), for the test of the tracker upgrade (tests/test_tracker_upgrade.py).

Run with the released code, from a checkout of that release::

    git worktree add /tmp/release <commit> && cd /tmp/release
    python -m venv .venv && .venv/bin/pip install -e .
    .venv/bin/python <this repo>/tests/data/release_0_1_0/make_database.py

It applies migrations 0001-0003 (SQL with a down, Python with a down, SQL without
one) in one run and 0004 in a second run, writes a few rows between the runs, and
leaves the tracker and its fingerprint table as that release made them. Never
regenerate the committed file with newer code: its point is to be the old layout.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

import selfmigrate

HERE = Path(__file__).resolve().parent


def main() -> None:
    target = HERE / "database.sqlite"
    with tempfile.TemporaryDirectory() as scratch:
        first = Path(scratch) / "first"
        first.mkdir()
        for path in sorted((HERE / "migrations").iterdir()):
            if path.name < "0004":
                shutil.copy2(path, first / path.name)
        database = Path(scratch) / "database.sqlite"
        selfmigrate.migrate(database, str(first), backup=False)
        conn = sqlite3.connect(database)
        with conn:
            conn.executemany(
                "INSERT INTO note (body, author) VALUES (?, ?)", [("first note", "ann"), ("second note", "bob")]
            )
            conn.execute("INSERT INTO tag (note_id, tag) VALUES (1, 'kept')")
        conn.close()
        selfmigrate.migrate(database, str(HERE / "migrations"), backup=False)
        conn = sqlite3.connect(database)
        conn.execute("PRAGMA journal_mode = DELETE")  # one file, no -wal beside it
        conn.execute("VACUUM")
        conn.close()
        shutil.copyfile(database, target)
    print(f"wrote {target} with selfmigrate {selfmigrate.__version__} from {selfmigrate.__file__}", file=sys.stderr)


if __name__ == "__main__":
    main()
