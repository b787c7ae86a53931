"""Crash safety: a process SIGKILLed at a random moment while migrating.

Each trial forks a real process that migrates a database with five pending
migrations and kills it after a random delay (see tests/crash_harness.py). The
database must then pass ``PRAGMA integrity_check``, hold the schema and data of
exactly one migration boundary with the tracker agreeing, and the next start
must complete. 26 trials per journal mode; benchmarks/stress_crash.py runs
hundreds.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from crash_harness import HEAD, run_trials, write_migrations

TRIALS = 26


@pytest.mark.parametrize("mode", ["delete", "wal"])
def test_killed_at_random_moments_the_database_is_at_a_boundary(tmp_path: Path, mode: t.Any) -> None:
    folder = write_migrations(tmp_path / "migrations")
    outcome = run_trials(folder, tmp_path, mode, TRIALS, seed=20261124)
    assert outcome.failures == []
    assert outcome.trials == TRIALS
    assert sum(outcome.at_boundary.values()) == TRIALS
    # The kills landed in the middle of the run, not only before or after it.
    assert outcome.killed >= TRIALS // 3, outcome
    assert len(outcome.at_boundary) >= 2, outcome.at_boundary
    assert set(outcome.at_boundary) <= set(range(HEAD + 1))
