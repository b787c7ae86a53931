"""The package's layers, checked mechanically so that they cannot rot.

Every ``import`` in ``src/selfmigrate`` (at the top, inside functions, and under
``TYPE_CHECKING``) is read with :mod:`ast`; the rules are the ones
docs/design.rst ("Architecture") and CONTRIBUTING.md state.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "selfmigrate"

#: Third-party frameworks and database drivers: only faces, testing and backends may know them.
FRAMEWORKS = {"flask", "werkzeug", "click", "pytest", "_pytest"}
DRIVERS = {"sqlite3", "psycopg", "psycopg2", "fcntl"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The modules ``name`` imports: absolute names, submodules resolved where they are modules."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _top(module: str) -> str:
    return module.split(".")[0]


def _in(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _violations(modules: str, forbidden: set[str], forbidden_internal: tuple[str, ...] = ()) -> list[str]:
    bad = []
    for name, imported in GRAPH.items():
        if not _in(name, modules):
            continue
        for target in sorted(imported):
            if _top(target) in forbidden or (forbidden_internal and _in(target, *forbidden_internal)):
                bad.append(f"{name} imports {target}")
    return bad


def test_the_graph_sees_the_package() -> None:
    # The checks below would pass vacuously on an empty graph.
    assert "selfmigrate.core.runner" in GRAPH
    assert "selfmigrate.core.registry" in GRAPH["selfmigrate.core.runner"]
    assert "sqlite3" in GRAPH["selfmigrate.backends.sqlite.backend"]


def test_core_knows_no_engine_and_no_face() -> None:
    assert _violations(
        "selfmigrate.core",
        FRAMEWORKS | DRIVERS,
        ("selfmigrate.backends.sqlite", "selfmigrate.ops", "selfmigrate.faces", "selfmigrate.testing"),
    ) == []


def test_only_the_sqlite_backend_and_the_test_side_import_sqlite3() -> None:
    importers = sorted(name for name, imported in GRAPH.items() if imported & DRIVERS)
    engines = ("selfmigrate.backends.sqlite", "selfmigrate.backends.postgres")
    outside = [n for n in importers if not _in(n, *engines, "selfmigrate.testing")]
    assert outside == []


def test_backends_know_neither_the_core_nor_the_faces() -> None:
    upward = ("selfmigrate.core", "selfmigrate.ops", "selfmigrate.faces", "selfmigrate.testing", "selfmigrate.startup")
    assert _violations("selfmigrate.backends", FRAMEWORKS, upward) == []


def test_the_boundary_names_no_engine() -> None:
    for name in ("selfmigrate.backends.base", "selfmigrate.backends.select"):
        internal = {t for t in GRAPH[name] if _in(t, "selfmigrate.backends") and t != "selfmigrate.backends.base"}
        assert not (GRAPH[name] & DRIVERS), name
        assert internal == set(), name


def test_an_engine_package_is_named_only_where_backends_are_chosen() -> None:
    # select.py imports engines by name from its table; beside the engine itself, only
    # the public faces that re-export its names, the test side, and the shim that keeps
    # the flat layout's selfmigrate.checks importable refer to it.
    allowed = ("selfmigrate.backends.sqlite", "selfmigrate.testing", "selfmigrate.sqlite", "selfmigrate.checks")
    users = sorted(
        name
        for name, imported in GRAPH.items()
        if any(_in(t, "selfmigrate.backends.sqlite") for t in imported)
        and not _in(name, *allowed)
        and name != "selfmigrate"
    )
    assert users == []


def test_ops_know_no_face_and_no_engine() -> None:
    assert _violations(
        "selfmigrate.ops",
        FRAMEWORKS | DRIVERS,
        ("selfmigrate.faces", "selfmigrate.testing", "selfmigrate.backends.sqlite"),
    ) == []


def test_faces_know_no_engine_and_the_cli_knows_no_flask() -> None:
    assert _violations("selfmigrate.faces", DRIVERS, ("selfmigrate.backends.sqlite", "selfmigrate.testing")) == []
    assert _violations("selfmigrate.faces.cli", {"flask", "werkzeug"}, ("selfmigrate.faces.flask",)) == []


def test_top_level_modules_import_no_framework() -> None:
    top = [n for n in GRAPH if n.count(".") == 1 and n != "selfmigrate.pytest_checks"]
    bad = [f"{n} imports {t}" for n in top for t in GRAPH[n] if _top(t) in FRAMEWORKS]
    assert bad == []


def test_errors_is_the_bottom_of_the_graph() -> None:
    assert {t for t in GRAPH["selfmigrate.errors"] if _top(t) == "selfmigrate"} == set()


def _cycles() -> list[list[str]]:
    """Every cycle among selfmigrate's modules (Tarjan's strongly connected components)."""
    edges = {n: sorted(t for t in GRAPH[n] if t in GRAPH and t != n) for n in GRAPH}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_not_even_for_types() -> None:
    assert _cycles() == []


def test_the_cycle_finder_finds_a_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(GRAPH, "selfmigrate.errors", {"selfmigrate.report"})
    assert ["selfmigrate.errors", "selfmigrate.report"] in _cycles()


def test_sub_package_init_files_are_empty() -> None:
    inits = [p for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE]
    assert inits, "no sub-packages found"
    assert [str(p.relative_to(SRC)) for p in inits if p.read_bytes().strip()] == []


def test_every_module_says_what_it_holds() -> None:
    missing = []
    for name, path in MODULES.items():
        if path.name == "__init__.py" and path.parent != PACKAGE:
            continue
        if not ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))):
            missing.append(name)
    assert missing == []


def test_the_flat_layouts_public_paths_still_import_the_same_objects() -> None:
    import selfmigrate.checks
    import selfmigrate.cli
    import selfmigrate.flask_ext
    import selfmigrate.sqlite
    from selfmigrate.backends.sqlite.backend import SQLiteBackend
    from selfmigrate.faces import flask
    from selfmigrate.faces.cli import main
    from selfmigrate.testing import roundtrip

    assert selfmigrate.cli.cli is main.cli and selfmigrate.cli.main is main.main
    assert selfmigrate.flask_ext.FlaskState is flask.FlaskState and selfmigrate.flask_ext.apply is flask.apply
    assert selfmigrate.checks.check_round_trips is roundtrip.check_round_trips
    assert selfmigrate.sqlite.SQLiteBackend is SQLiteBackend
    for shim in (selfmigrate.cli, selfmigrate.flask_ext, selfmigrate.checks):
        defined = [n for n, v in vars(shim).items() if getattr(v, "__module__", None) == shim.__name__]
        assert defined == [], f"{shim.__name__} holds code of its own: {defined}"
