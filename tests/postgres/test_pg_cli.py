"""The command line against PostgreSQL: the same commands, the same exit codes, passwords masked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
from pghelpers import rows, write

MIGRATIONS = {
    "0001_accounts.sql": """
        CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL);
        -- migrate:down
        DROP TABLE accounts;
    """,
    "0002_name.sql": """
        ALTER TABLE accounts ADD COLUMN name text;
        -- migrate:down
        ALTER TABLE accounts DROP COLUMN name;
    """,
}


def cli(url: str, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "selfmigrate", "--database", url, "--migrations", str(folder), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_status_plan_apply_history_verify_rollback(pg_url: str, tmp_path: Path) -> None:
    folder = write(tmp_path / "m", MIGRATIONS)
    url = pg_url.replace("postgresql://postgres@", "postgresql+psycopg://postgres:pw-secret@")
    status = cli(url, folder, "status")
    assert status.returncode == 1 and "0001_accounts" in status.stdout
    plan = cli(url, folder, "plan")
    assert plan.returncode == 0 and "ALTER TABLE accounts ADD COLUMN name text" in plan.stdout
    assert rows(pg_url, "SELECT to_regclass('accounts')") == [(None,)]
    applied = cli(url, folder, "apply")
    assert applied.returncode == 0, applied.stderr
    document = json.loads(cli(url, folder, "status", "--json").stdout)
    assert document["up_to_date"] and document["current_version"] == 2
    history = cli(url, folder, "history")
    assert history.returncode == 0 and "0002_name" in history.stdout
    verify = cli(url, folder, "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    rollback = cli(url, folder, "rollback", "--yes")
    assert rollback.returncode == 0, rollback.stderr
    assert rows(pg_url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'accounts'") == [
        ("id",),
        ("email",),
    ]
    everything = "".join(r.stdout + r.stderr for r in (status, plan, applied, history, verify, rollback))
    assert "pw-secret" not in everything and "***" in everything


def test_resolve_an_interrupted_non_transactional_migration(pg_url: str, tmp_path: Path) -> None:
    folder = write(tmp_path / "m", MIGRATIONS)
    assert cli(pg_url, folder, "apply").returncode == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO accounts (email) VALUES ('a'), ('a')")
    write(
        folder,
        {"0003_unique.sql": "-- migrate:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY u ON accounts (email);\n"},
    )
    assert cli(pg_url, folder, "apply").returncode == 5
    stuck = cli(pg_url, folder, "apply")
    assert stuck.returncode == 3 and "DROP INDEX CONCURRENTLY public.u;" in stuck.stderr
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP INDEX CONCURRENTLY public.u")
        conn.execute("DELETE FROM accounts WHERE id = (SELECT max(id) FROM accounts)")
    assert cli(pg_url, folder, "resolve", "3", "--retry").returncode == 0
    assert cli(pg_url, folder, "apply").returncode == 0
    assert rows(pg_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'u'::regclass") == [(True,)]
