"""What a container health check pays for ``python -m selfmigrate status``.

Run it from the project root::

    .venv/bin/python benchmarks/cli_status.py

In one run it writes migrations folders of 100 and 1000 ``.sql`` files into a
temporary folder, migrates a database with each, and then times, in fresh
processes, interleaved:

* ``baseline``: ``python -c "import sqlite3"`` — the interpreter's own start;
* ``status N``: ``python -m selfmigrate status`` on the database with N
  migrations (exit code 0: up to date).

It prints the median wall time of each and the cost of ``status`` over the
baseline. Figures depend on the machine and its load; compare the differences
and ratios, which are measured in the same run. No target: the figure is for
choosing a health check interval.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_project(root: Path, count: int) -> tuple[Path, Path]:
    folder = root / f"migrations_{count}"
    folder.mkdir()
    (folder / "0001_create_t.sql").write_text("CREATE TABLE t (id INTEGER PRIMARY KEY);\n")
    for version in range(2, count + 1):
        (folder / f"{version:04d}_add_c{version}.sql").write_text(f"ALTER TABLE t ADD COLUMN c{version} INTEGER;\n")
    database = root / f"app_{count}.sqlite"
    subprocess.run(
        [sys.executable, "-m", "selfmigrate", "-d", str(database), "-m", str(folder), "apply"],
        check=True,
        capture_output=True,
    )
    return database, folder


def wall(command: list[str], env: dict[str, str], expect: int = 0) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True)
    elapsed = time.perf_counter() - started
    if done.returncode != expect:
        raise SystemExit(f"{command} exited {done.returncode}: {done.stderr.decode()}")
    return elapsed * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed runs of each (default 15)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        projects = {count: write_project(root, count) for count in (100, 1000)}
        env = dict(os.environ)
        runs: dict[str, list[float]] = {"baseline": [], **{f"status {n}": [] for n in projects}}
        for _ in range(args.rounds):
            runs["baseline"].append(wall([sys.executable, "-c", "import sqlite3"], env))
            for count, (database, folder) in projects.items():
                command = [sys.executable, "-m", "selfmigrate", "-d", str(database), "-m", str(folder), "status"]
                runs[f"status {count}"].append(wall(command, env))
    medians = {name: statistics.median(times) for name, times in runs.items()}
    base = medians["baseline"]
    print(f"{args.rounds} rounds, median wall time per process:")
    for name, median in medians.items():
        extra = "" if name == "baseline" else f"  (+{median - base:.0f} ms over baseline, x{median / base:.1f})"
        print(f"  {name:<12} {median:7.1f} ms{extra}")


if __name__ == "__main__":
    main()
