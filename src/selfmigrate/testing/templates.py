"""What the pytest plugin's fixtures are made of: the per-session template cache, the factory.

Holds :class:`TemplateCache` (each set of migrations migrated once per session into a
template, copied for every test; why and how: docs/design.rst, "pytest plugin") and the
ini-option readers. May use SQLite directly; must not be imported before a fixture is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import sqlite3
import typing as t
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..backends.sqlite.backend import SQLiteBackend
from ..config import DEFAULT_TABLE, Options
from ..core.locations import from_base, watched_files
from ..core.registry import MigrationRegistry
from ..core.runner import Runner
from ..errors import SelfMigrateError

if t.TYPE_CHECKING:
    from ..core.locations import Location, LocationSpec
    from ..core.migration import Migration
    from ..faces.project_settings import ProjectSettings
    from .pg_templates import PgConnection, PostgresTemplates

#: Where the session's project settings are kept (read once).
_PROJECT_KEY = pytest.StashKey["ProjectSettings"]()

#: The ini option naming the migrations (packages or directories, one a line).
MIGRATIONS_OPTION = "selfmigrate_migrations"
#: The ini option naming the tracker table.
TABLE_OPTION = "selfmigrate_table"
#: The ini option naming a database for the "applied migrations unchanged" check.
CHECK_DATABASE_OPTION = "selfmigrate_check_database"
#: The ini option naming a PostgreSQL server for the test databases (empty: SQLite files).
DATABASE_OPTION = "selfmigrate_database"
#: The environment variable that does the same, and wins over the ini option.
DATABASE_ENV = "SELFMIGRATE_TEST_DATABASE"
#: The marker that stops the test's database at a version.
MARKER = "migrate_to"

Locations = t.Sequence["LocationSpec"]

# Files SQLite may keep beside a database.
_SIDE_FILES = ("", "-journal", "-wal", "-shm")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def template_key(migrations: t.Sequence[Migration], target: int | None, table: str) -> str:
    """The name of the template for ``migrations`` migrated up to ``target`` with ``table``.

    Migrations above ``target`` do not go into the template and do not change
    its key.
    """
    content = [(m.version, m.name, m.kind, m.checksum) for m in migrations if target is None or m.version <= target]
    data = json.dumps([table, target, content], separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:32]


class _Snapshot:
    """What ``stat`` says of a set of locations' folders and migration files.

    A folder's modification time changes when a file is added to it, removed or
    renamed into it (as many editors save); a file's change time and size when it
    is written in place. Checking the folders costs one ``stat`` each; checking
    the files one per file (about 0.25 ms for 100 files on the development
    machine), which is why :class:`TemplateCache` checks the files once per test
    module only. Files that are not on disk (in a zip file) cannot change during
    a session and are not watched.
    """

    def __init__(self, locations: t.Sequence[Location]) -> None:
        folders, files = watched_files(locations)
        self.folders = tuple(folders)
        self.files = tuple(files)
        self.folder_state = self._folder_state()
        self.file_state = self._file_state()

    def _folder_state(self) -> tuple[int, ...] | None:
        try:
            return tuple(os.stat(folder).st_mtime_ns for folder in self.folders)
        except OSError:  # went away: changed
            return None

    def _file_state(self) -> tuple[tuple[int, int], ...] | None:
        try:
            return tuple((st.st_ctime_ns, st.st_size) for st in map(os.stat, self.files))
        except OSError:
            return None

    def folders_unchanged(self) -> bool:
        """Whether no file was added to, removed from or renamed into the folders."""
        return self.folder_state is not None and self._folder_state() == self.folder_state

    def files_unchanged(self) -> bool:
        """Whether no migration file was written since the snapshot."""
        return self.file_state is not None and self._file_state() == self.file_state


@dataclass
class _Source:
    registry: MigrationRegistry
    snapshot: _Snapshot
    #: Template keys by (target, table), computed once per discovery.
    keys: dict[tuple[int | None, str], str]
    #: The test module for which the files were last checked.
    checked_for: object = None


def remove_database(path: Path) -> None:
    """Delete a database file and the journal files SQLite may have left beside it."""
    for suffix in _SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{path}{suffix}")


class ScratchBackend(SQLiteBackend):
    """The SQLite backend for building templates: no waiting for the disk.

    A template is a scratch file (lost with a crash, made again by the next
    session), so its migrations' commits need not be durable:
    ``synchronous = OFF`` and an in-memory rollback journal. Neither is stored in
    the file, so the copies are databases like any other. At 100 migrations this
    took building a template from about 120 ms to about 40 ms on the
    development machine's disk.
    """

    def connect(self, *, create: bool = True) -> sqlite3.Connection:
        """Open the database as :class:`SQLiteBackend` does, without syncing to disk."""
        conn = super().connect(create=create)
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA journal_mode = MEMORY")
        return conn


class TemplateCache:
    """Migrated template databases for one test session, and private copies of them.

    :param template_dir: where templates are kept (shared by xdist workers).
    :param copy_dir: where the copies handed to tests are made.
    """

    def __init__(self, template_dir: Path, copy_dir: Path) -> None:
        self.template_dir = template_dir
        self.copy_dir = copy_dir
        self._sources: dict[tuple[str, tuple[str, ...]], _Source] = {}
        self._templates: dict[str, Path | SelfMigrateError] = {}
        self._images: dict[Path, bytes] = {}
        self._numbers = itertools.count()
        #: How many templates this process migrated (the rest were reused).
        self.built = 0
        #: The PostgreSQL server's templates when one is configured (``selfmigrate_database``).
        self.postgres: PostgresTemplates | None = None

    def __repr__(self) -> str:
        return f"TemplateCache({str(self.template_dir)!r})"

    def _source(self, locations: Locations, module: object) -> _Source:
        specs = tuple(os.fspath(spec) for spec in locations)
        key = (os.getcwd(), specs)
        source = self._sources.get(key)
        if source is not None and source.snapshot.folders_unchanged():
            if module is not None and module == source.checked_for:
                return source
            if source.snapshot.files_unchanged():
                source.checked_for = module
                return source
        registry = MigrationRegistry(list(specs))
        # Look before reading: a file edited in between changes the snapshot
        # again, so the next test discovers once more rather than too little.
        snapshot = _Snapshot(registry.locations)
        registry.migrations  # noqa: B018 - discover now, errors included
        source = self._sources[key] = _Source(registry, snapshot, {}, module)
        return source

    def keyed(
        self, locations: Locations, *, target: int | None, table: str, module: object = None
    ) -> tuple[MigrationRegistry, str]:
        """The migrations at ``locations`` (as :meth:`registry`) and the key of their template."""
        source = self._source(locations, module)
        key = source.keys.get((target, table))
        if key is None:
            key = source.keys[target, table] = template_key(source.registry.migrations, target, table)
        return source.registry, key

    def registry(self, locations: Locations, *, module: object = None) -> MigrationRegistry:
        """The migrations at ``locations``, discovered again only if their files changed.

        The folders are checked at every call. The files are checked at every
        call too, unless ``module`` (the test module asking) is given and they
        were already checked for it: a file edited in place is then seen from the
        next test module on; a file added, removed or renamed from the next call.
        """
        return self._source(locations, module).registry

    def template(
        self,
        locations: Locations,
        *,
        target: int | None = None,
        table: str = DEFAULT_TABLE,
        module: object = None,
    ) -> Path:
        """Return a template database of ``locations`` migrated up to ``target``.

        ``module`` is as for :meth:`registry`.

        :raises SelfMigrateError: discovery or a migration failed (the same error
            is raised again for later requests of the same template, without
            migrating again).
        """
        source = self._source(locations, module)
        key = source.keys.get((target, table))
        if key is None:
            key = source.keys[target, table] = template_key(source.registry.migrations, target, table)
        found = self._templates.get(key)
        if found is None:
            try:
                found = self._build(source.registry, key, target, table)
            except SelfMigrateError as e:
                self._templates[key] = e
                raise
            self._templates[key] = found
        if isinstance(found, SelfMigrateError):
            raise found.with_traceback(None)
        return found

    def _build(self, registry: MigrationRegistry, key: str, target: int | None, table: str) -> Path:
        final = self.template_dir / f"{key}.sqlite"
        if final.exists():  # another xdist worker of this run made it
            return final
        partial = self.template_dir / f"{key}.{os.getpid()}.{uuid.uuid4().hex}.partial"
        try:
            options = Options(table=table, backup=False)
            backend = ScratchBackend(partial, lock_timeout=options.lock_timeout)
            Runner.from_options(partial, registry, options, backend=backend).apply(target=target)
            os.replace(partial, final)
        finally:
            remove_database(partial)
        self.built += 1
        return final

    def image(self, template: Path) -> bytes:
        """The bytes of ``template``, read once per session."""
        data = self._images.get(template)
        if data is None:
            data = self._images[template] = template.read_bytes()
        return data

    def copy(self, template: Path, label: str = "db") -> Path:
        """Write a copy of ``template`` to a new file of :attr:`copy_dir` and return its path.

        The template's bytes are kept in memory and written out: measured faster
        than copying the file each time (``shutil.copyfile``) and much faster than
        the sqlite3 backup API (see ``benchmarks/pytest_plugin.py``).
        """
        number = next(self._numbers)
        path = self.copy_dir / f"{number:06d}-{_UNSAFE.sub('_', label)[:60]}.sqlite"
        with open(path, "xb") as f:
            f.write(self.image(template))
        return path

    def close(self) -> None:
        """End the session: drop the server's test and template databases of this process."""
        if self.postgres is not None:
            self.postgres.close()

    def connect_in_memory(self, template: Path) -> sqlite3.Connection:
        """Open a new in-memory database holding a copy of ``template``.

        :meth:`sqlite3.Connection.deserialize` copies the bytes into memory that
        SQLite owns, so the database is private to the connection and can grow.
        """
        conn = sqlite3.connect(":memory:")
        try:
            conn.deserialize(self.image(template))
        except BaseException:
            conn.close()
            raise
        return conn


class MigratedDatabaseFactory:
    """Makes migrated databases for one test; what :func:`migrated_db_factory` returns.

    Call it for each database the test needs; every call returns a new file,
    removed when the test ends.
    """

    def __init__(
        self, cache: TemplateCache, migrations: Locations, table: str, label: str, module: object = None
    ) -> None:
        self._cache = cache
        self._module = module
        self._migrations = migrations
        self._table = table
        self._label = label
        self._made: list[Path] = []
        self._made_urls: list[str] = []

    def __call__(
        self,
        migrations: LocationSpec | Locations | None = None,
        *,
        to: int | None = None,
        table: str | None = None,
    ) -> t.Any:
        """Return the path of a new database migrated from ``migrations`` up to ``to``.

        On PostgreSQL (``selfmigrate_database``), the URL (a :class:`str`) of a
        new database on the server instead.

        :param migrations: package name(s) or directory path(s); by default the
            ``selfmigrate_migrations`` fixture's.
        :param to: the version to stop at; by default every migration is applied.
        :param table: the tracker table; by default the ``selfmigrate_table``
            fixture's.
        """
        postgres = self._cache.postgres
        if postgres is not None:
            template = self._server_template(postgres, migrations, to, table)
            url = postgres.new_database(template, self._label)
            self._made_urls.append(url)
            return url
        path = self._cache.copy(self._template(migrations, to, table), self._label)
        self._made.append(path)
        return path

    @contextlib.contextmanager
    def rolled_back(self, *, to: int | None = None) -> t.Iterator[PgConnection]:
        """On PostgreSQL: a connection to the worker's migrated database in a transaction rolled back after.

        What ``migrated_db`` gives a test that does not also ask for
        ``migrated_db_path`` when a server is configured.
        """
        postgres = self._cache.postgres
        assert postgres is not None
        with postgres.rolled_back(self._server_template(postgres, None, to, None)) as conn:
            yield conn

    def _server_template(
        self,
        postgres: PostgresTemplates,
        migrations: LocationSpec | Locations | None,
        to: int | None,
        table: str | None,
    ) -> str:
        locations, table = self._arguments(migrations, to, table)
        try:
            registry, key = self._cache.keyed(locations, target=to, table=table, module=self._module)
            return postgres.template(registry, key, target=to, table=table)
        except SelfMigrateError as e:
            error = e
        self._fail(locations, to, error)

    def connect_in_memory(self, *, to: int | None = None) -> sqlite3.Connection:
        """Return a connection to a new in-memory copy of the migrated database.

        The default migrations and table, up to ``to``: what ``migrated_db``
        gives a test that does not also ask for ``migrated_db_path``.
        """
        return self._cache.connect_in_memory(self._template(None, to, None))

    def _arguments(
        self, migrations: LocationSpec | Locations | None, to: int | None, table: str | None
    ) -> tuple[Locations, str]:
        if migrations is None:
            locations: Locations = self._migrations
        elif isinstance(migrations, (str, os.PathLike)):
            locations = [migrations]
        else:
            locations = migrations
        if to is not None and (isinstance(to, bool) or not isinstance(to, int)):
            pytest.fail(f"migrated_db_factory(to=...) takes a version number, not {to!r}.", pytrace=False)
        return locations, self._table if table is None else table

    def _template(self, migrations: LocationSpec | Locations | None, to: int | None, table: str | None) -> Path:
        locations, table = self._arguments(migrations, to, table)
        try:
            return self._cache.template(locations, target=to, table=table, module=self._module)
        except SelfMigrateError as e:
            error = e
        self._fail(locations, to, error)

    def _fail(self, locations: Locations, to: int | None, error: SelfMigrateError) -> t.NoReturn:
        # Failed outside the except block: the message is shown once, not again as
        # the exception it was raised "during the handling of".
        where = ", ".join(os.fspath(spec) for spec in locations)
        up_to = "" if to is None else f" up to version {to}"
        # A package that cannot be imported: say why (the import path), not "give a package name".
        reason = import_path_hint(locations) or str(error)
        pytest.fail(f"selfmigrate could not migrate a test database from {where}{up_to}:\n{reason}", pytrace=False)

    def cleanup(self) -> None:
        """Delete every database this factory made."""
        for path in self._made:
            remove_database(path)
        self._made.clear()
        if self._cache.postgres is not None:
            for url in self._made_urls:
                self._cache.postgres.drop_url(url)
        self._made_urls.clear()


def import_path_hint(locations: Locations) -> str:
    """What to do when a package named as migrations cannot be imported (empty if all can)."""
    from ..core.locations import is_package, looks_like_path

    names = [
        spec
        for spec in locations
        if isinstance(spec, str) and not looks_like_path(spec) and not os.path.isdir(spec) and not is_package(spec)
    ]
    if not names:
        return ""
    name = names[0]
    folder = name.replace(".", "/")
    return (
        f"The package {name} cannot be imported: its name is misspelt, or it is not on sys.path."
        " Plain 'pytest' does not put the project folder on sys.path ('python -m pytest' does)."
        ' Add pythonpath = ["."] to [tool.pytest.ini_options], install the project (pip install -e .),'
        f' or name the folder (selfmigrate_migrations = ["{folder}"]). See "When pytest cannot import the migrations'
        ' package" in the testing docs (docs/testing.rst, testing-import-path).'
    )


def project_settings(config: pytest.Config) -> ProjectSettings:
    """The project's settings (pyproject.toml's ``[tool.selfmigrate]``, ``SELFMIGRATE_*``), read once a session.

    Searched from the directory pytest was started in, as the command line
    searches from the working directory.
    """
    found: ProjectSettings | None = config.stash.get(_PROJECT_KEY, None)
    if found is None:
        from ..faces.project_settings import load

        try:
            found = load(config.invocation_params.dir)
        except SelfMigrateError as e:
            pytest.fail(f"selfmigrate: {e}", pytrace=False)
        config.stash[_PROJECT_KEY] = found
    return found


def _ini_base(config: pytest.Config) -> Path:
    return config.inipath.parent if config.inipath is not None else config.rootpath


def ini_migrations(config: pytest.Config) -> list[str]:
    """The ``selfmigrate_migrations`` ini option, paths taken from the ini file's folder.

    Fails the test asking for it with what to set when it is missing.
    """
    values = [v.strip() for v in config.getini(MIGRATIONS_OPTION) if v.strip()]
    if not values:
        where = config.inipath or "pytest.ini, pyproject.toml or tox.ini"
        pytest.fail(
            "selfmigrate does not know where the migrations are. Set the ini option"
            f" selfmigrate_migrations in {where} (a package such as myapp.migrations, or a"
            " directory), or migrations in the [tool.selfmigrate] table of pyproject.toml (which"
            " the command line reads too), or define a selfmigrate_migrations fixture in"
            " conftest.py that returns it.",
            pytrace=False,
        )
    base = _ini_base(config)
    # A bare name of a folder beside the ini file that has no __init__.py
    # ("migrations") is that folder, not a namespace package.
    return [os.fspath(from_base(v, base, bare_folders=True)) for v in values]


def ini_table(config: pytest.Config) -> str:
    """The ``selfmigrate_table`` ini option, or the default tracker table."""
    value = t.cast(str, config.getini(TABLE_OPTION)).strip()
    return value or DEFAULT_TABLE


def ini_check_database(config: pytest.Config) -> Path | None:
    """The ``selfmigrate_check_database`` ini option as a path, or ``None``."""
    value = t.cast(str, config.getini(CHECK_DATABASE_OPTION)).strip()
    if not value:
        return None
    return _ini_base(config) / value


def ini_database(config: pytest.Config) -> str | None:
    """The PostgreSQL server for the test databases: ``SELFMIGRATE_TEST_DATABASE``, else the ini option.

    ``None`` (neither set, or set empty): SQLite files, as without it.
    """
    value = os.environ.get(DATABASE_ENV, "").strip() or t.cast(str, config.getini(DATABASE_OPTION)).strip()
    return value or None


def session_cache(
    tmp_path_factory: pytest.TempPathFactory, config: pytest.Config, database: str | None = None
) -> TemplateCache:
    """A template cache for this session; the xdist workers of one run share its templates.

    :param database: a PostgreSQL server URL: the templates and test databases
        are made there (see :mod:`.pg_templates`).
    """
    base = tmp_path_factory.getbasetemp()
    # An xdist worker's base is <run's base>/popen-gwN; its parent is the run's.
    shared = base.parent if hasattr(config, "workerinput") else base
    template_dir = shared / "selfmigrate-templates"
    template_dir.mkdir(exist_ok=True)
    copy_dir = tmp_path_factory.mktemp("selfmigrate-databases", numbered=False)
    cache = TemplateCache(template_dir, copy_dir)
    if database:
        try:
            from .pg_templates import PostgresTemplates
        except ImportError as e:
            pytest.fail(
                f"selfmigrate_database is a PostgreSQL URL but psycopg is not installed ({e}):"
                " pip install 'selfmigrate[postgres]'.",
                pytrace=False,
            )
        try:
            # pytest-xdist's workerinput: the run's id, shared by its workers, and the worker's.
            worker: dict[str, t.Any] = getattr(config, "workerinput", {})
            cache.postgres = PostgresTemplates(database, run=worker.get("testrunuid"), worker=worker.get("workerid"))
        except SelfMigrateError as e:
            pytest.fail(f"selfmigrate: {e}", pytrace=False)
    return cache


def as_locations(value: LocationSpec | Locations) -> Locations:
    """One location or several, as a sequence."""
    return [value] if isinstance(value, (str, os.PathLike)) else value


def marked_version(request: pytest.FixtureRequest) -> int | None:
    """The version of the test's ``migrate_to`` marker, or ``None``."""
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return None
    args = marker.args
    if len(args) != 1 or marker.kwargs or isinstance(args[0], bool) or not isinstance(args[0], int):
        pytest.fail(
            f"{request.node.nodeid}: @pytest.mark.migrate_to takes one version number, for"
            f" example @pytest.mark.migrate_to(5); got migrate_to{_call(args, marker.kwargs)}.",
            pytrace=False,
        )
    return args[0]


def _call(args: tuple[object, ...], kwargs: t.Mapping[str, object]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"({', '.join(parts)})"
