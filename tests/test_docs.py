"""The user's guide builds strictly, and its samples are real.

- The Sphinx build runs with ``-W --keep-going``: a broken reference, a page
  outside the table of contents or a missing included file fails it.
- Python samples are ``literalinclude`` of files that tests run, or
  ``doctest`` blocks run here by ``sphinx-build -b doctest``; a hand-written
  ``code-block:: python`` is refused.
- Every ``$ command`` of a ``code-block:: console`` is checked against the real
  command line: the ``python -m selfmigrate`` / ``flask`` commands and options
  it names must exist and take that many arguments, gunicorn must accept its
  options, make targets must exist, and so on.
- The cookbook's migrations (docs/samples/cookbook) are applied to a real
  database with data in it.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import typing as t
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from helpers import connected, dump

import selfmigrate

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
COOKBOOK = DOCS / "samples" / "cookbook"


def sphinx(builder: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder, "-d", str(out / "doctrees")]
        + [str(DOCS), str(out / builder)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_guide_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    result = sphinx("html", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "html" / "index.html").is_file()


def test_guide_doctests_pass(tmp_path: Path) -> None:
    result = sphinx("doctest", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    output = (tmp_path / "doctest" / "output.txt").read_text()
    assert "0 failures in tests" in output and "0 failures in setup code" in output, output


# --- samples ------------------------------------------------------------------

PAGES = sorted(DOCS.glob("*.rst"))
DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. (?:code-block|code|sourcecode|prompt)::\s*(?P<language>\S*)")


@dataclass(frozen=True)
class Sample:
    """One ``$ command`` of a console block."""

    page: str
    line: int
    command: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: $ {self.command}"


def code_blocks(path: Path) -> t.Iterator[tuple[str, int, list[tuple[int, str]]]]:
    """Each code block of a page: its language, its line, its (line, text) body."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, text in enumerate(lines):
        match = DIRECTIVE.match(text)
        if not match:
            continue
        indent = len(match["indent"])
        body: list[tuple[int, str]] = []
        for later in range(number + 1, len(lines)):
            line = lines[later]
            if line.strip() and len(line) - len(line.lstrip()) <= indent:
                break
            if not line.strip().startswith(":") or body:  # skip the directive's options
                body.append((later + 1, line.strip()))
        yield match["language"], number + 1, body


def console_samples() -> list[Sample]:
    samples = []
    for page in PAGES:
        for language, _, body in code_blocks(page):
            if language != "console":
                continue
            command: list[str] = []
            start = 0
            for number, text in body:
                if command:
                    command.append(text)
                elif text.startswith("$ "):
                    command, start = [text[2:]], number
                if command and not command[-1].endswith("\\"):
                    joined = " ".join(part.rstrip("\\").strip() for part in command)
                    samples.append(Sample(page.name, start, joined))
                    command = []
    return samples


def test_python_samples_are_included_files_or_doctests() -> None:
    hand_written = [
        f"{page.name}:{line}: code-block:: {language}"
        for page in PAGES
        for language, line, _ in code_blocks(page)
        if language in ("python", "python3", "py", "pycon", "bash", "sh", "shell")
    ]
    assert hand_written == [], (
        "Python samples must be '.. literalinclude::' of a tested file or '.. doctest::' blocks;"
        " shell samples '.. code-block:: console' with '$ ' prompts."
    )


def test_console_samples_were_found() -> None:
    commands = [sample.command for sample in console_samples()]
    assert any(command.startswith("python -m selfmigrate") for command in commands), commands


@pytest.mark.parametrize("sample", console_samples(), ids=str)
def test_console_sample_is_a_real_command(sample: Sample) -> None:
    for words in simple_commands(sample.command):
        check_command(words, sample)


def simple_commands(command: str) -> list[list[str]]:
    """Split ``a && b | c`` into its simple commands, without environment assignments."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", "||", "|", ";", "&"):
            commands.append([])
        elif not commands[-1] and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", token):
            continue
        else:
            commands[-1].append(token)
    return [words for words in commands if words]


# Programs whose use in a sample needs no further check (ordinary shell tools).
PLAIN = {"cd", "export", "cp", "mv", "ls", "cat", "mkdir", "rm", "echo", "sqlite3", "git", "grep", "tail", "sudo"}
PIP_COMMANDS = {"install", "uninstall", "wheel", "download", "show", "freeze", "list"}
CONTAINER_COMMANDS = {
    "build", "run", "stop", "start", "restart", "rm", "rmi", "logs", "ps", "exec", "inspect", "pull", "push",
    "tag", "volume", "images", "healthcheck", "cp", "compose", "auto-update", "image",
}  # fmt: skip


def check_command(words: list[str], sample: Sample) -> None:
    program, args = Path(words[0]).name if words[0].startswith((".venv/", "/")) else words[0], words[1:]
    if program in ("python", "python3") and args[:1] == ["-m"]:
        module, args = args[1], args[2:]
        if module == "selfmigrate":
            check_click(selfmigrate_cli(), args, sample, "python -m selfmigrate")
        elif module == "flask":
            check_flask(args, sample)
        elif module == "pip":
            assert args[0] in PIP_COMMANDS, f"{sample}: pip has no command {args[0]!r}"
        elif module not in ("pytest", "venv", "sphinx", "build"):
            raise AssertionError(f"{sample}: no check for python -m {module}; add one to tests/test_docs.py")
    elif program in ("python", "python3"):
        script = args[0]
        assert (ROOT / script).is_file(), f"{sample}: {script} is not a file of the project"
    elif program == "selfmigrate":
        check_click(selfmigrate_cli(), args, sample, "selfmigrate")
    elif program == "flask":
        check_flask(args, sample)
    elif program == "gunicorn":
        from gunicorn.config import Config

        parser = Config().parser()
        try:
            parser.parse_args(args)
        except SystemExit:
            raise AssertionError(f"{sample}: gunicorn does not accept these arguments") from None
    elif program == "make":
        targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE)
        for target in args:
            assert target in targets, f"{sample}: the Makefile has no target {target!r}"
    elif program in ("docker", "podman"):
        assert args[0] in CONTAINER_COMMANDS, f"{sample}: {program} has no command {args[0]!r}"
        # A command run in the container (docker run IMAGE python -m selfmigrate ...) is checked too.
        nested = [i for i, word in enumerate(args) if word in ("python", "python3") and args[i + 1 : i + 2] == ["-m"]]
        if args[0] in ("run", "exec") and nested:
            check_command(args[nested[0] :], sample)
    elif program == "pip":
        assert args[0] in PIP_COMMANDS, f"{sample}: pip has no command {args[0]!r}"
    elif program == "curl":
        urls = [arg for arg in args if "://" in arg]
        assert urls and all(re.match(r"https?://(127\.0\.0\.1|localhost)[:/]", url) for url in urls), (
            f"{sample}: samples send HTTP to this machine only"
        )
    elif program in ("pytest", "sphinx-build"):
        pass
    else:
        assert program in PLAIN, f"{sample}: no check for {program!r}; add one to tests/test_docs.py"


def selfmigrate_cli() -> click.Group:
    from selfmigrate.faces.cli.main import cli

    return cli


def check_flask(args: list[str], sample: Sample) -> None:
    """``flask [--app X] selfmigrate ...`` or one of Flask's own commands."""
    from flask.cli import cli as flask_cli

    from selfmigrate.faces.flask import flask_group

    group = click.Group("flask", params=list(flask_cli.params))
    group.commands.update(flask_cli.commands)
    group.add_command(flask_group("selfmigrate"))
    check_click(group, args, sample, "flask")


def group_commands(group: click.Group) -> dict[str, click.Command]:
    ctx = click.Context(group)
    commands = {name: group.get_command(ctx, name) for name in group.list_commands(ctx)}
    return {name: command for name, command in commands.items() if command is not None}


def check_click(command: click.Command, args: list[str], sample: Sample, path: str) -> None:
    """The words name existing (sub)commands and options, with a fitting number of arguments."""
    positional: list[str] = []
    words = iter(args)
    for word in words:
        if word == "--help":
            return
        if word.startswith("-") and word != "-":
            name = word.split("=", 1)[0]
            option = next(
                (p for p in command.params if isinstance(p, click.Option) and name in p.opts + p.secondary_opts),
                None,
            )
            assert option is not None, f"{sample}: {path} has no option {name}"
            if not option.is_flag and not option.count and "=" not in word:
                next(words, None)
        elif isinstance(command, click.Group) and not positional and word in group_commands(command):
            command = group_commands(command)[word]
            path = f"{path} {word}"
        else:
            positional.append(word)
    if isinstance(command, click.Group):
        assert command.invoke_without_command, f"{sample}: {path} needs a command"
        return
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    required = sum(1 for p in arguments if p.required) if arguments else 0
    unlimited = any(p.nargs == -1 for p in arguments)
    most = sum(max(p.nargs, 0) for p in arguments)
    assert len(positional) >= required, f"{sample}: {path} needs {required} argument(s), got {positional}"
    assert unlimited or len(positional) <= most, f"{sample}: {path} takes {most} argument(s), got {positional}"


# --- the cookbook ---------------------------------------------------------------


def app_dump(path: Path) -> list[str]:
    """The dump without selfmigrate's own tables (the tracker, its fingerprint)."""
    own = re.compile(r'(CREATE TABLE|INSERT INTO) "?schema_migrations')
    return [line for line in dump(path) if not own.match(line)]


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def test_cookbook_recipes_apply_to_a_database_with_data(tmp_path: Path) -> None:
    db = tmp_path / "library.sqlite"
    selfmigrate.migrate(db, COOKBOOK, target=2)
    with connected(db) as conn:
        conn.executemany(
            "INSERT INTO author (id, name, email) VALUES (?, ?, ?)",
            [(1, "Umberto Eco", " Umberto@Example.org "), (2, "Anonymous", None)],
        )
        conn.executemany(
            "INSERT INTO book (id, author_id, title) VALUES (?, ?, ?)",
            [(1, 1, "The Name of the Rose!"), (2, 1, "Foucault's Pendulum"), (3, 2, "Beowulf")],
        )
    conn.close()

    report = selfmigrate.migrate(db, COOKBOOK)

    assert [r.version for r in report.applied] == [3, 4, 5, 6, 7, 8]
    conn = sqlite3.connect(db)
    try:
        assert columns(conn, "author") == ["id", "full_name", "email"]
        assert columns(conn, "book") == ["id", "author_id", "title", "created_at", "isbn", "in_print", "slug"]
        assert conn.execute("SELECT id, full_name, email FROM author ORDER BY id").fetchall() == [
            (1, "Umberto Eco", "umberto@example.org"),
            (2, "Anonymous", "author-2@example.invalid"),
        ]
        assert conn.execute("SELECT id, author_id, title, in_print, slug FROM book ORDER BY id").fetchall() == [
            (1, 1, "The Name of the Rose!", 1, "the-name-of-the-rose-1"),
            (2, 1, "Foucault's Pendulum", 1, "foucault-s-pendulum-2"),
            (3, 2, "Beowulf", 1, "beowulf-3"),
        ]
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")}
        assert {"book_title", "book_isbn", "book_slug", "author_name"} <= indexes
        assert "full_name" in conn.execute("SELECT sql FROM sqlite_schema WHERE name = 'author_name'").fetchone()[0]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        # The rebuilt table enforces what ALTER TABLE could not add.
        for bad_email in (None, "umberto@example.org", "not an address"):
            with pytest.raises(sqlite3.IntegrityError):
                conn.execute("INSERT INTO author (full_name, email) VALUES ('X', ?)", (bad_email,))
    finally:
        conn.close()


def test_cookbook_rebuild_refusing_bad_rows_leaves_the_table_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "library.sqlite"
    selfmigrate.migrate(db, COOKBOOK, target=7)
    with connected(db) as conn:
        conn.execute("INSERT INTO author (full_name, email) VALUES ('A', 'same@example.org')")
        conn.execute("INSERT INTO author (full_name, email) VALUES ('B', 'same@example.org')")
    conn.close()
    before = dump(db)

    with pytest.raises(selfmigrate.MigrationError) as excinfo:
        selfmigrate.migrate(db, COOKBOOK)

    assert excinfo.value.version == 8
    assert "0008_rebuild_author.py" in str(excinfo.value)
    assert "UNIQUE constraint failed" in str(excinfo.value)
    assert dump(db) == before


def test_cookbook_down_scripts_undo_their_migrations(tmp_path: Path) -> None:
    db = tmp_path / "library.sqlite"
    selfmigrate.migrate(db, COOKBOOK, target=2)
    at_v2 = app_dump(db)
    selfmigrate.migrate(db, COOKBOOK, target=5)

    report = selfmigrate.Runner(db, COOKBOOK).rollback(target=2)

    assert [r.version for r in report.applied] == [5, 4, 3]
    assert app_dump(db) == at_v2
    assert selfmigrate.Runner(db, COOKBOOK).status().current_version == 2


def test_cookbook_backfill_without_down_stops_a_rollback_before_any_change(tmp_path: Path) -> None:
    db = tmp_path / "library.sqlite"
    selfmigrate.migrate(db, COOKBOOK, target=7)
    before = dump(db)

    with pytest.raises(selfmigrate.ConfigError, match="0006_backfill_author_email"):
        selfmigrate.Runner(db, COOKBOOK).rollback(target=2)

    assert dump(db) == before
    report = selfmigrate.Runner(db, COOKBOOK).rollback(target=6)
    assert [r.version for r in report.applied] == [7]
    with connected(db) as conn:
        assert "slug" not in columns(conn, "book")
    conn.close()


CREATE_SAMPLES = [
    sample
    for sample in console_samples()
    if re.match(r"python -m selfmigrate .*\bcreate\b", sample.command) and "--help" not in sample.command
]


@pytest.mark.parametrize("sample", CREATE_SAMPLES, ids=str)
def test_create_samples_run_for_real(sample: Sample, tmp_path: Path) -> None:
    """``create`` samples run in an empty project whose migrations folder exists."""
    words = shlex.split(sample.command)
    folder = next(words[i + 1] for i, word in enumerate(words) if word in ("-m", "--migrations") and i > 2)
    (tmp_path / folder).mkdir(parents=True)
    result = subprocess.run([sys.executable, *words[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{sample}\n{result.stdout}{result.stderr}"
    created = list((tmp_path / folder).iterdir())
    assert len(created) == 1 and created[0].name.startswith("0001_"), created
    assert created[0].suffix == (".sql" if "--sql" in words else ".py")


@pytest.mark.parametrize(
    "command",
    [
        "python -m selfmigrate statuz",
        "python -m selfmigrate --databse app.sqlite status",
        "python -m selfmigrate create",
        "python -m selfmigrate status extra",
        "flask --app flask_app selfmigrate aply",
        "flask --app flask_app migrate",
        "gunicorn --wrokers 4 app:app",
        "make deploy",
        "curl http://example.org/",
        "docker run --rm -v data:/app/data myapp:2 python -m selfmigrate adpot",
        "frobnicate --now",
    ],
)
def test_console_checker_refuses_commands_that_do_not_exist(command: str) -> None:
    sample = Sample("example.rst", 1, command)
    with pytest.raises(AssertionError):
        for words in simple_commands(command):
            check_command(words, sample)


# --- moving from Flask-Migrate (docs/samples/moving) -------------------------------

MOVING = DOCS / "samples" / "moving"


def flask_migrate_database(path: Path) -> None:
    """A database as Flask-Migrate left it: the app's tables, data, and alembic_version."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "CREATE TABLE user (id INTEGER PRIMARY KEY AUTOINCREMENT, email VARCHAR(120) NOT NULL UNIQUE,"
            " name VARCHAR(80))"
        )
        conn.execute("CREATE TABLE post (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES user (id))")
        conn.execute("ALTER TABLE post ADD COLUMN title VARCHAR(200) NOT NULL DEFAULT ''")
        conn.execute("CREATE INDEX ix_post_user_id ON post (user_id)")
        conn.execute("CREATE VIEW post_count AS SELECT user_id, count(*) AS n FROM post GROUP BY user_id")
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('3f2a9c1e8b7d')")
        conn.execute("INSERT INTO user (email, name) VALUES ('ada@example.org', 'Ada'), ('bob@example.org', 'Bob')")
        conn.execute("INSERT INTO post (user_id, title) VALUES (1, 'Notes'), (1, 'More notes'), (2, 'Hello')")
    conn.close()


def app_rows(path: Path) -> dict[str, list[tuple[t.Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {table: conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall() for table in ("user", "post")}
    finally:
        conn.close()


def run_python(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=60)


def test_moving_from_flask_migrate_keeps_the_data_and_runs_only_what_is_new(tmp_path: Path) -> None:
    old = tmp_path / "app.sqlite"
    flask_migrate_database(old)
    data = app_rows(old)
    migrations = tmp_path / "migrations"
    migrations.mkdir()

    wrote = run_python(MOVING / "schema_to_migration.py", old, migrations / "0001_initial.sql")
    assert wrote.returncode == 0, wrote.stderr
    shutil.copy(MOVING / "0002_drop_alembic_version.sql", migrations)
    fresh = tmp_path / "fresh.sqlite"
    selfmigrate.migrate(fresh, migrations, target=1)
    compared = run_python(MOVING / "compare_schemas.py", fresh, old)
    assert (compared.returncode, compared.stdout) == (0, "The schemas match.\n")

    baseline = run_python(
        "-m", "selfmigrate", "--database", old, "--migrations", migrations, "baseline", "--version", "1", "--yes"
    )
    assert baseline.returncode == 0, baseline.stdout + baseline.stderr
    report = selfmigrate.migrate(old, migrations)

    assert [r.version for r in report.applied] == [2]
    assert app_rows(old) == data
    conn = sqlite3.connect(old)
    try:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema")}
    finally:
        conn.close()
    assert "alembic_version" not in names and {"user", "post", "ix_post_user_id", "post_count"} <= names
    # A new database gets the same schema from the two migrations.
    selfmigrate.migrate(fresh, migrations)
    assert run_python(MOVING / "compare_schemas.py", fresh, old).returncode == 0


def test_compare_schemas_names_what_differs(tmp_path: Path) -> None:
    expected, actual = tmp_path / "expected.sqlite", tmp_path / "actual.sqlite"
    flask_migrate_database(expected)
    flask_migrate_database(actual)
    with connected(actual) as conn:
        conn.execute("DROP INDEX ix_post_user_id")
        conn.execute("ALTER TABLE user ADD COLUMN avatar BLOB")
    conn.close()

    result = run_python(MOVING / "compare_schemas.py", expected, actual)

    assert result.returncode == 1
    assert "missing: index ix_post_user_id" in result.stdout
    assert "different: table user" in result.stdout and "avatar" in result.stdout


def test_schema_to_migration_never_overwrites(tmp_path: Path) -> None:
    database = tmp_path / "app.sqlite"
    flask_migrate_database(database)
    target = tmp_path / "0001_initial.sql"
    target.write_text("-- mine\n")

    result = run_python(MOVING / "schema_to_migration.py", database, target)

    assert result.returncode == 2 and "not overwriting" in result.stderr
    assert target.read_text() == "-- mine\n"


def test_api_reference_documents_every_public_name() -> None:
    api = (DOCS / "api.rst").read_text()
    documented = set(re.findall(r"^\.\. auto(?:function|class|exception):: (\w+)", api, re.MULTILINE))
    assert documented == set(selfmigrate.__all__)
