"""The user's guide builds strictly, and its samples are real.

- The Sphinx build runs with ``-W --keep-going``: a broken reference, a page
  outside the table of contents or a missing included file fails it.
- Python samples are ``literalinclude`` of files that tests run, or
  ``doctest`` blocks run here by ``sphinx-build -b doctest``; a hand-written
  ``code-block:: python`` is refused, except on the quickstart, whose files
  are written out and run as shown (below).
- Every ``$ command`` of a ``code-block:: console`` is checked against the real
  command line: the ``python -m selfmigrate`` / ``flask`` commands and options
  it names must exist and take that many arguments, gunicorn must accept its
  options, make targets must exist, and so on.
- The cookbook's migrations (docs/samples/cookbook) are applied to a real
  database with data in it.
- The quickstart page and the README's Quickstart are pasted into a new folder
  and run: files, commands, the app served and asked, the page's tests.
- The HTML shows the version on every page and each command of the command
  line as an entry of the navigation (the browser checks are in
  tests/test_docs_screens.py).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import queue
import re
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
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


@functools.cache
def html_build(out: Path) -> subprocess.CompletedProcess[str]:
    """The HTML build into ``out``, run once per session (tests/test_docs_screens.py uses it too)."""
    return sphinx("html", out)


@pytest.fixture(scope="session")
def docs_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the guide built as HTML (``-W --keep-going``); the build must succeed."""
    out = tmp_path_factory.getbasetemp() / "docs-build"
    result = html_build(out)
    assert result.returncode == 0, result.stdout + result.stderr
    return out / "html"


def test_guide_builds_with_warnings_as_errors(docs_html: Path) -> None:
    assert (docs_html / "index.html").is_file()


def test_every_page_shows_the_version(docs_html: Path) -> None:
    pages = sorted(docs_html.glob("*.html"))
    assert len(pages) > 10
    for page in pages:
        brand = re.search(r'<span class="sidebar-brand-text">(.*?)</span>', page.read_text(encoding="utf-8"), re.S)
        assert brand and brand[1].strip() == f"selfmigrate {selfmigrate.__version__}", page.name


def test_every_command_is_an_entry_of_the_navigation(docs_html: Path) -> None:
    """Each command of the command line has a sidebar entry, on every page, linking to its section."""
    commands = sorted(group_commands(selfmigrate_cli()))
    cli_page = (docs_html / "cli.html").read_text(encoding="utf-8")
    for page in ("index.html", "cli.html", "quickstart.html"):
        html = (docs_html / page).read_text(encoding="utf-8")
        tree = html[html.index('<div class="sidebar-tree">') :]
        tree = tree[: tree.index("</div>")]
        prefix = "#" if page == "cli.html" else "cli.html#"
        entries = set(re.findall(rf'href="{re.escape(prefix)}([\w-]+)"', tree))
        assert set(commands) <= entries, f"{page}: no sidebar entry for {sorted(set(commands) - entries)}"
        for command in commands:
            assert f'<section id="{command}">' in cli_page, f"cli.html has no section {command!r}"


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
        # The quickstart's files are run as written (test_the_quickstart_works_when_pasted_into_a_new_folder).
        if page.name != "quickstart.rst"
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
PLAIN = {
    "cd", "export", "cp", "mv", "ls", "cat", "mkdir", "touch", "rm", "echo", "sqlite3", "git", "grep", "tail", "sudo",
}  # fmt: skip
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
    """``create`` samples run in an empty project whose migrations folder exists.

    A sample without ``--migrations`` runs in a project whose pyproject.toml says where.
    """
    words = shlex.split(sample.command)
    folder = next((words[i + 1] for i, word in enumerate(words) if word in ("-m", "--migrations") and i > 2), None)
    if folder is None:
        folder = "myapp/migrations"
        (tmp_path / "pyproject.toml").write_text(f'[tool.selfmigrate]\nmigrations = "{folder}"\n', encoding="utf-8")
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


# --- the quickstart and the README, pasted into a new folder ---------------------
#
# Every file and command of docs/quickstart.rst and of the README's Quickstart
# section is run as shown, in order, in an empty folder, with this environment's
# python, flask and pytest: files are written, commands run, output shown under
# a command must be in what it printed ("…" stands for anything). Only three
# things differ from a person at a terminal, each because the test cannot do it:
# ``pip install`` lines are checked as already satisfied (no index here),
# ``flask run`` serves on a free port instead of 5000 (curl follows it), and a
# second ``flask run`` stops the first (the person's Control-C).


@dataclass(frozen=True)
class File:
    path: str
    text: str


@dataclass(frozen=True)
class Command:
    line: int
    command: str
    output: tuple[str, ...]


Step = File | Command


def rst_steps(path: Path) -> list[Step]:
    """The files (code blocks with a ``:caption:`` path) and console commands of a page, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    steps: list[Step] = []
    for number, text in enumerate(lines):
        match = DIRECTIVE.match(text)
        if not match:
            continue
        indent, options, later = len(match["indent"]), {}, number + 1
        while later < len(lines) and (option := re.match(r"\s+:(\w[\w-]*):\s*(.*)", lines[later])):
            options[option[1]] = option[2]
            later += 1
        body: list[str] = []
        for line in lines[later:]:
            if line.strip() and len(line) - len(line.lstrip()) <= indent:
                break
            body.append(line)
        block = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        if match["language"] == "console":
            steps.extend(console_steps(number + 1, block))
        else:
            assert "caption" in options, f"{path.name}:{number + 1}: a file needs ':caption: its/path'"
            steps.append(File(options["caption"], block))
    return steps


def markdown_steps(text: str) -> list[Step]:
    """The same for Markdown: a fenced file starts with a comment naming its path."""
    steps: list[Step] = []
    for fence in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.MULTILINE | re.DOTALL):
        language, block = fence[1], fence[2]
        line = text[: fence.start()].count("\n") + 1
        if language == "console":
            steps.extend(console_steps(line, block))
            continue
        first, _, rest = block.partition("\n")
        named = re.fullmatch(r"(?:#|--) (\S+)", first)
        assert named, f"README.md:{line}: a file starts with '# its/path' (or '-- its/path' in SQL)"
        steps.append(File(named[1], rest))
    return steps


def console_steps(line: int, block: str) -> list[Command]:
    commands: list[Command] = []
    for offset, text in enumerate(block.splitlines()):
        if text.startswith("$ "):
            commands.append(Command(line + offset, text[2:], ()))
        elif text.strip():
            assert commands, f"line {line + offset}: output before any command"
            last = commands[-1]
            commands[-1] = Command(last.line, last.command, (*last.output, text))
    return commands


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``flask run`` in the background; its output is read by a thread."""

    def __init__(self, words: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            words, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def output_until_serving(self) -> list[str]:
        seen: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=60)
            except queue.Empty:
                raise AssertionError("flask run did not start serving within 60 s:\n" + "\n".join(seen)) from None
            if line is None:
                raise AssertionError("flask run exited:\n" + "\n".join(seen))
            seen.append(line)
            if "Running on http://" in line:
                return seen

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        assert self.process.stdout is not None
        self.process.stdout.close()


def shown_in(shown: tuple[str, ...], printed: list[str]) -> bool:
    """Each shown line matches a printed one, in order; "…" stands for anything."""
    patterns = [re.compile(".*".join(map(re.escape, line.strip().split("…")))) for line in shown]
    remaining = iter(line.strip() for line in printed)
    return all(any(pattern.fullmatch(line) for line in remaining) for pattern in patterns)


def run_steps(steps: list[Step], folder: Path, source: str) -> None:
    bin_dir = str(Path(sys.executable).parent)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FLASK_", "SELFMIGRATE_"))}
    env.update(PATH=bin_dir + os.pathsep + env.get("PATH", ""), PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)
    server: Server | None = None
    port = free_port()
    try:
        for step in steps:
            if isinstance(step, File):
                target = folder / step.path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(step.text, encoding="utf-8")
                continue
            where = f"{source}:{step.line}: $ {step.command}"
            words = shlex.split(step.command)
            if words[:2] == ["pip", "install"]:
                for requirement in words[2:]:
                    name = re.split(r"[\[<>=]", requirement, maxsplit=1)[0]
                    try:
                        importlib.metadata.distribution(name)
                    except importlib.metadata.PackageNotFoundError:
                        raise AssertionError(f"{where}: {name} is not installed here") from None
                continue
            if words[0] == "flask" and words[-1] == "run":
                if server is not None:
                    server.stop()
                server = Server([*words, "--port", str(port)], folder, env)
                printed = server.output_until_serving()
                shown = tuple(line.replace(":5000", f":{port}") for line in step.output)
                assert shown_in(shown, printed), f"{where}\nshown: {shown}\nprinted: {printed}"
                continue
            command = step.command.replace("127.0.0.1:5000", f"127.0.0.1:{port}")
            result = subprocess.run(
                ["bash", "-c", command], cwd=folder, env=env, capture_output=True, text=True, timeout=120
            )
            printed = (result.stdout + result.stderr).splitlines()
            assert result.returncode == 0, f"{where}\n{result.stdout}{result.stderr}"
            assert shown_in(step.output, printed), f"{where}\nshown: {step.output}\nprinted: {printed}"
    finally:
        if server is not None:
            server.stop()


def test_the_quickstart_works_when_pasted_into_a_new_folder(tmp_path: Path) -> None:
    steps = rst_steps(DOCS / "quickstart.rst")
    commands = [step.command for step in steps if isinstance(step, Command)]
    assert any(command.startswith("flask --app myapp run") for command in commands), commands
    assert "pytest" in commands and any(command.startswith("curl") for command in commands), commands

    run_steps(steps, tmp_path, "quickstart.rst")

    conn = sqlite3.connect(tmp_path / "instance" / "app.sqlite")
    try:
        assert conn.execute("SELECT id, text, done FROM note").fetchall() == [(1, "milk", 0)]
    finally:
        conn.close()


def test_the_readme_quickstart_works_when_pasted_into_a_new_folder(tmp_path: Path) -> None:
    steps = markdown_steps(readme_section("Quickstart"))
    files = [step.path for step in steps if isinstance(step, File)]
    assert "myapp/__init__.py" in files, files
    init = next(step.text for step in steps if isinstance(step, File) and step.path == "myapp/__init__.py")
    # The startup lines are shown: the app (not the library) sets up logging.
    assert "logging.basicConfig(level=logging.INFO)" in init

    run_steps(steps, tmp_path, "README.md")

    assert (tmp_path / "instance" / "app.sqlite").is_file()


@pytest.mark.parametrize(
    "shown, printed, expected",
    [
        (("Applied migration 0001 in … ms.",), ["x", "Applied migration 0001 in 0.1 ms."], True),
        (("Applied migration 0001 in … ms.",), ["Applied migration 0002 in 0.1 ms."], False),
        (("b", "a"), ["a", "b"], False),
    ],
)
def test_shown_output_is_compared_in_order(shown: tuple[str, ...], printed: list[str], expected: bool) -> None:
    assert shown_in(shown, printed) is expected


def readme_section(title: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", readme, re.MULTILINE | re.DOTALL)
    assert match, f"README.md has no '## {title}' section"
    return match[1]


def test_the_readme_sets_up_with_two_commands_and_builds_the_docs_with_make_docs() -> None:
    set_up = [step.command for step in markdown_steps(readme_section("Set up")) if isinstance(step, Command)]
    assert set_up == ["make example", "make test"]
    assert "`make docs`" in readme_section("Documentation")
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^docs:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe, "the Makefile has no docs target"
    assert "pip install --quiet -e '.[docs]'" in recipe[1] and "sphinx -W --keep-going" in recipe[1], recipe[1]


def test_the_readme_links_to_files_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+)\)", readme)
    assert len(links) > 10
    assert [link for link in links if "://" not in link and not (ROOT / link).exists()] == []
    assert len(re.findall(r"^- \[", readme_section("Next steps"), re.MULTILINE)) == 3
