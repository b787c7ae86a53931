"""The CLI reference cannot drift from the commands (after sqlite-utils' tests/test_docs.py).

Every command has a section in docs/cli.rst, every option is mentioned there,
every command and option has help text, every shell line of the CLI pages is a
command line the CLI accepts, and the adoption walk-through's sample output is
what ``adopt`` prints.
"""

from __future__ import annotations

import re
import shlex
import typing as t
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from helpers import connected
from test_cli import FILES

from selfmigrate.faces.cli.main import cli
from selfmigrate.faces.cli.settings import GlobalOption

if t.TYPE_CHECKING:
    from conftest import MigrationsFactory

DOCS = Path(__file__).parent.parent / "docs"
CLI_RST = (DOCS / "cli.rst").read_text(encoding="utf-8")
ADOPTING_RST = (DOCS / "adopting.rst").read_text(encoding="utf-8")


def long_options(command: click.Command, *, own: bool = False) -> list[str]:
    """The command's long options; with ``own``, without the global ones every command accepts."""
    return [
        opt
        for p in command.params
        if isinstance(p, click.Option) and not (own and isinstance(p, GlobalOption))
        for opt in p.opts
        if opt.startswith("--")
    ]


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_a_section(name: str) -> None:
    assert re.search(rf"^{name}\n~+\n", CLI_RST, re.MULTILINE), f"docs/cli.rst has no section for {name!r}"


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_option_is_documented(name: str) -> None:
    section = CLI_RST.split(f"\n{name}\n", 1)[1].split("\n~~~", 1)[0]
    for option in long_options(cli.commands[name], own=True):
        assert f"``{option}" in section or f", {option}" in section, f"{name} {option} is not in docs/cli.rst"


def test_global_options_are_documented() -> None:
    for option in long_options(cli):
        assert option in CLI_RST
    # Every command takes them after its name too, and the page says so.
    shared = set(long_options(cli)) - {"--version"}
    for name, command in cli.commands.items():
        assert shared <= set(long_options(command)), name
    assert "before or after the command" in CLI_RST


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_and_option_has_help(name: str) -> None:
    command = cli.commands[name]
    assert command.help, name
    assert len(command.get_short_help_str(limit=60)) <= 60 and not command.get_short_help_str(60).endswith("...")
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{name} {param.opts} has no help"


def shell_lines(text: str) -> list[str]:
    return [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("$ ")]


def selfmigrate_args(line: str) -> list[str] | None:
    """The arguments after ``python -m selfmigrate`` or ``flask … selfmigrate``; None for other commands."""
    words = shlex.split(line)
    if words[:3] == ["python", "-m", "selfmigrate"]:
        return words[3:]
    if words[0] == "flask":
        return words[words.index("selfmigrate") + 1 :]
    return None


@pytest.mark.parametrize("line", shell_lines(CLI_RST) + shell_lines(ADOPTING_RST))
def test_shell_samples_are_real_command_lines(line: str) -> None:
    args = selfmigrate_args(line)
    if args is None:
        assert line.split()[0] in ("export", "cp"), f"unexpected shell sample: {line}"
        return
    position = next(i for i, word in enumerate(args) if word in cli.commands)
    name = args[position]
    if line.startswith("python"):
        cli.make_context("python -m selfmigrate", [*args[:position], name])
    else:
        assert position == 0, "global options do not exist under flask"
    cli.commands[name].make_context(name, args[position + 1 :])


def test_adoption_walk_through_output(make_migrations: MigrationsFactory, db_path: Path) -> None:
    """The sample in docs/adopting.rst is what adopt prints for the table shown there."""
    folder = make_migrations(FILES, package=False)
    with connected(db_path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT NOT NULL, price INTEGER)")
        conn.execute(
            "CREATE TABLE schema_migrations (id INTEGER PRIMARY KEY AUTOINCREMENT, filename TEXT NOT NULL,"
            " applied_on TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        conn.executemany(
            "INSERT INTO schema_migrations (filename, applied_on) VALUES (?, ?)",
            [("0001_create_items.sql", "2024-01-05 10:00:00"), ("0002_add_price.sql", "2024-02-01 09:30:00")],
        )
    conn.close()
    block = ADOPTING_RST.split("before asking::\n\n", 1)[1].split("\n\n", 1)[0]
    expected = [line[3:] for line in block.splitlines()]
    result = CliRunner().invoke(cli, ["-d", str(db_path), "-m", folder, "adopt"], input="n\n")
    assert result.exit_code == 1
    printed = result.stdout.replace(str(db_path), "/srv/app/instance/app.sqlite").splitlines()
    assert printed == expected[:-1]
    assert result.stderr.startswith(expected[-1])


def test_configuration_key_is_documented() -> None:
    assert "``SELFMIGRATE_CLI_GROUP``" in (DOCS / "configuration.rst").read_text(encoding="utf-8")
