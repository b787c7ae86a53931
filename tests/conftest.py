"""Shared fixtures: migrations written as real temporary packages and folders."""

from __future__ import annotations

import itertools
import sys
import textwrap
import typing as t
from pathlib import Path

import pytest

_counter = itertools.count()


class MigrationsFactory(t.Protocol):
    def __call__(self, files: dict[str, str], *, package: bool = True) -> str: ...


@pytest.fixture
def make_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MigrationsFactory:
    """Write migration files and return where they are.

    ``make_migrations({"0001_init.sql": "CREATE TABLE t (id);"})`` writes an
    importable package (a fresh, unique name on ``sys.path``) and returns its
    name; ``package=False`` writes a plain folder and returns its path. Text is
    dedented, so tests can indent file bodies.
    """

    def factory(files: dict[str, str], *, package: bool = True) -> str:
        n = next(_counter)
        if package:
            root = tmp_path / f"site_{n}"
            name = f"testapp_{n}_{id(tmp_path)}"
            folder = root / name / "migrations"
            folder.mkdir(parents=True)
            (root / name / "__init__.py").write_text("")
            (folder / "__init__.py").write_text("")
            monkeypatch.syspath_prepend(str(root))
            location = f"{name}.migrations"
        else:
            folder = tmp_path / f"migrations_{n}"
            folder.mkdir()
            location = str(folder)
        for filename, text in files.items():
            (folder / filename).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return location

    yield factory
    for module in [m for m in sys.modules if m.startswith("testapp_")]:
        del sys.modules[module]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A path for a database file that does not exist yet."""
    return tmp_path / "app.sqlite"
