"""The fast paths of issue 10 and the guarantees they keep.

Each fast path is seen from outside, in fresh processes: a start that took it
loaded no runner module (the full run lives in the runner); a start that did
not take it did. Speed itself is measured in benchmarks/scale.py, never here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from helpers import dump

import selfmigrate
from selfmigrate import MigrationError

FILES = {
    "0001_note.sql": "CREATE TABLE note (body TEXT);\n-- migrate:down\nDROP TABLE note;\n",
    "0002_seed.py": 'def up(conn):\n    conn.execute("INSERT INTO note VALUES (\'kept\')")\n',
    "0003_more.sql": "INSERT INTO note VALUES ('more');\n",
}

#: A start in a fresh process: prints the report and whether the full run (the runner) was loaded.
START = """\
import json, sys
import selfmigrate
try:
    report = selfmigrate.migrate(sys.argv[1], sys.argv[2], lock_timeout=float(sys.argv[3]))
    result = {"applied": [r.version for r in report.applied], "version": report.current_version}
except selfmigrate.SelfMigrateError as e:
    result = {"error": type(e).__name__, "message": str(e)}
result["full_run"] = any(m.startswith("selfmigrate.") and m.endswith(".runner") for m in sys.modules)
print(json.dumps(result))
"""

#: Holds the database's write lock until its stdin closes.
LOCK_HOLDER = """\
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


class App:
    """An app tree ``root/<package>/migrations`` (or a top-level folder) and its database."""

    def __init__(self, root: Path, location: str, folder: Path) -> None:
        self.root = root
        self.location = location
        self.folder = folder
        self.db = root / "app.sqlite"

    def start(self, *, lock_timeout: float = 30.0) -> dict[str, t.Any]:
        """One start in a fresh process, as an app's is (its own sys.path, warm bytecode)."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(self.root), os.environ.get("PYTHONPATH", "")])}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        done = subprocess.run(
            [sys.executable, "-c", START, str(self.db), self.location, str(lock_timeout)],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.root.parent,  # not the app's folder: a name is found on sys.path
            timeout=120,
            check=True,
        )
        result: dict[str, t.Any] = json.loads(done.stdout)
        return result

    def deploy(self) -> None:
        """Rebuild the tree as an image build does: every file new (inode, change time), same content and mtime."""
        tree = self.root / self.location.split(".")[0]
        built = tree.with_name(tree.name + ".new")
        shutil.copytree(tree, built, symlinks=True)  # copy2: contents and mtimes kept
        old = tree.with_name(tree.name + ".old")
        os.rename(tree, old)
        os.rename(built, tree)
        shutil.rmtree(old)


def write(folder: Path, files: dict[str, str], *, init: bool) -> None:
    folder.mkdir(parents=True)
    if init:
        (folder / "__init__.py").write_text("")
    for name, text in files.items():
        (folder / name).write_text(text)


@pytest.fixture
def app(tmp_path: Path) -> App:
    """A package ``perfapp`` with a regular migrations package."""
    root = tmp_path / "site"
    (root / "perfapp").mkdir(parents=True)
    (root / "perfapp" / "__init__.py").write_text("")
    write(root / "perfapp" / "migrations", FILES, init=True)
    return App(root, "perfapp.migrations", root / "perfapp" / "migrations")


def edit_keeping_size_and_mtime(path: Path, text: str) -> None:
    """Rewrite ``path`` with ``text`` of the same length and put its mtime back (the ctime moves on)."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


# --- after a deploy that changed no migration ------------------------------------------------


def test_first_start_after_a_deploy_verifies_and_recertifies_then_starts_are_fast(app: App) -> None:
    assert app.start()["applied"] == [1, 2, 3]
    assert app.start()["full_run"] is False  # right after applying: the fast path
    before = dump(app.db)

    app.deploy()
    first = app.start()
    assert first == {"applied": [], "version": 3, "full_run": True}  # every file verified
    for _ in range(2):
        assert app.start() == {"applied": [], "version": 3, "full_run": False}
    rows = lambda d: [line for line in d if "_fingerprint" not in line]  # noqa: E731
    assert rows(dump(app.db)) == rows(before)  # only the fingerprint was rewritten


def test_an_edit_after_a_recertified_deploy_is_caught(app: App) -> None:
    app.start()
    app.deploy()
    assert app.start()["full_run"] is True  # re-certified the copied files
    assert app.start()["full_run"] is False
    before = dump(app.db)

    edit_keeping_size_and_mtime(app.folder / "0001_note.sql", FILES["0001_note.sql"].replace("body", "text"))
    result = app.start()

    assert result["error"] == "ChecksumMismatch" and "0001_note.sql" in result["message"]
    assert dump(app.db) == before
    assert app.start()["error"] == "ChecksumMismatch"  # and at every start after it


def test_recertification_does_not_wait_for_a_held_write_lock(app: App) -> None:
    app.start()
    app.deploy()
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(app.db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        # A start that waited for the lock would wait its whole hour; this one skips the write.
        assert app.start(lock_timeout=3600) == {"applied": [], "version": 3, "full_run": True}
        assert app.start(lock_timeout=3600)["full_run"] is True  # not certified: verified again
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait(timeout=60)
        holder.stdout.close()
    assert app.start()["full_run"] is True  # the lock is free: this start certifies
    assert app.start()["full_run"] is False


def test_a_new_migration_after_a_deploy_is_applied(app: App) -> None:
    app.start()
    app.deploy()
    app.start()
    (app.folder / "0004_last.sql").write_text("INSERT INTO note VALUES ('last');\n")
    assert app.start()["applied"] == [4]
    assert app.start()["full_run"] is False


# --- migrations folders without __init__.py ------------------------------------------------


@pytest.mark.parametrize("inside", [True, False], ids=["inside-a-package", "top-level"])
def test_a_folder_without_init_gets_the_fast_path(tmp_path: Path, inside: bool) -> None:
    root = tmp_path / "site"
    if inside:
        (root / "nsapp").mkdir(parents=True)
        (root / "nsapp" / "__init__.py").write_text("")
        folder, location = root / "nsapp" / "migrations", "nsapp.migrations"
    else:
        folder, location = root / "ns_migrations", "ns_migrations"
    write(folder, FILES, init=False)
    app = App(root, location, folder)
    assert app.start()["applied"] == [1, 2, 3]
    assert app.start() == {"applied": [], "version": 3, "full_run": False}

    before = dump(app.db)
    edit_keeping_size_and_mtime(folder / "0003_more.sql", FILES["0003_more.sql"].replace("more", "less"))
    assert app.start()["error"] == "ChecksumMismatch"
    assert dump(app.db) == before


# --- CLI commands that re-certify ----------------------------------------------------------


def cli(app: App, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(app.root), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "selfmigrate", "-d", str(app.db), "-m", app.location, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=app.root.parent,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("command", [["apply"], ["verify"]])
def test_cli_apply_and_verify_recertify_after_a_deploy(app: App, command: list[str]) -> None:
    app.start()
    app.deploy()
    done = cli(app, *command)
    assert done.returncode == 0, done.stderr
    assert app.start() == {"applied": [], "version": 3, "full_run": False}


def test_rehash_recertifies(app: App) -> None:
    app.start()
    path = app.folder / "0003_more.sql"
    path.write_text(path.read_text() + "-- a cosmetic comment\n")
    assert app.start()["error"] == "ChecksumMismatch"
    done = cli(app, "rehash", "3")
    assert done.returncode == 0, done.stderr
    assert app.start() == {"applied": [], "version": 3, "full_run": False}


def test_status_after_a_deploy_still_sees_an_edit(app: App) -> None:
    app.start()
    assert cli(app, "status").returncode == 0
    app.deploy()
    assert cli(app, "status").returncode == 0
    edit_keeping_size_and_mtime(app.folder / "0001_note.sql", FILES["0001_note.sql"].replace("body", "text"))
    done = cli(app, "status", "--json")
    assert done.returncode == 3
    states = {m["version"]: m["state"] for m in json.loads(done.stdout)["migrations"]}
    assert states == {1: "edited", 2: "applied", 3: "applied"}


# --- a failing migration among many --------------------------------------------------------


def test_a_failing_migration_message_stays_short_at_any_count(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    files = {"0001_first.sql": "CREATE TABLE t (id INTEGER);\n", "0002_broken.sql": "INSERT INTO nowhere VALUES (1);\n"}
    files.update({f"{v:04d}_step_{v}.sql": f"INSERT INTO t VALUES ({v});\n" for v in range(3, 501)})
    write(folder, files, init=False)
    db = tmp_path / "app.sqlite"
    selfmigrate.migrate(db, str(folder), target=1)
    before = dump(db)
    with pytest.raises(MigrationError) as caught:
        selfmigrate.migrate(db, str(folder))
    message = str(caught.value)
    assert len(message.encode()) < 2048
    assert "0002_broken.sql" in message and "no such table: nowhere" in message
    assert "498 later migrations (0003_step_3 … 0500_step_500)" in message
    assert dump(db) == before


def test_the_message_lists_a_few_later_migrations_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "few"
    write(
        folder,
        {
            "0001_broken.sql": "INSERT INTO nowhere VALUES (1);\n",
            "0002_b.sql": "SELECT 1;\n",
            "0003_c.sql": "SELECT 1;\n",
        },
        init=False,
    )
    db = tmp_path / "app.sqlite"
    with pytest.raises(MigrationError, match=r"Not attempted: 0002_b, 0003_c\."):
        selfmigrate.migrate(db, str(folder))


# --- the tracker is still re-read inside the lock ------------------------------------------


@pytest.mark.parametrize("at_lock", [1, 3], ids=["before-the-first-step", "between-two-steps"])
def test_a_tracker_row_another_process_commits_during_the_run_is_seen(tmp_path: Path, at_lock: int) -> None:
    # Another process commits a migration's row just before this run's step number
    # ``at_lock`` takes the lock (a backend that does it in its begin_locked): before the
    # first step (after the run read the tracker without the lock), or between two steps.
    # The step re-reads the tracker inside the lock, sees the row, and does not apply that
    # migration a second time.
    import hashlib

    from selfmigrate.backends.sqlite.backend import SQLiteBackend

    sources = {
        "0001_a.sql": "CREATE TABLE t (id INTEGER);\n",
        "0002_b.sql": "INSERT INTO t VALUES (2);\n",
        "0003_c.sql": "INSERT INTO t VALUES (3);\n",
        "0004_d.sql": "INSERT INTO t VALUES (4);\n",
    }
    folder = tmp_path / "m"
    write(folder, sources, init=False)
    db = tmp_path / "app.sqlite"
    selfmigrate.migrate(db, str(folder), target=1)
    other_version = 2 if at_lock == 1 else 4  # step 1 applies 2, step 3 would apply 4

    class OtherWriterBackend(SQLiteBackend):
        locks = 0

        def begin_locked(self, conn: t.Any) -> None:
            self.locks += 1
            if self.locks == at_lock:
                text = sources[f"{other_version:04d}_{'abcd'[other_version - 1]}.sql"]
                other = sqlite3.connect(db)
                try:
                    with other:
                        other.execute(
                            "INSERT INTO schema_migrations VALUES (?, ?, ?, '2026-01-01T00:00:00+00:00', 0.0,"
                            " 'another process', 'applied')",
                            (other_version, "abcd"[other_version - 1], hashlib.sha256(text.encode()).hexdigest()),
                        )
                finally:
                    other.close()
            super().begin_locked(conn)

    backend = OtherWriterBackend(db)
    report = selfmigrate.Runner(db, str(folder), backend=backend, backup=False).apply()
    assert backend.locks >= at_lock
    assert [r.version for r in report.applied] == [v for v in (2, 3, 4) if v != other_version]
    assert report.current_version == 4
    conn = sqlite3.connect(db)
    try:
        ids = [r[0] for r in conn.execute("SELECT id FROM t ORDER BY id")]
    finally:
        conn.close()
    assert ids == [v for v in (2, 3, 4) if v != other_version]  # its up never ran here
    assert selfmigrate.migrate(db, str(folder)).applied == []


# --- status from the fingerprint --------------------------------------------------------------

#: ``python -m selfmigrate ARGS`` in a fresh process, also saying whether click was imported.
CLI_PROBE = """\
import runpy, sys
sys.argv = ["selfmigrate", *sys.argv[1:]]
try:
    runpy.run_module("selfmigrate", run_name="__main__")
finally:
    sys.stderr.write("click imported\\n" if "click" in sys.modules else "click not imported\\n")
"""


def probe(app: App, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(app.root), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", CLI_PROBE, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or app.root.parent,
        timeout=120,
        check=False,
    )


def full_status(app: App, *args: str) -> tuple[str, int]:
    """What the click command prints, in this process."""
    from click.testing import CliRunner

    from selfmigrate.faces.cli.main import cli as group

    result = CliRunner().invoke(group, ["-d", str(app.db), "-m", app.location, "status", *args])
    return result.stdout, result.exit_code


@pytest.mark.parametrize("args", [[], ["--json"]], ids=["text", "json"])
def test_status_of_an_up_to_date_database_is_answered_without_click_and_says_the_same(
    app: App, args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app.start()
    monkeypatch.syspath_prepend(str(app.root))
    done = probe(app, "-d", str(app.db), "-m", app.location, "status", *args)
    assert done.returncode == 0 and done.stderr == "click not imported\n"
    for name in [m for m in sys.modules if m.split(".")[0] == "perfapp"]:  # another test's app
        monkeypatch.delitem(sys.modules, name)
    assert (done.stdout, done.returncode) == full_status(app, *args)


def test_status_takes_the_full_command_when_the_fingerprint_does_not_certify(app: App) -> None:
    app.start()
    (app.folder / "0004_new.sql").write_text("SELECT 1;\n")
    done = probe(app, "-d", str(app.db), "-m", app.location, "status")
    assert done.returncode == 1 and "0004_new" in done.stdout and "pending" in done.stdout
    assert done.stderr.endswith("click imported\n")


@pytest.mark.parametrize(
    ("variable", "value", "quick"),
    [("AHEAD", "rollback", True), ("BACKUP_KEEP", "all", True), ("AHEAD", "refuze", False)],
)
def test_status_keeps_the_quick_answer_under_valid_settings_of_the_environment(
    app: App, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, quick: bool
) -> None:
    # A rollback-safe image sets SELFMIGRATE_AHEAD: its health check keeps the quick
    # answer; a value the full command refuses goes to it, which says exit 2.
    app.start()
    monkeypatch.setenv(f"SELFMIGRATE_{variable}", value)
    done = probe(app, "-d", str(app.db), "-m", app.location, "status")
    if quick:
        assert done.returncode == 0 and done.stderr == "click not imported\n", done.stderr
    else:
        assert done.returncode == 2 and f"SELFMIGRATE_{variable}" in done.stderr
        assert done.stderr.endswith("click imported\n")


def test_status_takes_the_full_command_under_a_pyproject_with_settings(app: App) -> None:
    app.start()
    (app.root / "pyproject.toml").write_text('[tool.selfmigrate]\ntable = "other"\n')
    done = probe(app, "-d", str(app.db), "-m", app.location, "status", cwd=app.root)
    assert done.stderr.endswith("click imported\n")


# --- a migration added to a certified tree ----------------------------------------------------


def files_read(runner: selfmigrate.Runner) -> list[str]:
    """The migrations whose checksum the runner read from disk."""
    return [m.filename for m in runner.registry.migrations if "checksum" in m.__dict__]


def test_a_migration_added_to_a_certified_tree_reads_only_the_new_file(app: App) -> None:
    app.start()
    (app.folder / "0004_last.sql").write_text("INSERT INTO note VALUES ('last');\n")
    runner = selfmigrate.Runner(app.db, str(app.folder))
    assert [r.version for r in runner.apply().applied] == [4]
    assert files_read(runner) == ["0004_last.sql"]
    assert app.start()["full_run"] is False


def test_an_edit_next_to_an_added_migration_is_still_caught(app: App) -> None:
    app.start()
    before = dump(app.db)
    edit_keeping_size_and_mtime(app.folder / "0002_seed.py", FILES["0002_seed.py"].replace("kept", "lost"))
    (app.folder / "0004_last.sql").write_text("INSERT INTO note VALUES ('last');\n")
    result = app.start()
    assert result["error"] == "ChecksumMismatch" and "0002_seed.py" in result["message"]
    assert dump(app.db) == before


# --- apply(app) registers the flask group without the command line -------------------------

FLASK_START = """\
import json, sys
import flask
import selfmigrate
app = flask.Flask("perfapp")
app.config["SELFMIGRATE_DATABASE"] = sys.argv[1]
app.config["SELFMIGRATE_MIGRATIONS"] = sys.argv[2]
before = set(sys.modules)
selfmigrate.apply(app)
loaded = sorted(m for m in set(sys.modules) - before if m.startswith("selfmigrate.faces.cli"))
result = app.test_cli_runner().invoke(args=["selfmigrate", "status"])
print(json.dumps({"loaded": loaded, "exit": result.exit_code, "output": result.output}))
"""


def test_apply_registers_the_flask_group_without_loading_the_command_line(app: App) -> None:
    app.start()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(app.root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", FLASK_START, str(app.db), app.location],
        capture_output=True,
        text=True,
        env=env,
        cwd=app.root.parent,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["loaded"] == []  # registering cost no import of the CLI
    assert result["exit"] == 0 and "Up to date." in result["output"]  # and the group still works


@pytest.mark.parametrize("commit_between", [False, True], ids=["nobody-commits", "another-process-commits"])
def test_recertification_reads_the_tracker_again_only_if_someone_committed_since(
    app: App, monkeypatch: pytest.MonkeyPatch, commit_between: bool
) -> None:
    # The first start after a deploy verifies the files against the rows it read, then
    # stores their key inside the write lock: the rows are read again there only if the
    # change marker moved (another process committed), and then nothing is stored when
    # they changed. The commit is made by a real second connection, at the moment
    # between the start's read of the tracker and its write lock.
    from selfmigrate.core.tracker import Tracker

    app.start()
    app.deploy()

    def stored() -> object:
        with contextlib.closing(sqlite3.connect(app.db)) as conn:
            return conn.execute("SELECT fingerprint FROM schema_migrations_fingerprint").fetchall()

    before = stored()
    reads: list[int] = []
    layout, read = Tracker.layout, Tracker.read

    def layout_then_commit(self: Tracker, conn: t.Any) -> int:
        if commit_between and not reads[1:]:
            with contextlib.closing(sqlite3.connect(app.db)) as other, other:
                # A newer image's worker recording migration 4 (a rolling update).
                other.execute(
                    "INSERT INTO schema_migrations (version, name, checksum, applied_at, duration_ms,"
                    " applied_by, state) VALUES (4, 'newer', 'x', '2026-01-01T00:00:00Z', 1, 'other', 'applied')"
                )
        return layout(self, conn)

    def counted_read(self: Tracker, conn: t.Any) -> t.Any:
        reads.append(1)
        return read(self, conn)

    monkeypatch.setattr(Tracker, "layout", layout_then_commit)
    monkeypatch.setattr(Tracker, "read", counted_read)
    monkeypatch.syspath_prepend(str(app.root))
    report = selfmigrate.migrate(app.db, app.location)
    assert report.applied == [] and report.current_version == 3  # as this start read the tracker
    if commit_between:
        assert len(reads) == 2  # read again inside the lock: the rows changed,
        assert stored() == before  # so the files were not certified against them
    else:
        assert len(reads) == 1  # the marker held: no second read,
        assert stored() != before  # and the files are certified
