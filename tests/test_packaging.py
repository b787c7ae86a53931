"""Migrations shipped inside packages: an installed wheel, a zip on sys.path; selfmigrate's own wheel."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def package_files(name: str) -> dict[str, str]:
    """A throwaway app package with a migrations subpackage (SQL, Python, a helper)."""
    return {
        f"{name}/__init__.py": "",
        f"{name}/migrations/__init__.py": "",
        f"{name}/migrations/_helpers.py": "DEFAULT_NAME = 'from helper'\n",
        f"{name}/migrations/0001_create_thing.sql": (
            "CREATE TABLE thing (id INTEGER PRIMARY KEY, name TEXT);\n"
            "-- migrate:down\nDROP TABLE thing;\n"
        ),
        f"{name}/migrations/0002_seed_thing.py": textwrap.dedent(
            """
            from ._helpers import DEFAULT_NAME


            def up(conn):
                conn.execute("INSERT INTO thing (name) VALUES (?)", (DEFAULT_NAME,))
            """
        ).lstrip(),
    }


def pip_install(wheel: Path, target: Path) -> None:
    """Install a wheel into a folder, as pip does into a container's site-packages."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(target)]
        + [str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
    )


def record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def write_wheel(folder: Path, name: str, files: dict[str, str]) -> Path:
    """Write a minimal, valid pure-Python wheel (a zip with a dist-info folder)."""
    dist_info = f"{name}-1.0.dist-info"
    contents = {path: text.encode() for path, text in files.items()}
    contents[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode()
    contents[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: selfmigrate-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = [f"{path},{record_hash(data)},{len(data)}" for path, data in contents.items()]
    record.append(f"{dist_info}/RECORD,,")
    contents[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in contents.items():
            zf.writestr(path, data)
    return wheel


MIGRATE = textwrap.dedent(
    """
    import json, sys
    import selfmigrate

    database, package = sys.argv[1:3]
    registry = selfmigrate.MigrationRegistry(package)
    report = selfmigrate.migrate(database, registry)
    again = selfmigrate.migrate(database, package)
    print(json.dumps({
        "applied": [r.id for r in report.applied],
        "again": [r.id for r in again.applied],
        "locations": [m.location for m in registry.migrations],
    }))
    """
)


def run_python(code: str, *args: str, path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(path)}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120
    )


def assert_migrated(database: Path) -> None:
    conn = sqlite3.connect(database)
    try:
        assert conn.execute("SELECT name FROM thing").fetchall() == [("from helper",)]
        assert conn.execute("SELECT version FROM schema_migrations").fetchall() == [(1,), (2,)]
    finally:
        conn.close()


def test_migrations_from_an_installed_wheel(tmp_path: Path) -> None:
    wheel = write_wheel(tmp_path, "wheeldemo_app", package_files("wheeldemo_app"))
    target = tmp_path / "site"
    pip_install(wheel, target)
    assert (target / "wheeldemo_app" / "migrations" / "0001_create_thing.sql").is_file()
    database = tmp_path / "app.sqlite"
    result = run_python(MIGRATE, str(database), "wheeldemo_app.migrations", path=target)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["applied"] == ["0001_create_thing", "0002_seed_thing"] and out["again"] == []
    assert all(location.startswith(str(target)) for location in out["locations"])
    assert_migrated(database)


def test_migrations_from_a_zip_on_sys_path(tmp_path: Path) -> None:
    archive = tmp_path / "zipdemo.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path, text in package_files("zipdemo_app").items():
            zf.writestr(path, text)
    database = tmp_path / "app.sqlite"
    result = run_python(MIGRATE, str(database), "zipdemo_app.migrations", path=archive)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["applied"] == ["0001_create_thing", "0002_seed_thing"] and out["again"] == []
    assert all(location.startswith(str(archive)) for location in out["locations"])
    assert_migrated(database)


def test_failing_migration_inside_a_zip_names_the_file_and_line(tmp_path: Path) -> None:
    files = package_files("zipfail_app")
    files["zipfail_app/migrations/0003_fails.py"] = "def up(conn):\n    conn.execute('DELETE FROM thing')\n    1 / 0\n"
    archive = tmp_path / "zipfail.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    code = textwrap.dedent(
        """
        import json, sys
        import selfmigrate
        try:
            selfmigrate.migrate(sys.argv[1], "zipfail_app.migrations")
        except selfmigrate.MigrationError as e:
            print(json.dumps({"path": e.path, "line": e.line, "message": str(e),
                              "applied": [r.version for r in e.report.applied]}))
        """
    )
    database = tmp_path / "app.sqlite"
    result = run_python(code, str(database), path=archive)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    expected = os.path.join(str(archive), "zipfail_app", "migrations", "0003_fails.py")
    assert out["path"] == expected and out["line"] == 3
    assert f"{expected}, line 3" in out["message"] and "ZeroDivisionError" in out["message"]
    assert out["applied"] == [1, 2]
    assert_migrated(database)  # 0003's DELETE was rolled back


@pytest.fixture(scope="module")
def own_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(folder), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = folder.glob("selfmigrate-*.whl")
    return wheel


def test_own_wheel_contains_templates_and_py_typed(own_wheel: Path) -> None:
    names = set(zipfile.ZipFile(own_wheel).namelist())
    assert {
        "selfmigrate/templates/migration.py.template",
        "selfmigrate/templates/migration.sql.template",
        "selfmigrate/py.typed",
        "selfmigrate/__init__.py",
        "selfmigrate/__main__.py",
    } <= names
    assert not [n for n in names if n.startswith(("tests/", "docs/", "examples/"))]


def test_own_wheel_installed_alone_creates_from_its_templates(own_wheel: Path, tmp_path: Path) -> None:
    """The installed wheel (not this checkout) finds its templates as package data."""
    target = tmp_path / "site"
    pip_install(own_wheel, target)
    code = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        import selfmigrate
        assert selfmigrate.__file__.startswith(sys.argv[1]), selfmigrate.__file__
        print(selfmigrate.create(sys.argv[2], "add notes", sql=True))
        """
    )
    # -S: no site-packages, so the editable install of this checkout cannot answer.
    result = subprocess.run(
        [sys.executable, "-S", "-c", code, str(target), str(tmp_path / "migrations")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    created = Path(result.stdout.strip())
    assert created == tmp_path / "migrations" / "0001_add_notes.sql"
    assert created.read_text().startswith("-- add notes")
