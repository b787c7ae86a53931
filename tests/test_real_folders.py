"""Real projects' migration files, used as a new user would (tests/data/real/README.md).

Each test copies real files byte for byte, renames (or merges) them as docs/migrations.rst
says, and runs them; where selfmigrate refuses, the message must name the file, the line and
the fix, and the data must be as it was (:func:`helpers.dump` before and after).
"""

from __future__ import annotations

import logging
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import dump

import selfmigrate
from selfmigrate.ops.lint import lint

REAL = Path(__file__).parent / "data" / "real"

#: The lines of a script written to be run by hand that wrap it in a transaction.
ENVELOPE = re.compile(r"^\s*(PRAGMA\s+foreign_keys\s*=|BEGIN\b|COMMIT\b)", re.IGNORECASE)


def _folder(tmp_path: Path, name: str, files: dict[str, Path | bytes]) -> Path:
    """A migrations folder holding ``files``: a real file copied byte for byte, or bytes."""
    folder = tmp_path / name
    folder.mkdir()
    for filename, source in files.items():
        if isinstance(source, Path):
            shutil.copyfile(source, folder / filename)
        else:
            (folder / filename).write_bytes(source)
    return folder


def _merged(up: Path, down: Path) -> bytes:
    """A golang-migrate pair as one file, as the naming error says: the up, the marker, the down."""
    return up.read_bytes().rstrip(b"\n") + b"\n\n-- migrate:down\n" + down.read_bytes()


def _envelope_lines(path: Path) -> list[int]:
    return [n for n, line in enumerate(path.read_text().splitlines(), 1) if ENVELOPE.match(line)]


def _delete_lines(path: Path, lines: set[int]) -> None:
    kept = [line for n, line in enumerate(path.read_text().splitlines(keepends=True), 1) if n not in lines]
    path.write_text("".join(kept))


def _rows(db: Path, table: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        columns = ("id", "name", "user_id", "url") if table == "monitor" else ("*",)
        return conn.execute(f"SELECT {', '.join(columns)} FROM [{table}] ORDER BY 1").fetchall()
    finally:
        conn.close()


def _kuma(tmp_path: Path) -> tuple[Path, Path]:
    """Uptime Kuma: its db/kuma.db schema as 0001, then four of its patches, with rows in the database."""
    kuma = REAL / "uptime-kuma"
    base = _folder(tmp_path, "base", {"0001_kuma_db_schema.sql": kuma / "kuma-db-schema.sql"})
    db = tmp_path / "kuma.db"
    selfmigrate.migrate(db, str(base), backup=False)
    conn = sqlite3.connect(db)
    with conn:
        conn.executescript(
            """
            INSERT INTO user (id, username, password) VALUES (1, 'admin', 'x');
            INSERT INTO monitor (id, name, user_id, url, type) VALUES (1, 'site', 1, 'https://example.org', 'http');
            INSERT INTO monitor (id, name, user_id, type) VALUES (2, 'db', 1, 'port');
            INSERT INTO heartbeat (monitor_id, status, msg, time) VALUES (1, 1, 'ok', '2024-01-01 00:00:00');
            INSERT INTO heartbeat (monitor_id, status, msg, time) VALUES (2, 0, 'down; -- not a comment', '2024-01-01');
            """
        )
    conn.close()
    folder = _folder(
        tmp_path,
        "migrations",
        {
            "0001_kuma_db_schema.sql": kuma / "kuma-db-schema.sql",
            "0002_patch1.sql": kuma / "patch1.sql",
            "0003_patch2.sql": kuma / "patch2.sql",
            "0004_group_table.sql": kuma / "patch-group-table.sql",
            "0005_monitor_tls_info_add_fk.sql": kuma / "patch-monitor-tls-info-add-fk.sql",
        },
    )
    return folder, db


def test_a_hand_run_envelope_names_the_line_and_says_to_delete_it(tmp_path: Path) -> None:
    """Uptime Kuma's patches wrap themselves in PRAGMA foreign_keys=off; BEGIN; … COMMIT;.

    The advice used to be to move the pragma into a non-transactional migration of its own,
    where it does nothing (each migration has a connection of its own): the fix is to delete it.
    """
    folder, db = _kuma(tmp_path)
    before = dump(db)
    with pytest.raises(selfmigrate.MigrationError) as caught:
        selfmigrate.migrate(db, str(folder), backup=False)
    message = str(caught.value)
    assert "0002_patch1.sql, line 4" in message
    assert "PRAGMA foreign_keys=off;" in message
    assert "Delete the line" in message and "does not enforce foreign keys" in message
    assert "-- migrate:no-transaction" not in message
    assert "'python -m selfmigrate lint' lists these lines in every file (SM110)" in message
    assert dump(db) == before


def test_lint_lists_every_envelope_line_of_every_file_and_deleting_them_applies(tmp_path: Path) -> None:
    """One lint run names every line a start would refuse, one start per file; deleting
    exactly those lines makes the real patches apply, and every row survives the rebuild."""
    folder, db = _kuma(tmp_path)
    patches = sorted(folder.glob("000[2-5]_*.sql"))
    findings = [f for f in lint(str(folder)).findings if f.code == "SM110"]
    found = {(Path(f.path).name, f.line) for f in findings}
    expected = {(p.name, n) for p in patches for n in _envelope_lines(p)}
    assert found == expected
    assert len({name for name, _ in found}) == 4  # every file, in one run
    assert all(f.level == "error" and "delete the line" in f.fix for f in findings)

    rows = {t: _rows(db, t) for t in ("user", "monitor", "heartbeat")}
    for patch in patches:
        _delete_lines(patch, {line for name, line in found if name == patch.name and line is not None})
    report = selfmigrate.migrate(db, str(folder), backup=False)
    assert [r.version for r in report.applied] == [2, 3, 4, 5]
    assert {t: _rows(db, t) for t in rows} == rows
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # patch-monitor-tls-info-add-fk edits sqlite_master under PRAGMA writable_schema: it took.
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'monitor_tls_info'").fetchone()
        assert "REFERENCES [monitor] ([id]) ON DELETE CASCADE" in sql
    finally:
        conn.close()
    assert [f for f in lint(str(folder)).findings if f.code == "SM110"] == []


def test_a_sqlite3_dump_as_the_first_migration(tmp_path: Path) -> None:
    """headscale's test data is ``sqlite3 .dump`` output: the same envelope, the same fix."""
    dumped = REAL / "headscale" / "headscale_0.26.1_dump.sql"
    folder = _folder(tmp_path, "migrations", {"0001_initial.sql": dumped})
    db = tmp_path / "app.db"
    with pytest.raises(selfmigrate.MigrationError) as caught:
        selfmigrate.migrate(db, str(folder), backup=False)
    assert "0001_initial.sql, line 1" in str(caught.value) and "Delete the line" in str(caught.value)
    lines = {f.line for f in lint(str(folder)).findings if f.code == "SM110"}
    assert lines == set(_envelope_lines(dumped)) == {1, 2, 32}
    _delete_lines(folder / "0001_initial.sql", {line for line in lines if line is not None})
    selfmigrate.migrate(db, str(folder), backup=False)
    conn = sqlite3.connect(db)
    try:
        inserts = dumped.read_text().count("INSERT INTO migrations VALUES")
        assert conn.execute("SELECT count(*) FROM migrations").fetchone() == (inserts,)
    finally:
        conn.close()


def test_a_function_the_app_registers_is_named_with_the_fix(tmp_path: Path) -> None:
    """pocket-id's migrations call normalize(), which its Go driver registers on every connection."""
    pocket = REAL / "pocket-id"
    init = _folder(tmp_path, "init", {"20240731203656_init.sql": pocket / "20240731203656_init.up.sql"})
    _delete_lines(init / "20240731203656_init.sql", set(_envelope_lines(init / "20240731203656_init.sql")))
    tables = (
        b"CREATE TABLE api_keys (name TEXT, description TEXT);\n"
        b"CREATE TABLE app_config_variables (key TEXT, value TEXT);\n"
        b"CREATE TABLE custom_claims (key TEXT, value TEXT);\n"
        b"CREATE TABLE user_groups (friendly_name TEXT, name TEXT);\n"
        b"INSERT INTO users (id, username, email) VALUES ('u1', 'Ame\xcc\x81lie', 'a@example.org');\n"
    )
    normalize = pocket / "20250705000000_normalize.up.sql"
    folder = _folder(
        tmp_path,
        "migrations",
        {
            "20240731203656_init.sql": (init / "20240731203656_init.sql").read_bytes(),
            "20250101000000_tables.sql": tables,
        },
    )
    db = tmp_path / "app.db"
    selfmigrate.migrate(db, str(folder), backup=False)
    shutil.copyfile(normalize, folder / "20250705000000_normalize.sql")
    _delete_lines(folder / "20250705000000_normalize.sql", set(_envelope_lines(normalize)))
    before = dump(db)
    with pytest.raises(selfmigrate.MigrationError) as caught:
        selfmigrate.migrate(db, str(folder), backup=False)
    message = str(caught.value)
    assert "20250705000000_normalize.sql, line 2" in message
    assert "no such function: normalize" in message
    assert "conn.create_function('normalize', ...)" in message
    assert dump(db) == before
    # The fix the message gives: a .py migration that registers the function, then runs the SQL.
    sql = (folder / "20250705000000_normalize.sql").read_text()
    (folder / "20250705000000_normalize.sql").unlink()
    (folder / "20250705000000_normalize.py").write_text(
        "import unicodedata\n\n"
        f"SQL = {sql!r}\n\n"
        "def up(conn):\n"
        "    conn.create_function('normalize', 2, lambda s, form: None if s is None"
        " else unicodedata.normalize(form.upper(), s))\n"
        "    for statement in SQL.split(';'):\n"
        "        conn.execute(statement)\n"
    )
    selfmigrate.migrate(db, str(folder), backup=False)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT username FROM users WHERE id = 'u1'").fetchone() == ("Am\u00e9lie",)
    finally:
        conn.close()


def test_a_golang_migrate_pair_merged_rolls_back_and_forward(tmp_path: Path) -> None:
    """pocket-id's ``passkey_backup_flags..up.sql`` (sic) / ``.down.sql`` pair, merged as the error says."""
    pocket = REAL / "pocket-id"
    pair = (
        pocket / "20240813211251_passkey_backup_flags..up.sql",
        pocket / "20240813211251_passkey_backup_flags.down.sql",
    )
    raw = _folder(tmp_path, "raw", {p.name: p for p in (pocket / "20240731203656_init.up.sql", *pair)})
    db = tmp_path / "app.db"
    with pytest.raises(selfmigrate.DiscoveryError) as caught:
        selfmigrate.migrate(db, str(raw), backup=False)
    assert "NNNN_slug.sql with the up, then a line '-- migrate:down' and the down" in str(caught.value)
    assert not db.exists()
    folder = _folder(
        tmp_path,
        "migrations",
        {
            "20240731203656_init.sql": pocket / "20240731203656_init.up.sql",
            "20240813211251_passkey_backup_flags.sql": _merged(*pair),
        },
    )
    for path in folder.iterdir():
        _delete_lines(path, set(_envelope_lines(path)))
    selfmigrate.migrate(db, str(folder), target=20240731203656, backup=False)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT INTO users (id, username, email, is_admin) VALUES ('u1', 'ana', 'a@example.org', 1)")
        conn.execute(
            "INSERT INTO webauthn_credentials (id, name, credential_id, public_key, user_id, attestation_type,"
            " transport) VALUES ('c1', 'key', 'cid', x'00', 'u1', 'none', '[]')"
        )
    conn.close()
    at_init = dump(db)
    selfmigrate.migrate(db, str(folder), backup=False)
    applied = dump(db)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "selfmigrate",
            "-d",
            str(db),
            "-m",
            str(folder),
            "rollback",
            "--to",
            "20240731203656",
            "--yes",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [line for line in dump(db) if "schema_migrations" not in line] == [
        line for line in at_init if "schema_migrations" not in line
    ]
    selfmigrate.migrate(db, str(folder), backup=False)
    assert [line for line in dump(db) if "schema_migrations" not in line] == [
        line for line in applied if "schema_migrations" not in line
    ]


@pytest.mark.parametrize(
    "files",
    [
        # authelia's MySQL-only V0021: both files empty in its SQLite and PostgreSQL folders.
        ("authelia", "V0021.MySQLCachedValueType"),
        # pocket-id's "-- No-op in Postgres" pair.
        ("pocket-id/postgres", "20251217141000_v2_export_normalization"),
    ],
)
def test_a_deliberate_no_op_migration_is_told_to_say_select_1(tmp_path: Path, files: tuple[str, str]) -> None:
    project, stem = files
    up, down = (REAL / project / f"{stem}.up.sql", REAL / project / f"{stem}.down.sql")
    version = re.match(r"V?0*(\d+)", stem)
    assert version is not None
    name = f"{int(version.group(1)):04d}_no_op.sql"
    folder = _folder(tmp_path, "migrations", {"0001_first.sql": b"CREATE TABLE t (id INTEGER PRIMARY KEY);\n"})
    db = tmp_path / "app.db"
    selfmigrate.migrate(db, str(folder), backup=False)
    (folder / name).write_bytes(_merged(up, down))
    before = dump(db)
    with pytest.raises(selfmigrate.DiscoveryError) as caught:
        selfmigrate.migrate(db, str(folder), backup=False)
    assert name in str(caught.value) and "write 'SELECT 1;'" in str(caught.value)
    assert dump(db) == before
    (folder / name).write_bytes(b"SELECT 1;\n" + _merged(up, down))
    report = selfmigrate.migrate(db, str(folder), backup=False)
    assert [r.name for r in report.applied] == ["no_op"]


def test_the_start_line_of_many_pending_names_the_ends_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``54 migration(s) pending: 54 later migrations (…)`` said "later" of the first pending one."""
    files: dict[str, Path | bytes] = {f"{n:04d}_step.sql": f"CREATE TABLE t{n} (id);\n".encode() for n in range(1, 8)}
    folder = _folder(tmp_path, "migrations", files)
    db = tmp_path / "app.db"
    sqlite3.connect(db).close()
    with caplog.at_level(logging.INFO, logger="selfmigrate.runner"):
        selfmigrate.migrate(db, str(folder), backup=False)
    (line,) = [r.getMessage() for r in caplog.records if "pending" in r.getMessage()]
    assert line.endswith("7 migration(s) pending: 0001_step … 0007_step.")
    assert "later" not in line


def test_real_files_that_apply_as_they_are_once_renamed(tmp_path: Path) -> None:
    """atuin's sqlx files (a hyphen in a name) and goose's files (its markers), converted as told."""
    atuin = REAL / "atuin"
    raw = _folder(tmp_path, "raw", {p.name: p for p in sorted(atuin.glob("*.sql"))})
    db = tmp_path / "app.db"
    with pytest.raises(selfmigrate.DiscoveryError) as caught:
        selfmigrate.migrate(db, str(raw), backup=False)
    assert "20220505083406_create-events.sql" in str(caught.value)
    folder = _folder(
        tmp_path,
        "migrations",
        {
            "20210422143411_create_history.sql": atuin / "20210422143411_create_history.sql",
            "20220505083406_create_events.sql": atuin / "20220505083406_create-events.sql",
        },
    )
    report = selfmigrate.migrate(db, str(folder), backup=False)
    assert len(report.applied) == 2

    goose = REAL / "goose"
    folder = _folder(tmp_path, "goose", {f"{p.name}": p for p in sorted(goose.glob("*.sql"))})
    with pytest.raises(selfmigrate.DiscoveryError) as caught:
        selfmigrate.migrate(tmp_path / "goose.db", str(folder), backup=False)
    assert "line 1: '-- +goose Up'" in str(caught.value) and "'-- migrate:up'" in str(caught.value)
    spelling = {b"-- +goose Up": b"-- migrate:up", b"-- +goose Down": b"-- migrate:down"}
    spelling[b"-- +goose NO TRANSACTION"] = b"-- migrate:no-transaction"
    for path in folder.iterdir():
        text = path.read_bytes()
        for old, new in spelling.items():
            text = text.replace(old, new)
        path.write_bytes(text)
    report = selfmigrate.migrate(tmp_path / "goose.db", str(folder), backup=False)
    assert [r.version for r in report.applied] == [1, 3]


# A Prisma migration folder, in the shape ``prisma migrate dev`` writes for SQLite (written
# here, not copied): one folder per migration holding migration.sql, the rebuild between
# PRAGMA foreign_keys=OFF and ON, under a /* Warnings */ block.
PRISMA_INIT = b"""-- CreateTable
CREATE TABLE "User" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "name" TEXT
);

-- CreateTable
CREATE TABLE "Post" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "authorId" TEXT NOT NULL,
    CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId") REFERENCES "User" ("id")
        ON DELETE CASCADE ON UPDATE CASCADE
);
"""
PRISMA_REBUILD = b"""/*
  Warnings:

  - Made the column `name` on table `User` required. This step will fail if there are existing
    NULL values in that column.

*/
-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_User" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "name" TEXT NOT NULL
);
INSERT INTO "new_User" ("id", "name") SELECT "id", coalesce("name", '') FROM "User";
DROP TABLE "User";
ALTER TABLE "new_User" RENAME TO "User";
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;
"""


def test_one_folder_per_migration_is_refused_with_each_files_new_name(tmp_path: Path) -> None:
    """Prisma's (and drizzle's, Diesel's) layout held no migration file: every start said
    "nothing to apply" and created an empty database while none of the migrations ran."""
    folder = tmp_path / "migrations"
    for name, text in (("20231013145653_init", PRISMA_INIT), ("20231014100000_name_required", PRISMA_REBUILD)):
        (folder / name).mkdir(parents=True)
        (folder / name / "migration.sql").write_bytes(text)
    (folder / "migration_lock.toml").write_text('provider = "sqlite"\n')
    diesel = tmp_path / "diesel"
    (diesel / "2024-01-01-000000_create_users").mkdir(parents=True)
    (diesel / "2024-01-01-000000_create_users" / "up.sql").write_text("CREATE TABLE users (id INTEGER);\n")
    (diesel / "2024-01-01-000000_create_users" / "down.sql").write_text("DROP TABLE users;\n")
    db = tmp_path / "app.db"
    with pytest.raises(selfmigrate.DiscoveryError) as caught:
        selfmigrate.migrate(db, str(folder), backup=False)
    message = str(caught.value)
    assert "one folder each" in message
    assert "20231013145653_init/migration.sql  (as: 20231013145653_init.sql)" in message
    assert "20231014100000_name_required/migration.sql  (as: 20231014100000_name_required.sql)" in message
    assert not db.exists()
    with pytest.raises(selfmigrate.DiscoveryError) as caught:
        selfmigrate.migrate(db, str(diesel), backup=False)
    assert "2024-01-01-000000_create_users/up.sql  (as: 20240101000000_create_users.sql)" in str(caught.value)
    assert "then a line '-- migrate:down', then down.sql" in str(caught.value)

    # Done as told: each migration.sql a file; then the rebuild's pragmas, as lint says.
    flat = tmp_path / "flat"
    flat.mkdir()
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        shutil.copyfile(sub / "migration.sql", flat / f"{sub.name}.sql")
    selfmigrate.migrate(db, str(flat), target=20231013145653, backup=False)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("""INSERT INTO "User" VALUES ('u1', NULL), ('u2', 'ana')""")
        conn.execute("""INSERT INTO "Post" VALUES ('p1', 'u1'), ('p2', 'u2')""")
    conn.close()
    before = dump(db)
    with pytest.raises(selfmigrate.MigrationError, match="Delete the line"):
        selfmigrate.migrate(db, str(flat), backup=False)
    assert dump(db) == before
    rebuild = flat / "20231014100000_name_required.sql"
    lines = {f.line for f in lint(str(flat)).findings if f.code == "SM110"}
    assert lines == {10, 18}
    _delete_lines(rebuild, {line for line in lines if line is not None})
    selfmigrate.migrate(db, str(flat), backup=False)
    conn = sqlite3.connect(db)
    try:
        # DROP TABLE "User" did not cascade into "Post": selfmigrate's connection has foreign keys off.
        assert conn.execute('SELECT * FROM "Post" ORDER BY 1').fetchall() == [("p1", "u1"), ("p2", "u2")]
        assert conn.execute('SELECT * FROM "User" ORDER BY 1').fetchall() == [("u1", ""), ("u2", "ana")]
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("20220505083406_create-events.sql", "(rename: 20220505083406_create_events.sql)"),  # sqlx (atuin)
        ("V1__init.sql", "(rename: 0001_init.sql)"),  # Flyway
        ("V0001.Initial_Schema.up.sql", "(merge into: 0001_Initial_Schema.sql)"),  # authelia
        ("20240813211251_passkey_backup_flags..up.sql", "(merge into: 20240813211251_passkey_backup_flags.sql)"),
        # yoyo: its rollback is the down of the same migration, not a migration of its own.
        ("20211113_01_xevv9-customers-table.rollback.sql", "(merge into: 2021111301_xevv9_customers_table.sql)"),
        ("0003_add_index.SQL", "(rename: 0003_add_index.sql)"),  # saved by a tool on Windows
        ("V1_1__fix.sql", None),  # Flyway's 1.1: no number keeps its order
        ("patch1.sql", None),  # Uptime Kuma: no version to keep
    ],
)
def test_a_name_of_another_tool_gets_its_new_name(tmp_path: Path, name: str, hint: str | None) -> None:
    folder = _folder(tmp_path, "migrations", {name: b"CREATE TABLE t (id);\n"})
    with pytest.raises(selfmigrate.DiscoveryError) as caught:
        selfmigrate.migrate(tmp_path / "app.db", str(folder), backup=False)
    line = next(line for line in str(caught.value).splitlines() if name in line)
    if hint is None:
        assert line.strip() == str(folder / name)
    else:
        assert line.endswith(hint)


def test_a_folder_named_like_a_module_elsewhere_is_that_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--migrations dbm`` in a project with a ``dbm`` folder read the standard library's
    ``dbm`` package instead (and refused its ``dumb.py`` as a misnamed migration)."""
    monkeypatch.chdir(tmp_path)
    _folder(tmp_path, "dbm", {"20151129054053_test_migration.sql": b"-- migrate:up\nCREATE TABLE users (id);\n"})
    _folder(tmp_path, "test", {"0001_a.sql": b"CREATE TABLE a (id);\n"})
    assert len(selfmigrate.migrate(tmp_path / "app.db", "dbm", backup=False).applied) == 1
    assert len(selfmigrate.migrate(tmp_path / "other.db", "test", backup=False).applied) == 1


def test_a_down_that_fails_says_to_fix_it_and_roll_back_again(tmp_path: Path) -> None:
    """atuin's scripts migrations: a down in MySQL's syntax (``alter table … drop index``)."""
    scripts = REAL / "atuin" / "scripts"
    folder = _folder(
        tmp_path,
        "migrations",
        {
            f"{stem}.sql": _merged(scripts / f"{stem}.up.sql", scripts / f"{stem}.down.sql")
            for stem in ("20250326160051_create_scripts", "20250402170430_unique_names")
        },
    )
    db = tmp_path / "app.db"
    selfmigrate.migrate(db, str(folder), backup=False)
    before = dump(db)
    done = subprocess.run(
        [sys.executable, "-m", "selfmigrate", "-d", str(db), "-m", str(folder), "rollback", "--yes"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 5
    assert "20250402170430_unique_names.sql, line 6" in done.stderr
    assert "alter table scripts drop index name_uniq_idx;" in done.stderr
    assert "Fix the down (after '-- migrate:down', or down(conn)) and run the rollback again" in done.stderr
    assert "start again" not in done.stderr
    assert dump(db) == before


def _init_db(tmp_path: Path, schema: Path) -> Path:
    """The Flask tutorial's database, as ``flask init-db`` leaves it, with a user and a post."""
    db = tmp_path / "flaskr.sqlite"
    conn = sqlite3.connect(db)
    with conn:
        conn.executescript(schema.read_text())
        conn.execute("INSERT INTO user (username, password) VALUES ('ana', 'x')")
        conn.execute("INSERT INTO post (author_id, title, body) VALUES (1, 'hi', 'first')")
    conn.close()
    return db


def test_an_init_db_schema_as_the_first_migration(tmp_path: Path) -> None:
    """The Flask tutorial's schema.sql as 0001 on the database its init-db built.

    Without its DROPs, 0001 fails on ``table user already exists``: the message used to say
    to fix the migration; the database predates it, and baseline is the fix. With them, lint
    warns (SM111): on that database they drop the tables with their rows.
    """
    schema = REAL / "flask" / "schema.sql"
    db = _init_db(tmp_path, schema)
    kept = [line for line in schema.read_text().splitlines(keepends=True) if not line.startswith("DROP TABLE")]
    folder = _folder(tmp_path, "migrations", {"0001_schema.sql": "".join(kept).encode()})
    before = dump(db)
    with pytest.raises(selfmigrate.MigrationError) as caught:
        selfmigrate.migrate(db, str(folder), backup=False)
    message = str(caught.value)
    assert "0001_schema.sql, line 5" in message and "table user already exists" in message
    assert "'python -m selfmigrate baseline --version N'" in message
    assert message.endswith(
        "Baseline the database, or fix the migration, and start again; nothing needs undoing by hand."
    )
    assert dump(db) == before
    # The fix it names: the database is recorded at 1, its rows untouched.
    done = subprocess.run(
        [sys.executable, "-m", "selfmigrate", "-d", str(db), "-m", str(folder), "baseline", "--version", "1", "--yes"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [line for line in dump(db) if "schema_migrations" not in line] == before

    with_drops = _folder(tmp_path, "with_drops", {"0001_schema.sql": schema})
    warned = [(f.code, f.line, f.level) for f in lint(str(with_drops)).findings]
    assert warned == [("SM111", 4, "warning"), ("SM111", 5, "warning")]


@pytest.mark.parametrize("value", ["$$it's$$", "$body$it's$body$", "E'it\\'s'"])
def test_postgresqls_quoted_text_keeps_the_down_marker_a_marker(tmp_path: Path, value: str) -> None:
    """The marker lines are found with PostgreSQL's quoted text known too (the file may run there)."""
    folder = _folder(
        tmp_path,
        "migrations",
        {
            "0001_posts.sql": f"CREATE TABLE posts (name text);\nINSERT INTO posts VALUES ({value});\n\n"
            "-- migrate:down\nDROP TABLE posts;\n".encode()
        },
    )
    (body,) = [m.load() for m in selfmigrate.MigrationRegistry(str(folder)).migrations]
    assert body.up_sql is not None and "DROP TABLE" not in body.up_sql.text
    assert body.down_sql is not None and body.down_sql.text.strip() == "DROP TABLE posts;"


def test_a_flask_migrate_folder_at_the_default_location_names_the_move(tmp_path: Path) -> None:
    """An app that used Flask-Migrate has its Alembic folder where selfmigrate looks by default
    (``<root_path>/migrations``); the naming error listed ``env.py`` and said to rename it."""
    from flask import Flask

    root = tmp_path / "approot"
    folder = root / "migrations"
    (folder / "versions").mkdir(parents=True)
    # The shape ``flask db init`` writes (written here, not copied), and one revision.
    (folder / "alembic.ini").write_text("# A generic, single database configuration.\n\n[alembic]\n")
    (folder / "env.py").write_text("import logging\n\nfrom alembic import context\nfrom flask import current_app\n")
    (folder / "script.py.mako").write_text('"""${message}\n\nRevision ID: ${up_revision}\n"""\n')
    (folder / "README").write_text("Single-database configuration for Flask.\n")
    (folder / "versions" / "1f2e3d4c5b6a_initial.py").write_text('revision = "1f2e3d4c5b6a"\ndown_revision = None\n')
    app = Flask("no_such_flask_app_qa3", root_path=str(root), instance_path=str(tmp_path / "instance"))
    app.config.update(DATABASE="app.sqlite")
    with pytest.raises(selfmigrate.DiscoveryError) as caught:
        selfmigrate.apply(app)
    message = str(caught.value)
    assert f"Migrations folder {folder} is an Alembic (Flask-Migrate) folder" in message
    assert "docs/moving.rst, 'From Flask-Migrate (Alembic)'" in message
    assert "Rename them" not in message
    assert not (tmp_path / "instance" / "app.sqlite").exists()


def test_a_down_that_cannot_run_in_a_transaction_gets_a_downs_advice(tmp_path: Path) -> None:
    """SQLite's VACUUM in a down: the advice was an up's (a migration of its own marked no-transaction)."""
    folder = _folder(
        tmp_path, "migrations", {"0001_t.sql": b"CREATE TABLE t (x);\n-- migrate:down\nDROP TABLE t;\nVACUUM;\n"}
    )
    db = tmp_path / "app.db"
    selfmigrate.migrate(db, str(folder), backup=False)
    before = dump(db)
    done = subprocess.run(
        [sys.executable, "-m", "selfmigrate", "-d", str(db), "-m", str(folder), "rollback", "--yes"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 5
    assert "0001_t.sql, line 4" in done.stderr and "cannot VACUUM from within a transaction" in done.stderr
    assert "A down always runs in a transaction" in done.stderr
    assert "Move it to a migration of its own" not in done.stderr
    assert dump(db) == before


def test_a_package_without_its_sql_files_is_not_silently_up_to_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A wheel built by setuptools without package-data has the migrations package but none of
    its .sql files: every start said "up to date at version none", and the app met no tables."""
    site = tmp_path / "site"
    (site / "qa3_wheel_app" / "migrations").mkdir(parents=True)
    (site / "qa3_wheel_app" / "__init__.py").write_text("")
    (site / "qa3_wheel_app" / "migrations" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(site))
    db = tmp_path / "app.db"
    with caplog.at_level(logging.INFO, logger="selfmigrate.runner"):
        report = selfmigrate.migrate(db, "qa3_wheel_app.migrations")
    assert report.applied == [] and report.current_version is None
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "No migration file in qa3_wheel_app.migrations" in warning.getMessage()
    assert "package-data" in warning.getMessage()
