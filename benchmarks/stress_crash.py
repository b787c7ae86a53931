"""Crash stress: SIGKILL a migrating process at random moments, hundreds of times.

Run it from the project root::

    .venv/bin/python benchmarks/stress_crash.py            # 300 trials per journal mode
    .venv/bin/python benchmarks/stress_crash.py --trials 50

Each trial (tests/crash_harness.py) forks a process that migrates a database
with five pending migrations (3000 rows rewritten, a slow Python migration, an
index, a table rebuilt) — taking a snapshot first on every other trial — and
kills it after a random delay between 0 and the time a whole run takes. It then
checks that ``PRAGMA integrity_check`` is ok, that the schema and data are
those of exactly one migration boundary with the tracker agreeing, that the
next start completes, and that snapshots hold the data from before.

It prints, per journal mode (rollback journal and WAL), how many trials ran,
how many processes were killed mid-run, where the kills left the database
(boundary k = after migration k), and the failures (target: 0). It exits
non-zero if there was any failure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from crash_harness import HEAD, run_trials, write_migrations  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=300, help="trials per journal mode (default 300)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one)")
    args = parser.parse_args()
    failures = 0
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = write_migrations(work / "migrations")
        for mode in ("delete", "wal"):
            started = time.monotonic()
            (work / mode).mkdir()
            outcome = run_trials(folder, work / mode, mode, args.trials, seed=args.seed)
            seconds = time.monotonic() - started
            total += outcome.trials
            failures += len(outcome.failures)
            spread = ", ".join(f"{k}: {outcome.at_boundary.get(k, 0)}" for k in range(HEAD + 1))
            print(
                f"{mode:6s}  trials {outcome.trials}  killed mid-run {outcome.killed}"
                f"  left at boundary {{{spread}}}  failures {len(outcome.failures)}  ({seconds:.1f} s)"
            )
            for failure in outcome.failures[:20]:
                print(f"  {failure}")
    print(f"total   trials {total}  failures {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
