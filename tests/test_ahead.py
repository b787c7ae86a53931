"""An older image on a newer database (issue 14): compatible migrations, the ahead
policies, and rolling back with the downs the tracker stored.

Each story applies "v2" (migrations 1-3) to a real database, writes data, then
starts "v1" (the same folder without file 3) on it, as an image rolled back to
the previous tag would.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import connected, dump

import selfmigrate
from selfmigrate.cli import cli
from selfmigrate.errors import AheadError, ChecksumMismatch, ConfigError, DiscoveryError, StateError

INIT = {
    "0001_create_note.sql": "CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\n"
    "-- migrate:down\nDROP TABLE note;\n",
    "0002_add_note_author.sql": "ALTER TABLE note ADD COLUMN author TEXT;\n"
    "-- migrate:down\nALTER TABLE note DROP COLUMN author;\n",
}
#: Incompatible: v1 code that inserts (body, author) would fail on a NOT NULL column.
INCOMPATIBLE = {
    "0003_add_note_owner.sql": "ALTER TABLE note ADD COLUMN owner TEXT NOT NULL DEFAULT 'x';\n"
    "UPDATE note SET owner = author;\n"
    "-- migrate:down\nALTER TABLE note DROP COLUMN owner;\n",
}
COMPATIBLE = {
    "0003_create_tag.sql": "-- migrate:compatible\nCREATE TABLE tag (note_id INTEGER, tag TEXT);\n"
    "-- migrate:down\nDROP TABLE tag;\n",
}
#: A Python migration whose down needs a helper of its module: the whole source is stored.
PYTHON = {
    "0003_split_body.py": '''
        """Move the first word of each body into a column of its own."""

        COLUMN = "first_word"


        def _drop(conn, column):
            conn.execute(f"ALTER TABLE note DROP COLUMN {column}")


        def up(conn):
            conn.execute(f"ALTER TABLE note ADD COLUMN {COLUMN} TEXT")
            conn.execute(f"UPDATE note SET {COLUMN} = substr(body, 1, instr(body || ' ', ' ') - 1)")


        def down(conn):
            _drop(conn, COLUMN)
        ''',
}


class Story:
    """A database that "v2" migrated, and the two sets of files."""

    def __init__(self, tmp_path: Path, newer: dict[str, str]) -> None:
        tmp_path.mkdir(exist_ok=True)
        self.db = tmp_path / "app.sqlite"
        self.v1 = tmp_path / "v1"
        self.v2 = tmp_path / "v2"
        for folder, files in ((self.v1, INIT), (self.v2, {**INIT, **newer})):
            folder.mkdir()
            for name, text in files.items():
                (folder / name).write_text(textwrap.dedent(text).lstrip("\n"))
        selfmigrate.migrate(self.db, str(self.v1), backup=False)
        with connected(self.db) as conn:
            conn.executemany("INSERT INTO note (body, author) VALUES (?, ?)", [("hello world", "ann"), ("x", "bob")])
        self.before_v2 = dump(self.db)
        selfmigrate.migrate(self.db, str(self.v2), backup=False)
        self.after_v2 = dump(self.db)

    def versions(self) -> list[int]:
        with connected(self.db) as conn:
            return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


def app_part(lines: list[str]) -> list[str]:
    return [line for line in lines if "schema_migrations" not in line]


@pytest.fixture
def incompatible(tmp_path: Path) -> Story:
    return Story(tmp_path / "incompatible", INCOMPATIBLE)


@pytest.fixture
def compatible(tmp_path: Path) -> Story:
    return Story(tmp_path / "compatible", COMPATIBLE)


# --- the policies ------------------------------------------------------------------


def test_warn_is_the_default_and_starts(incompatible: Story, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="selfmigrate"):
        report = selfmigrate.migrate(incompatible.db, str(incompatible.v1))
    assert report.ok and report.current_version == 3 and report.rolled_back == []
    assert "0003_add_note_owner applied" in caplog.text and "not marked compatible" in caplog.text
    assert dump(incompatible.db) == incompatible.after_v2


def test_refuse_raises_naming_the_migration_and_the_command(incompatible: Story) -> None:
    with pytest.raises(AheadError) as raised:
        selfmigrate.migrate(incompatible.db, str(incompatible.v1), ahead="refuse")
    message = str(raised.value)
    assert "0003_add_note_owner" in message and "not marked compatible" in message
    assert "python -m selfmigrate rollback --to 2" in message
    assert raised.value.versions == (3,) and raised.value.target == 2 and raised.value.exit_code == 7
    assert dump(incompatible.db) == incompatible.after_v2


def test_refuse_raises_even_under_the_log_failure_policy(incompatible: Story) -> None:
    with pytest.raises(AheadError):
        selfmigrate.migrate(incompatible.db, str(incompatible.v1), ahead="refuse", on_failure="log")
    assert dump(incompatible.db) == incompatible.after_v2


def test_rollback_undoes_from_the_stored_down_after_a_snapshot(incompatible: Story, tmp_path: Path) -> None:
    report = selfmigrate.migrate(incompatible.db, str(incompatible.v1), ahead="rollback")
    assert [r.version for r in report.rolled_back] == [3] and report.applied == []
    assert report.current_version == 2
    assert app_part(dump(incompatible.db)) == app_part(incompatible.before_v2)  # data from before 3 intact
    assert report.snapshot is not None
    snapshot = Path(report.snapshot)
    assert snapshot.exists() and app_part(dump(snapshot)) == app_part(incompatible.after_v2)
    # The next start of v1 is a plain up-to-date start; v2 again re-applies 3.
    assert selfmigrate.migrate(incompatible.db, str(incompatible.v1), ahead="rollback").rolled_back == []
    again = selfmigrate.migrate(incompatible.db, str(incompatible.v2), backup=False)
    assert [r.version for r in again.applied] == [3]
    assert app_part(dump(incompatible.db)) == app_part(incompatible.after_v2)


def test_rollback_refuses_when_a_migration_has_no_down(tmp_path: Path) -> None:
    story = Story(tmp_path, {"0003_add_owner.sql": "ALTER TABLE note ADD COLUMN owner TEXT NOT NULL DEFAULT '';\n"})
    with pytest.raises(AheadError) as raised:
        selfmigrate.migrate(story.db, str(story.v1), ahead="rollback")
    message = str(raised.value)
    assert "0003_add_owner has no down" in message and "nothing was rolled back" in message
    assert "snapshots" in message  # what to do instead
    assert dump(story.db) == story.after_v2


def test_rollback_needs_snapshots(incompatible: Story) -> None:
    with pytest.raises(ConfigError, match="snapshot"):
        selfmigrate.migrate(incompatible.db, str(incompatible.v1), ahead="rollback", backup=False)
    assert dump(incompatible.db) == incompatible.after_v2


def test_an_unknown_policy_is_a_config_error_even_when_up_to_date(incompatible: Story) -> None:
    selfmigrate.migrate(incompatible.db, str(incompatible.v2))
    with pytest.raises(ConfigError, match="warn, refuse, rollback"):
        selfmigrate.migrate(incompatible.db, str(incompatible.v2), ahead="ignore")  # type: ignore[arg-type]


def test_only_compatible_ahead_starts_normally_whatever_the_policy(
    compatible: Story, caplog: pytest.LogCaptureFixture
) -> None:
    for policy in ("warn", "refuse", "rollback"):
        with caplog.at_level(logging.INFO, logger="selfmigrate"):
            report = selfmigrate.migrate(compatible.db, str(compatible.v1), ahead=policy)  # type: ignore[arg-type]
        assert report.ok and report.rolled_back == [] and report.current_version == 3
    assert "0003_create_tag, marked compatible" in caplog.text
    assert "WARNING" not in [r.levelname for r in caplog.records]
    assert dump(compatible.db) == compatible.after_v2


def test_rollback_undoes_newest_first_down_to_the_oldest_incompatible(tmp_path: Path) -> None:
    newer = {
        **COMPATIBLE,  # 3, compatible: stays
        "0004_add_note_owner.sql": INCOMPATIBLE["0003_add_note_owner.sql"],  # 4: goes
        "0005_create_label.sql": "-- migrate:compatible\nCREATE TABLE label (x);\n-- migrate:down\nDROP TABLE label;\n",
    }
    story = Story(tmp_path, newer)
    report = selfmigrate.migrate(story.db, str(story.v1), ahead="rollback")
    assert [r.version for r in report.rolled_back] == [5, 4]
    assert story.versions() == [1, 2, 3]
    with connected(story.db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "tag" in tables and "label" not in tables


def test_flask_reads_selfmigrate_ahead(incompatible: Story) -> None:
    flask = pytest.importorskip("flask")
    app = flask.Flask("ahead_app")
    app.config.update(SELFMIGRATE_DATABASE=str(incompatible.db), SELFMIGRATE_MIGRATIONS=str(incompatible.v1))
    app.config["SELFMIGRATE_AHEAD"] = "refuse"
    with pytest.raises(AheadError, match="rollback --to 2"):
        selfmigrate.apply(app)
    bad = flask.Flask("ahead_app_2")
    bad.config.update(SELFMIGRATE_DATABASE=str(incompatible.db), SELFMIGRATE_MIGRATIONS=str(incompatible.v1))
    bad.config["SELFMIGRATE_AHEAD"] = "never"
    with pytest.raises(ConfigError, match="SELFMIGRATE_AHEAD"):
        selfmigrate.apply(bad)
    assert dump(incompatible.db) == incompatible.after_v2


def test_the_command_line_reads_the_policy_from_the_environment_and_pyproject(
    incompatible: Story, tmp_path: Path
) -> None:
    """``python -m selfmigrate apply`` run by an older image follows SELFMIGRATE_AHEAD, or
    the project's [tool.selfmigrate] table, as startup does; nothing is written."""
    args = ["-d", str(incompatible.db), "-m", str(incompatible.v1), "apply"]
    refused = CliRunner().invoke(cli, args, env={"SELFMIGRATE_AHEAD": "refuse"})
    assert refused.exit_code == AheadError.exit_code, refused.output
    assert "0003_add_note_owner" in refused.stderr
    assert dump(incompatible.db) == incompatible.after_v2
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[tool.selfmigrate]\nahead = "refuse"\n')
    result = subprocess.run(
        [sys.executable, "-m", "selfmigrate", *args],
        cwd=project,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SELFMIGRATE_")},
    )
    assert result.returncode == AheadError.exit_code, result.stderr
    assert dump(incompatible.db) == incompatible.after_v2
    wrong = CliRunner().invoke(cli, args, env={"SELFMIGRATE_AHEAD": "sometimes"})
    assert wrong.exit_code == ConfigError.exit_code and "SELFMIGRATE_AHEAD" in wrong.stderr


def test_workers_starting_together_undo_each_migration_once(tmp_path: Path) -> None:
    newer = {
        **INCOMPATIBLE,
        "0004_create_tag.sql": "CREATE TABLE tag (x);\n-- migrate:down\nDROP TABLE tag;\n",
    }
    story = Story(tmp_path, newer)
    script = (
        "import sys, selfmigrate\n"
        "r = selfmigrate.migrate(sys.argv[1], sys.argv[2], ahead='rollback')\n"
        "print(','.join(str(x.version) for x in r.rolled_back))\n"
    )
    command = [sys.executable, "-c", script, str(story.db), str(story.v1)]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(4)]
    undone = [v for w in workers for v in w.communicate(timeout=60)[0].strip().split(",") if v]
    assert [w.returncode for w in workers] == [0, 0, 0, 0]
    assert sorted(undone) == ["3", "4"]  # each exactly once, across all workers
    assert story.versions() == [1, 2]
    assert app_part(dump(story.db)) == app_part(story.before_v2)


# --- rolling back by hand from the older code -----------------------------------------


def test_cli_rollback_from_the_older_code_uses_the_stored_down_and_says_so(incompatible: Story) -> None:
    result = CliRunner().invoke(
        cli, ["-d", str(incompatible.db), "-m", str(incompatible.v1), "rollback", "--to", "2", "--yes"]
    )
    assert result.exit_code == 0, result.output
    assert "0003_add_note_owner  (its file is not in the migrations: the down stored in the tracker runs)" in (
        result.stdout
    )
    assert "Rolled back 0003_add_note_owner with the down stored in the tracker in" in result.stdout
    assert app_part(dump(incompatible.db)) == app_part(incompatible.before_v2)
    assert incompatible.versions() == [1, 2]


def test_a_python_down_is_stored_and_run_from_the_tracker(tmp_path: Path) -> None:
    story = Story(tmp_path, PYTHON)
    with connected(story.db) as conn:
        assert conn.execute("SELECT first_word FROM note ORDER BY id").fetchall() == [("hello",), ("x",)]
        kind, source = conn.execute(
            "SELECT kind, down_script FROM schema_migrations_rollback WHERE version = 3"
        ).fetchone()
    assert kind == "py" and "def _drop(conn, column):" in source  # the whole module, helpers included
    runner = selfmigrate.Runner(story.db, str(story.v1), backup=False)
    (body,) = runner.rollback_plan(target=2)
    assert body.from_tracker and body.migration.location == "0003_split_body.py as stored in schema_migrations_rollback"
    report = runner.rollback(target=2)
    assert [r.version for r in report.applied] == [3]
    assert app_part(dump(story.db)) == app_part(story.before_v2)


def test_a_stored_down_whose_checksum_no_longer_matches_is_refused(incompatible: Story) -> None:
    with connected(incompatible.db) as conn:
        conn.execute("UPDATE schema_migrations_rollback SET down_script = 'DROP TABLE note;' WHERE version = 3")
    tampered = dump(incompatible.db)
    runner = selfmigrate.Runner(incompatible.db, str(incompatible.v1))
    for attempt in (lambda: runner.rollback(target=2), lambda: runner.rollback_plan(target=2)):
        with pytest.raises(ChecksumMismatch) as raised:
            attempt()
        assert "0003_add_note_owner" in str(raised.value) and "does not match the checksum" in str(raised.value)
    with pytest.raises(ChecksumMismatch):
        selfmigrate.migrate(incompatible.db, str(incompatible.v1), ahead="rollback")
    assert dump(incompatible.db) == tampered  # nothing ran, no table dropped
    # With its file present and unchanged, the file is what runs, not the stored copy.
    report = selfmigrate.Runner(incompatible.db, str(incompatible.v2), backup=False).rollback(target=2)
    assert [r.version for r in report.applied] == [3]
    assert app_part(dump(incompatible.db)) == app_part(incompatible.before_v2)


def test_a_migration_without_a_down_stays_one_that_cannot_be_rolled_back(tmp_path: Path) -> None:
    story = Story(tmp_path, {"0003_add_owner.sql": "ALTER TABLE note ADD COLUMN owner TEXT;\n"})
    runner = selfmigrate.Runner(story.db, str(story.v1))
    with pytest.raises(ConfigError, match="0003_add_owner: it has no down"):
        runner.rollback(target=2)
    assert dump(story.db) == story.after_v2


def test_status_tells_ahead_compatible_from_incompatible(compatible: Story, incompatible: Story) -> None:
    def status(story: Story) -> tuple[int, str]:
        result = CliRunner().invoke(cli, ["-d", str(story.db), "-m", str(story.v1), "status", "--json"])
        return result.exit_code, json.loads(result.stdout)["state"]

    assert status(compatible) == (0, "ahead-compatible")
    assert status(incompatible) == (7, "ahead-incompatible")
    text = CliRunner().invoke(cli, ["-d", str(compatible.db), "-m", str(compatible.v1), "status"])
    assert text.exit_code == 0 and "marked compatible: this code runs on the database as it is" in text.stdout


# --- the compatible marker -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "-- migrate:compatible\nCREATE TABLE t (x);\n",
        "-- MIGRATE:COMPATIBLE\n-- migrate:no-transaction\nCREATE TABLE t (x);\n",
        "/* licence */\n-- migrate:compatible\nCREATE TABLE t (x);\n-- migrate:down\nDROP TABLE t;\n",
    ],
)
def test_the_sql_marker(tmp_path: Path, text: str) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "0001_t.sql").write_text(text)
    (migration,) = selfmigrate.MigrationRegistry(str(folder)).migrations
    assert migration.load().compatible


@pytest.mark.parametrize(
    "text",
    [
        "-- migrate: compatible\nCREATE TABLE t (x);\n",
        "-- migrate compatible\nCREATE TABLE t (x);\n",
        "--migrate:compatable\nCREATE TABLE t (x);\n",
        "-- migrate:compatible transaction:false\nCREATE TABLE t (x);\n",
        "CREATE TABLE t (x);\n-- migrate:compatible\n",
        "CREATE TABLE t (x);\n-- migrate:down\n-- migrate:compatible\nDROP TABLE t;\n",
        "/* migrate:compatible */\nCREATE TABLE t (x);\n",
    ],
)
def test_near_misses_of_the_sql_marker_are_errors(tmp_path: Path, text: str) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "0001_t.sql").write_text(text)
    db = tmp_path / "app.sqlite"
    with pytest.raises(DiscoveryError, match="0001_t.sql, line") as raised:
        selfmigrate.migrate(db, str(folder))
    assert "migrate:compatible" in str(raised.value)
    if db.exists():
        with connected(db) as conn:
            assert not conn.execute("SELECT name FROM sqlite_master").fetchall()


@pytest.mark.parametrize(
    ("line", "compatible"),
    [("compatible = True", True), ("compatible = False", False), ("", False)],
)
def test_the_python_attribute(tmp_path: Path, line: str, compatible: bool) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "0001_t.py").write_text(f"{line}\n\ndef up(conn):\n    conn.execute('CREATE TABLE t (x)')\n")
    (migration,) = selfmigrate.MigrationRegistry(str(folder)).migrations
    assert migration.load().compatible is compatible


@pytest.mark.parametrize("line", ["compatible = 'yes'", "compatible = 1", "COMPATIBLE = True", "is_compatible = True"])
def test_python_near_misses_are_errors(tmp_path: Path, line: str) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "0001_t.py").write_text(f"{line}\n\ndef up(conn):\n    conn.execute('CREATE TABLE t (x)')\n")
    db = tmp_path / "app.sqlite"
    with pytest.raises(DiscoveryError, match="0001_t.py"):
        selfmigrate.migrate(db, str(folder))
    if db.exists():
        with connected(db) as conn:
            assert not conn.execute("SELECT name FROM sqlite_master").fetchall()


def test_the_tracker_records_compatible_and_kind(compatible: Story) -> None:
    rows = {row.version: row for row in selfmigrate.Runner(compatible.db, str(compatible.v2)).history()}
    assert rows[3].compatible is True and rows[3].kind == "sql" and rows[3].down == "stored"
    assert rows[1].compatible is False


def test_a_file_present_but_edited_is_still_refused(incompatible: Story) -> None:
    edited = incompatible.v2 / "0003_add_note_owner.sql"
    edited.write_text(edited.read_text() + "-- edited\n")
    with pytest.raises(StateError, match="edited"):
        selfmigrate.Runner(incompatible.db, str(incompatible.v2)).rollback(target=2)
    assert dump(incompatible.db) == incompatible.after_v2


def test_copy_of_the_folder_without_file_3_is_what_v1_is(incompatible: Story) -> None:
    # Guard for the stories above: v1 really lacks the file, v2 has it.
    assert not (incompatible.v1 / "0003_add_note_owner.sql").exists()
    assert (incompatible.v2 / "0003_add_note_owner.sql").exists()
    shutil.rmtree(incompatible.v2)  # the newer image is gone; the database still knows how to go back
    assert selfmigrate.migrate(incompatible.db, str(incompatible.v1), ahead="rollback").current_version == 2
