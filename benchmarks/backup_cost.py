"""What the snapshot before migrating costs, on a 100 MB database.

Run it from the project root::

    .venv/bin/python benchmarks/backup_cost.py            # 100 MB
    .venv/bin/python benchmarks/backup_cost.py --mb 20

In one run it builds a database of about ``--mb`` megabytes (a table of rows
with 1 KB of random text, and an index) in a temporary folder, then times,
interleaved, several times each:

* ``file copy``: :func:`shutil.copyfile` of the database file — the baseline
  (what copying the file costs on this disk; not a safe way to copy a live
  database);
* ``file copy + fsync``: the same, flushed to disk as the snapshot is;
* ``snapshot``: :func:`selfmigrate.take_snapshot` — SQLite's online backup API
  into a new file, as ``apply`` does before migrating;
* ``quick_check``: ``PRAGMA quick_check``, which ``apply`` also runs before a
  run's first change;
* ``migrate +1 (backup on)`` / ``(backup off)``: :func:`selfmigrate.migrate`
  applying one small pending migration, with and without the snapshot.

It prints the median of each and the ratio snapshot / file copy. Figures depend
on the machine, its disk and its load; the ratios, measured in the same run,
are what to compare. No target: the figure is for the docs (what a deploy
with pending migrations pays per 100 MB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import typing as t
from pathlib import Path

import selfmigrate


def build(path: Path, megabytes: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE doc (id INTEGER PRIMARY KEY, body TEXT, n INTEGER)")
    rows = megabytes * 725  # about 1.38 KB per row with its index entry
    chunk = 5000
    for start in range(0, rows, chunk):
        conn.executemany(
            "INSERT INTO doc (body, n) VALUES (?, ?)",
            ((os.urandom(384).hex() + os.urandom(128).hex(), i) for i in range(start, min(rows, start + chunk))),
        )
    conn.execute("CREATE INDEX doc_n ON doc (n)")
    conn.commit()
    conn.close()


def copy_synced(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def timed(action: t.Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100, help="database size in MB (default 100)")
    parser.add_argument("--repeat", type=int, default=5, help="timings of each (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "app.sqlite"
        started = time.perf_counter()
        build(db, args.mb)
        size = db.stat().st_size
        print(f"database: {size / 1e6:.1f} MB, built in {time.perf_counter() - started:.1f} s")
        migrations = work / "migrations"
        migrations.mkdir()
        (migrations / "0001_init.sql").write_text("CREATE TABLE IF NOT EXISTS note (x);\n")
        selfmigrate.migrate(db, str(migrations), backup=False)
        snapshots = work / "snapshots"
        results: dict[str, list[float]] = {}

        def record(name: str, seconds: float) -> None:
            results.setdefault(name, []).append(seconds)

        version = 1
        for i in range(args.repeat):
            record("file copy", timed(lambda: shutil.copyfile(db, work / "copy.sqlite")))
            os.unlink(work / "copy.sqlite")
            record("file copy + fsync", timed(lambda: copy_synced(db, work / "copy.sqlite")))
            os.unlink(work / "copy.sqlite")
            record("snapshot", timed(lambda: selfmigrate.take_snapshot(db, directory=snapshots, keep=1)))

            def quick_check() -> None:
                conn = sqlite3.connect(db)
                conn.execute("PRAGMA quick_check").fetchall()
                conn.close()

            record("quick_check", timed(quick_check))
            for backup in (True, False):
                version += 1
                (migrations / f"{version:04d}_step.sql").write_text(f"INSERT INTO note VALUES ({version});\n")
                report = selfmigrate.migrate(db, str(migrations), backup=backup, backup_dir=snapshots, backup_keep=1)
                assert [r.version for r in report.applied] == [version]
                assert (report.snapshot is not None) == backup
                record(f"migrate +1 (backup {'on' if backup else 'off'})", report.duration_ms / 1000)
            print(f"  round {i + 1}/{args.repeat} done", file=sys.stderr)
        medians = {name: statistics.median(values) for name, values in results.items()}
        for name, value in medians.items():
            runs = ", ".join(f"{v * 1000:.0f}" for v in results[name])
            print(f"{name:26s} median {value * 1000:8.1f} ms  (runs: {runs})")
        print(f"snapshot / file copy: {medians['snapshot'] / medians['file copy']:.2f}x")
        print(f"snapshot / file copy + fsync: {medians['snapshot'] / medians['file copy + fsync']:.2f}x")
        extra = medians["migrate +1 (backup on)"] - medians["migrate +1 (backup off)"]
        print(f"what the snapshot adds to a migration run: {extra * 1000:.0f} ms ({size / 1e6:.0f} MB database)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
