"""Real processes against one PostgreSQL database: released at once, behind a slow migration,
through pgbouncer, and SIGKILLed at random moments (benchmarks/stress_postgres.py runs more)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import psycopg
import pytest
from pgharness import NO_TRANSACTION, apply_duration, exactly_once, kill_trial, outcomes, start, write_migrations
from pghelpers import dump, rows, write

import selfmigrate
from selfmigrate.errors import ConfigError

PROCESSES = 16
COUNT = 20


@pytest.mark.parametrize("round_", range(2))
def test_sixteen_processes_at_once_apply_each_migration_exactly_once(pg_url: str, tmp_path: Path, round_: int) -> None:
    folder = write_migrations(tmp_path / "m", COUNT)
    results = outcomes(start(pg_url, folder, PROCESSES, time.time() + 1.5))
    exactly_once(results, pg_url, COUNT)


def test_half_start_while_a_slow_migration_holds_the_lock(pg_url: str, tmp_path: Path) -> None:
    folder = write_migrations(tmp_path / "m", COUNT, slow=10, sleep=2.0)
    first = start(pg_url, folder, PROCESSES // 2, time.time() + 1.0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the slow migration is running (it holds the lock)
        found = rows(
            pg_url,
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(2.0)%' AND pid <> pg_backend_pid()",
        )
        if found[0][0]:
            break
        time.sleep(0.02)
    else:
        pytest.fail("the slow migration never started")
    second = start(pg_url, folder, PROCESSES // 2, 0.0)
    exactly_once(outcomes(first + second), pg_url, COUNT)


def test_sixteen_processes_through_pgbouncer_in_transaction_mode(
    pgbouncer_url: str, pg_url: str, tmp_path: Path
) -> None:
    folder = write_migrations(tmp_path / "m", COUNT)
    results = outcomes(start(pgbouncer_url, folder, PROCESSES, time.time() + 1.5))
    exactly_once(results, pg_url, COUNT)
    assert selfmigrate.migrate(pgbouncer_url, str(folder)).applied == []


def test_non_transactional_migration_through_pgbouncer_fails_fast_with_the_fix(
    pgbouncer_url: str, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write(
        tmp_path / "m",
        {
            "0001_t.sql": "CREATE TABLE t (id int);\n",
            "0002_index.sql": "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY t_id ON t (id);\n",
        },
    )
    before = dump(pg_url)
    with pytest.raises(ConfigError) as caught:
        selfmigrate.migrate(pgbouncer_url, str(folder), lock_timeout=30)
    message = str(caught.value)
    assert "pooler" in message and "SELFMIGRATE_DIRECT_DATABASE" in message and ":5432/" in message
    assert dump(pg_url) == before
    monkeypatch.setenv("SELFMIGRATE_DIRECT_DATABASE", pg_url)
    report = selfmigrate.migrate(pgbouncer_url, str(folder))
    assert [r.version for r in report.applied] == [1, 2]
    assert rows(pg_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_id'::regclass") == [(True,)]


def test_a_pgbouncer_on_the_servers_own_port_is_still_told_apart_and_refused_fast(
    pgbouncer_on_the_servers_port_url: str, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The URL the app gives is the pooler's, on the usual port (127.0.0.2:5432 in front of
    # 127.0.0.1:5432); no direct URL is configured. It must fail at once, not wait for a lock.
    url = pgbouncer_on_the_servers_port_url
    folder = write(
        tmp_path / "m",
        {
            "0001_t.sql": "CREATE TABLE t (id int);\n",
            "0002_index.sql": "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY t_id ON t (id);\n",
        },
    )
    monkeypatch.delenv("SELFMIGRATE_DIRECT_DATABASE", raising=False)
    before = dump(pg_url)
    with pytest.raises(ConfigError) as caught:  # refused before any wait: not a LockTimeout
        selfmigrate.migrate(url, str(folder), lock_timeout=60)
    message = str(caught.value)
    assert "pooler" in message and "server process" in message and "SELFMIGRATE_DIRECT_DATABASE" in message
    assert dump(pg_url) == before
    # Transactional migrations still go through it; with the direct URL, the index too.
    write(folder, {"0002_index.sql": "CREATE INDEX t_id ON t (id);\n"})
    assert [r.version for r in selfmigrate.migrate(url, str(folder)).applied] == [1, 2]
    write(folder, {"0003_index.sql": "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY t_id3 ON t (id);\n"})
    monkeypatch.setenv("SELFMIGRATE_DIRECT_DATABASE", pg_url)
    assert [r.version for r in selfmigrate.migrate(url, str(folder)).applied] == [3]


def test_sigkill_at_random_moments_leaves_a_migration_boundary(pg_server: str, tmp_path: Path) -> None:
    folder = write_migrations(tmp_path / "m", COUNT, no_transaction=True)
    rng = random.Random(12)
    window = apply_duration(pg_server, folder)  # kills spread over a whole run
    found = [kill_trial(pg_server, folder, COUNT, rng, window=window) for _ in range(24)]
    assert any(0 < f["applied_at_kill"] < COUNT for f in found), found  # some kills landed mid-apply


def test_killed_non_transactional_migration_is_reported_not_rerun(pg_url: str, tmp_path: Path) -> None:
    folder = write_migrations(tmp_path / "m", COUNT, no_transaction=True)
    (folder / f"{NO_TRANSACTION:04d}_index.sql").write_text(
        "-- migrate:no-transaction\nSELECT pg_sleep(30);\nCREATE INDEX CONCURRENTLY ran_version ON ran (version);\n"
    )
    (process,) = start(pg_url, folder, 1, 0.0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = rows(pg_url, "SELECT to_regclass('schema_migrations') IS NOT NULL")[0][0] and rows(
            pg_url, "SELECT state FROM schema_migrations WHERE version = %s", (NO_TRANSACTION,)
        )
        if state:
            break
        time.sleep(0.02)
    process.kill()
    process.communicate(timeout=30)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # the server-side statement dies with it
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()"
        )
    (after,) = outcomes(start(pg_url, folder, 1, 0.0))
    assert after["error"] == "StateError" and f"resolve {NO_TRANSACTION} --retry" in after["message"]
    assert rows(pg_url, "SELECT state FROM schema_migrations WHERE version = %s", (NO_TRANSACTION,)) == [("started",)]
    assert rows(pg_url, "SELECT max(version) FROM ran") == [(NO_TRANSACTION - 1,)]
