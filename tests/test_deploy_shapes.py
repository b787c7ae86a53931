"""selfmigrate in the shapes it is deployed in, driven as an operator drives it (QA round 4).

Each test runs the real command line in a child process, in a fresh folder, with its
settings in ``SELFMIGRATE_*`` variables as a container sets them, and compares a dump
of the database before and after (:func:`helpers.dump`): the exit code is the one
docs/cli.rst gives, the message names the database and the migration and says what
to do, and the data is intact.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import NOBODY, as_other_user, connected, dump, shared_folder

#: Runs ``python -m selfmigrate`` with every file it writes limited to ``argv[1]`` bytes
#: (RLIMIT_FSIZE; a write past it fails as on a full disk), then the rest of argv.
_LIMITED = """
import resource, runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv.pop(1))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.argv[0] = "selfmigrate"
runpy.run_module("selfmigrate", run_name="__main__", alter_sys=True)
"""


def _env(database: Path, migrations: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELFMIGRATE_")}
    env.update(SELFMIGRATE_DATABASE=str(database), SELFMIGRATE_MIGRATIONS=str(migrations))
    env.update({f"SELFMIGRATE_{key.upper()}": value for key, value in more.items()})
    return env


def _cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "selfmigrate", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with ``migrations/`` holding 0001 (a table with one large row)."""
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_big.sql").write_text(
        "CREATE TABLE big (id INTEGER PRIMARY KEY, data TEXT);\n"
        "INSERT INTO big (data) VALUES (hex(randomblob(50000)));\n"
    )
    return tmp_path


class TestAFullDisk:
    def test_a_migration_that_fails_at_its_commit_names_the_version_the_database_is_at(self, project: Path) -> None:
        """The pages of a migration that fits SQLite's page cache are written at COMMIT; on a
        full disk the commit fails and the transaction is rolled back. The message said
        "the database is as it was before it (version 2)" for a database at version 1:
        the runner counted the migration as applied before its commit."""
        db = project / "app.sqlite"
        env = _env(db, project / "migrations", backup="false")
        assert _cli("apply", cwd=project, env=env).returncode == 0
        (project / "migrations" / "0002_fill.sql").write_text(
            "INSERT INTO big (data) SELECT hex(randomblob(50000)) FROM big;\n" * 3
        )
        before = dump(db)
        limit = db.stat().st_size + 100_000  # the journal fits, the grown database does not
        result = subprocess.run(
            [sys.executable, "-c", _LIMITED, str(limit), "apply"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 5, result.stderr
        assert "Traceback" not in result.stderr
        assert "Migration 0002_fill failed on database" in result.stderr
        assert "at its commit, and was rolled back; the database is as it was before it (version 1)." in (
            result.stderr
        )
        assert dump(db) == before
        status = _cli("status", cwd=project, env=env)
        assert status.returncode == 1
        assert "Current version: 1;" in status.stdout


class TestTheHealthCheck:
    @pytest.mark.parametrize(
        ("variable", "value"),
        [("AHEAD", "refuze"), ("BACKUP_KEEP", "0"), ("ALLOW_OUT_OF_ORDER", "maybe"), ("LOCK_RETRIES", "x")],
    )
    def test_a_bad_setting_in_the_environment_is_exit_2_also_when_up_to_date(
        self, project: Path, variable: str, value: str
    ) -> None:
        """``status`` of an up-to-date database is answered without the full command (for
        speed); that answer took no notice of the variables it does not read, so the
        health check said 0 for a typo the same command called exit 2 as soon as a
        migration was pending."""
        db = project / "app.sqlite"
        env = _env(db, project / "migrations")
        assert _cli("apply", cwd=project, env=env).returncode == 0
        before = dump(db)
        result = _cli("status", cwd=project, env={**env, f"SELFMIGRATE_{variable}": value})
        assert result.returncode == 2, result.stdout
        assert result.stderr.startswith("Error: ") and f"SELFMIGRATE_{variable}" in result.stderr
        assert "Traceback" not in result.stderr
        (project / "migrations" / "0002_more.sql").write_text("CREATE TABLE more (id INTEGER);\n")
        pending = _cli("status", cwd=project, env={**env, f"SELFMIGRATE_{variable}": value})
        assert (pending.returncode, pending.stderr) == (2, result.stderr)
        assert dump(db) == before

    def test_a_good_setting_in_the_environment_keeps_the_answer(self, project: Path) -> None:
        db = project / "app.sqlite"
        env = _env(db, project / "migrations", ahead="refuse", backup_keep="all")
        assert _cli("apply", cwd=project, env=env).returncode == 0
        result = _cli("status", cwd=project, env=env)
        assert result.returncode == 0 and result.stdout.endswith("Up to date.\n")


@pytest.fixture
def releases(tmp_path: Path) -> tuple[Path, Path]:
    """Two releases' migrations: v1 has 0001; v2 adds 0002 (compatible, with a down)."""
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    for folder in (v1, v2):
        folder.mkdir()
        (folder / "0001_a.sql").write_text("CREATE TABLE a (id INTEGER PRIMARY KEY);\n")
    (v2 / "0002_b.sql").write_text(
        "-- migrate:compatible\nCREATE TABLE b (id INTEGER);\n-- migrate:down\nDROP TABLE b;\n"
    )
    return v1, v2


class TestARollingUpdate:
    def test_status_of_old_code_names_what_the_rollback_it_suggests_undoes(
        self, tmp_path: Path, releases: tuple[Path, Path]
    ) -> None:
        """v2 applied a compatible 0002 and an incompatible 0003; the old code's status named
        both ("Undo them") though 'rollback --to 2' undoes 0003 only. Following it works."""
        v1, v2 = releases
        (v2 / "0003_c.sql").write_text(
            "ALTER TABLE a ADD COLUMN x TEXT;\n-- migrate:down\nALTER TABLE a DROP COLUMN x;\n"
        )
        db = tmp_path / "app.sqlite"
        assert _cli("apply", cwd=tmp_path, env=_env(db, v2)).returncode == 0
        old = _env(db, v1)
        status = _cli("status", cwd=tmp_path, env=old)
        assert status.returncode == 7
        assert "Undo 0003_c with 'python -m selfmigrate rollback --to 2'" in status.stdout
        rollback = _cli("rollback", "--to", "2", "--yes", cwd=tmp_path, env=old)
        assert rollback.returncode == 0, rollback.stderr
        assert _cli("status", cwd=tmp_path, env=old).returncode == 0

    def test_apply_of_old_code_under_the_rollback_policy_says_what_it_undid(
        self, tmp_path: Path, releases: tuple[Path, Path]
    ) -> None:
        """It printed "Nothing to apply: database … is at version 2." after undoing 0003."""
        v1, v2 = releases
        (v2 / "0003_c.sql").write_text("CREATE TABLE c (id INTEGER);\n-- migrate:down\nDROP TABLE c;\n")
        db = tmp_path / "app.sqlite"
        assert _cli("apply", cwd=tmp_path, env=_env(db, v2)).returncode == 0
        result = _cli("apply", cwd=tmp_path, env=_env(db, v1, ahead="rollback"))
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("Rolled back 0003_c in ")
        assert result.stdout.endswith(f"Database {db} is at version 2.\n")
        assert "Nothing to apply" not in result.stdout

    def test_status_of_old_code_does_not_suggest_a_rollback_that_cannot_run(
        self, tmp_path: Path, releases: tuple[Path, Path]
    ) -> None:
        """An incompatible migration ahead without a down: status said "Undo them with
        'rollback --to 2'", and that command exits 2 ("it has no down"). It now says what
        the refusal at start says: only a snapshot (or the newer release) goes back."""
        v1, v2 = releases
        (v2 / "0003_c.sql").write_text("ALTER TABLE a ADD COLUMN x TEXT;\n")
        db = tmp_path / "app.sqlite"
        assert _cli("apply", cwd=tmp_path, env=_env(db, v2)).returncode == 0
        before = dump(db)
        old = _env(db, v1)
        status = _cli("status", cwd=tmp_path, env=old)
        assert status.returncode == 7
        assert "rollback --to" not in status.stdout
        assert "0003_c has no down" in status.stdout
        assert "'python -m selfmigrate restore NAME'" in status.stdout
        assert "its files can roll them back" not in status.stdout
        refused = _cli("apply", cwd=tmp_path, env={**old, "SELFMIGRATE_AHEAD": "refuse"})
        assert refused.returncode == 7
        assert "0003_c has no down" in refused.stderr and "its files can roll them back" not in refused.stderr
        assert dump(db) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="only root makes files another user owns")
class TestRootOnTheAppsVolume:
    """An operator runs the command line as root ('docker exec', a root health check) on a
    volume whose database the app's user owns."""

    def _volume(self, folder: Path) -> tuple[Path, dict[str, str]]:
        migrations = folder / "migrations"
        migrations.mkdir()
        (migrations / "0001_a.sql").write_text("CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT);\n")
        (migrations / "0002_b.sql").write_text("CREATE TABLE b (id INTEGER);\n-- migrate:down\nDROP TABLE b;\n")
        db = folder / "app.sqlite"
        env = _env(db, migrations)
        assert as_other_user([sys.executable, "-m", "selfmigrate", "apply", "--to", "1"], env=env).returncode == 0
        with connected(db) as conn:
            conn.execute("INSERT INTO a (v) VALUES ('kept')")
        return db, env

    def test_a_snapshot_root_takes_belongs_to_the_databases_owner(self) -> None:
        """Root's snapshot was root's, mode 640: the app (and its restore) could not read it."""
        with shared_folder() as folder:
            db, env = self._volume(folder)
            os.chown(db, NOBODY, NOBODY)
            assert _cli("apply", cwd=folder, env=env).returncode == 0
            (snapshot,) = folder.glob("app.sqlite.*.v0001.bak")
            assert (snapshot.stat().st_uid, snapshot.stat().st_gid) == (NOBODY, NOBODY)

    def test_a_backup_folder_root_creates_belongs_to_the_databases_owner(self) -> None:
        """Root's first snapshot into a new SELFMIGRATE_BACKUP_DIR made the folder root's,
        mode 700: every later start of the app failed to take its snapshot."""
        with shared_folder() as folder:
            db, env = self._volume(folder)
            os.chown(db, NOBODY, NOBODY)
            backups = folder / "backups"
            assert _cli("apply", cwd=folder, env={**env, "SELFMIGRATE_BACKUP_DIR": str(backups)}).returncode == 0
            assert (backups.stat().st_uid, backups.stat().st_gid) == (NOBODY, NOBODY)
            (snapshot,) = backups.glob("app.sqlite.*.v0001.bak")
            assert snapshot.stat().st_uid == NOBODY

    def test_the_lock_file_root_makes_belongs_to_the_databases_owner(self) -> None:
        """Root's 'restore' left app.sqlite-selfmigrate.lock root's, mode 640; the app's next
        start with a migration outside a transaction then failed with "The database's folder
        must be writable by the app" (it was)."""
        with shared_folder() as folder:
            db, env = self._volume(folder)
            os.chown(db, NOBODY, NOBODY)
            assert _cli("apply", cwd=folder, env=env).returncode == 0
            (snapshot,) = folder.glob("app.sqlite.*.v0001.bak")
            assert _cli("restore", snapshot.name, "--yes", cwd=folder, env=env).returncode == 0
            lock = folder / "app.sqlite-selfmigrate.lock"
            assert (lock.stat().st_uid, lock.stat().st_gid) == (NOBODY, NOBODY)

    def test_a_lock_file_this_user_cannot_open_is_named_as_such(self) -> None:
        with shared_folder() as folder:
            db, env = self._volume(folder)
            (folder / "migrations" / "0003_index.sql").write_text(
                "-- migrate:no-transaction\nCREATE INDEX IF NOT EXISTS a_v ON a (v);\n"
            )
            lock = folder / "app.sqlite-selfmigrate.lock"
            lock.touch(mode=0o640)
            os.chown(lock, NOBODY, NOBODY)
            lock.chmod(0o600)
            before = dump(db)
            result = as_other_user([sys.executable, "-m", "selfmigrate", "apply"], env=env, cwd=folder)
            assert result.returncode == 2, result.stderr
            assert f"Error: Cannot open the migration lock file {lock} of database" in result.stderr
            assert "may not read it" in result.stderr and "delete it, or chown it" in result.stderr
            assert "folder must be writable" not in result.stderr and "Traceback" not in result.stderr
            assert dump(db) == before

    def test_restoring_a_snapshot_this_user_cannot_read_says_so(self) -> None:
        """It said the history inside it was "another database's (a renamed or copied file?)"."""
        with shared_folder() as folder:
            db, env = self._volume(folder)
            assert _cli("apply", cwd=folder, env=env).returncode == 0
            (snapshot,) = folder.glob("app.sqlite.*.v0001.bak")
            os.chown(snapshot, NOBODY, NOBODY)
            snapshot.chmod(0o600)
            before = dump(db)
            restore = as_other_user(
                [sys.executable, "-m", "selfmigrate", "restore", snapshot.name, "--yes"], env=env, cwd=folder
            )
            assert restore.returncode == 6, restore.stderr
            assert restore.stderr.startswith(f"Error: Snapshot {snapshot} of database")
            assert "cannot be read by this process" in restore.stderr
            assert "another database's" not in restore.stderr
            assert dump(db) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="as another user file modes need root to set up")
class TestAVolumeTheAppCannotWrite:
    def test_a_new_database_in_another_users_folder_names_the_folder(self) -> None:
        """A bind mount of a host folder owned by root: it said "unable to open database file.
        Check the path and its permissions"."""
        with shared_folder() as folder:
            volume = folder / "vol"
            volume.mkdir(mode=0o755)
            os.chown(volume, NOBODY, NOBODY)
            migrations = folder / "migrations"
            migrations.mkdir()
            (migrations / "0001_a.sql").write_text("CREATE TABLE a (id INTEGER);\n")
            env = _env(volume / "app.sqlite", migrations)
            result = as_other_user([sys.executable, "-m", "selfmigrate", "apply"], env=env, cwd=folder)
            assert result.returncode == 2
            assert result.stderr.startswith(f"Error: Cannot create database {volume}/app.sqlite: its folder {volume}")
            assert "is not writable for this process" in result.stderr and "Traceback" not in result.stderr
            assert list(volume.iterdir()) == []

    def test_a_writable_database_in_a_folder_it_cannot_write_names_the_folder(self) -> None:
        """The file is the app's to write, its folder is not: it said "The database file is
        read-only for this process"."""
        with shared_folder() as folder:
            volume = folder / "vol"
            volume.mkdir()
            migrations = folder / "migrations"
            migrations.mkdir()
            (migrations / "0001_a.sql").write_text("CREATE TABLE a (id INTEGER);\n")
            db = volume / "app.sqlite"
            env = _env(db, migrations, backup="false")
            assert _cli("apply", cwd=folder, env=env).returncode == 0
            (migrations / "0002_b.sql").write_text("CREATE TABLE b (id INTEGER);\n")
            db.chmod(0o666)
            volume.chmod(0o755)
            os.chown(volume, NOBODY, NOBODY)
            before = dump(db)
            result = as_other_user([sys.executable, "-m", "selfmigrate", "apply"], env=env, cwd=folder)
            assert result.returncode == 2, result.stderr
            assert f"The database's folder {volume} is not writable for this process" in result.stderr
            assert "The database file is read-only" not in result.stderr and "Traceback" not in result.stderr
            assert dump(db) == before


class TestTwelveFactorSettings:
    def test_a_migrations_folder_with_a_space_in_its_name_from_the_environment(self, tmp_path: Path) -> None:
        """SELFMIGRATE_MIGRATIONS="mig rations" was two locations, 'mig' and 'rations' (an
        error naming 'mig'), while 'config' showed it as the one value "mig rations"."""
        migrations = tmp_path / "mig rations"
        migrations.mkdir()
        (migrations / "0001_a.sql").write_text("CREATE TABLE a (id INTEGER);\n")
        db = tmp_path / "da ta" / "é app.sqlite"
        db.parent.mkdir()
        env = _env(Path("da ta/é app.sqlite"), Path("mig rations"))
        applied = _cli("apply", cwd=tmp_path, env=env)
        assert applied.returncode == 0, applied.stderr
        assert "Applied 0001_a" in applied.stdout
        for _ in range(2):  # the full command, then the quick answer of an up-to-date database
            status = _cli("status", cwd=tmp_path, env=env)
            assert status.returncode == 0 and status.stdout.endswith("Up to date.\n")
        config = _cli("config", cwd=tmp_path, env=env)
        assert "'mig rations'" in config.stdout

    def test_locations_separated_by_spaces_stay_several(self, tmp_path: Path) -> None:
        for name, sql in (("one", "CREATE TABLE a (id INTEGER);\n"), ("two", "CREATE TABLE b (id INTEGER);\n")):
            (tmp_path / name).mkdir()
            (tmp_path / name / f"000{1 if name == 'one' else 2}_{name}.sql").write_text(sql)
        env = _env(tmp_path / "app.sqlite", Path("one two"))
        applied = _cli("apply", cwd=tmp_path, env=env)
        assert applied.returncode == 0, applied.stderr
        assert "Applied 0001_one" in applied.stdout and "Applied 0002_two" in applied.stdout
        config = _cli("config", cwd=tmp_path, env=env)
        assert " one two " in config.stdout


#: An app factory configured the Flask way from the container's environment
#: (docs/configuration.rst: ``app.config.from_prefixed_env()``, ``FLASK_SELFMIGRATE_*``).
APP = """
from flask import Flask

import selfmigrate


def create_app():
    app = Flask(__name__, instance_path={instance!r})
    app.config.from_mapping(DATABASE="app.sqlite", SELFMIGRATE_MIGRATIONS={migrations!r})
    app.config.from_prefixed_env()
    selfmigrate.apply(app)
    return app
"""

#: Starts the app; prints the error's class and message if the factory raises.
START = """
from envapp import create_app
try:
    create_app()
except Exception as e:
    print(type(e).__name__, e)
"""


class TestTheFlaskAppFromItsEnvironment:
    @pytest.fixture
    def app(self, tmp_path: Path) -> Path:
        migrations = tmp_path / "migrations"
        migrations.mkdir()
        (migrations / "0002_b.sql").write_text("CREATE TABLE b (id INTEGER);\n")
        (tmp_path / "envapp.py").write_text(APP.format(instance=str(tmp_path / "instance"), migrations=str(migrations)))
        start = self._start(tmp_path, {})
        assert start.stdout == "" and start.returncode == 0, start.stdout + start.stderr
        with connected(tmp_path / "instance" / "app.sqlite") as conn:
            conn.execute("INSERT INTO b VALUES (1)")
        return tmp_path

    def _start(self, folder: Path, variables: dict[str, str]) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "SELFMIGRATE_"))}
        return subprocess.run(
            [sys.executable, "-c", START],
            cwd=folder,
            env={**env, **variables},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def test_no_as_a_flag_is_false(self, app: Path) -> None:
        """FLASK_SELFMIGRATE_ALLOW_OUT_OF_ORDER=no reached the app as the string 'no', which is
        true: the older migration was applied out of order. BACKUP=off took a snapshot."""
        (app / "migrations" / "0001_a.sql").write_text("CREATE TABLE a (id INTEGER);\n")
        db = app / "instance" / "app.sqlite"
        before = dump(db)
        refused = self._start(app, {"FLASK_SELFMIGRATE_ALLOW_OUT_OF_ORDER": "no"})
        assert refused.stdout.startswith("OutOfOrderError "), refused.stdout + refused.stderr
        assert dump(db) == before
        allowed = {"FLASK_SELFMIGRATE_ALLOW_OUT_OF_ORDER": "Yes", "FLASK_SELFMIGRATE_BACKUP": "off"}
        started = self._start(app, allowed)
        assert started.stdout == "", started.stdout + started.stderr
        assert list((app / "instance").glob("*.bak")) == []

    @pytest.mark.parametrize(("key", "value"), [("BACKUP", "maybe"), ("ALLOW_OUT_OF_ORDER", "nein")])
    def test_a_flag_that_is_no_flag_is_refused_naming_the_key(self, app: Path, key: str, value: str) -> None:
        (app / "migrations" / "0003_c.sql").write_text("CREATE TABLE c (id INTEGER);\n")
        db = app / "instance" / "app.sqlite"
        before = dump(db)
        result = self._start(app, {f"FLASK_SELFMIGRATE_{key}": value})
        assert result.stdout.startswith(f"ConfigError SELFMIGRATE_{key} is {value!r}; it takes True or False")
        assert dump(db) == before

    def test_all_snapshots_kept_as_the_variable_says_it(self, app: Path) -> None:
        """FLASK_SELFMIGRATE_BACKUP_KEEP=all was refused ("not 'all'"); SELFMIGRATE_BACKUP_KEEP
        and pyproject.toml take it."""
        (app / "migrations" / "0003_c.sql").write_text("CREATE TABLE c (id INTEGER);\n")
        result = self._start(app, {"FLASK_SELFMIGRATE_BACKUP_KEEP": "all"})
        assert result.stdout == "", result.stdout + result.stderr
        assert len(list((app / "instance").glob("*.bak"))) == 1
