"""``import selfmigrate`` stays cheap: public names are imported on first use.

What the startup benchmark (benchmarks/startup.py) measures in milliseconds,
these tests pin down as facts: which modules a fresh process has loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import selfmigrate


def _modules_after(code: str, cwd: Path) -> set[str]:
    script = code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_import_loads_no_submodule_and_no_heavy_dependency(tmp_path: Path) -> None:
    baseline = _modules_after("", tmp_path)
    loaded = _modules_after("import selfmigrate", tmp_path) - baseline
    assert loaded <= {"selfmigrate", "__future__"}  # __future__: the annotations import


def test_noop_migrate_imports_neither_faces_nor_migrations(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_first.sql").write_text("CREATE TABLE t (id INTEGER);\n")
    (folder / "0002_second.py").write_text("import json\n\ndef up(conn):\n    conn.execute('CREATE TABLE u (id)')\n")
    database = tmp_path / "app.sqlite"
    selfmigrate.migrate(database, folder)

    code = f"import selfmigrate; selfmigrate.migrate({str(database)!r}, {str(folder)!r})"
    loaded = _modules_after(code, tmp_path)
    for module in ("flask", "click", "selfmigrate.faces.flask", "selfmigrate.faces.cli.main", "selfmigrate.ops.create"):
        assert module not in loaded
    # Nor what only the full run needs: the runner, the errors (and typing through them), logging.
    for module in ("selfmigrate.core.runner", "selfmigrate.errors", "typing", "logging", "dataclasses"):
        assert module not in loaded
    assert not any("0002_second" in name for name in loaded)


def test_public_names_resolve_and_create_stays_the_function() -> None:
    from selfmigrate.ops.create import slugify  # imports the submodule named like the function

    assert slugify("Add column") == "add_column"
    assert callable(selfmigrate.create)
    assert selfmigrate.create.__module__ == "selfmigrate.ops.create"
    for name in selfmigrate.__all__:
        assert getattr(selfmigrate, name) is not None
        assert name in dir(selfmigrate)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        selfmigrate.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_names_follow_the_modules_in_sys_modules(tmp_path: Path) -> None:
    # pytester's in-process runs drop modules imported during the run; a name
    # cached from the dropped module would no longer be what the library raises.
    code = """
import sys, selfmigrate
old = selfmigrate.ConfigError
for name in [m for m in sys.modules if m.startswith("selfmigrate.")]:
    del sys.modules[name]
import selfmigrate.core.runner
assert selfmigrate.ConfigError is not old
assert selfmigrate.ConfigError is sys.modules["selfmigrate.errors"].ConfigError
try:
    selfmigrate.migrate(":memory:", ".")
except selfmigrate.ConfigError:
    pass
"""
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)


def test_a_fresh_apply_imports_neither_logging_nor_dataclasses_nor_typing_nor_pathlib(tmp_path: Path) -> None:
    # An INFO record with no logging imported has no handler to reach (see core/runner.py
    # selfmigrate.logs.Logger); the values of the core and the boundary are not dataclasses; a plain
    # ``def up(conn)`` is checked from its code object; typing is for the type checker;
    # the migration lock (fcntl) and the ahead rules only when a start needs them; a
    # location keeps its folder as text (pathlib, with urllib.parse, only when asked for).
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_first.sql").write_text("CREATE TABLE t (id INTEGER);\n-- migrate:down\nDROP TABLE t;\n")
    (folder / "0002_second.py").write_text("def up(conn):\n    conn.execute('CREATE TABLE u (id)')\n")
    database = tmp_path / "app.sqlite"
    code = f"import selfmigrate; selfmigrate.migrate({str(database)!r}, {str(folder)!r})"
    loaded = _modules_after(code, tmp_path)
    assert "selfmigrate.core.runner" in loaded  # the full run did run
    for module in (
        "logging",
        "dataclasses",
        "inspect",
        "traceback",
        "typing",
        "fcntl",
        "selfmigrate.core.ahead",
        "pathlib",
        "urllib.parse",
    ):
        assert module not in loaded, module


def test_a_start_that_snapshots_before_a_pending_migration_imports_neither_logging_nor_typing(
    tmp_path: Path,
) -> None:
    # The snapshot's records go through selfmigrate.logs.Logger, as the runner's do.
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_first.sql").write_text("CREATE TABLE t (id INTEGER);\nINSERT INTO t VALUES (1);\n")
    database = tmp_path / "app.sqlite"
    code = f"import selfmigrate; selfmigrate.migrate({str(database)!r}, {str(folder)!r})"
    _modules_after(code, tmp_path)
    (folder / "0002_second.sql").write_text("INSERT INTO t VALUES (2);\n")
    loaded = _modules_after(code, tmp_path)
    assert "selfmigrate.backends.sqlite.snapshots" in loaded  # a snapshot was taken
    assert [p.name for p in tmp_path.glob("app.sqlite.*.bak")] != []
    for module in ("logging", "typing", "dataclasses", "inspect"):
        assert module not in loaded, module


def test_status_checking_the_other_settings_of_the_environment_imports_no_dataclasses(tmp_path: Path) -> None:
    # A rollback-safe image's health check sets SELFMIGRATE_AHEAD: the quick status checks
    # it as the full command does (project_settings, Options.check) at the cost of a module.
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_first.sql").write_text("CREATE TABLE t (id INTEGER);\n")
    database = tmp_path / "app.sqlite"
    _modules_after(f"import selfmigrate; selfmigrate.migrate({str(database)!r}, {str(folder)!r})", tmp_path)
    code = (
        "from selfmigrate.faces.cli.quickstatus import answer\n"
        f"done = answer(['-d', {str(database)!r}, '-m', {str(folder)!r}, 'status'],"
        f" {{'SELFMIGRATE_AHEAD': 'rollback'}}, {str(tmp_path)!r})\n"
        "assert done is not None and done[1] == 0, done"
    )
    loaded = _modules_after(code, tmp_path)
    assert "selfmigrate.faces.project_settings" in loaded  # the setting was checked
    for module in ("click", "dataclasses", "inspect", "pathlib", "typing", "selfmigrate.core.runner"):
        assert module not in loaded, module
