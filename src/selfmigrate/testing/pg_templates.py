"""The pytest plugin on PostgreSQL: template databases on a server, one per session, and the test databases.

Holds :class:`PostgresTemplates`: each set of migrations migrated once per test run
into a template database (``sm_tmpl_<run>_<key>``, built under an advisory lock so
that xdist workers build it once), cloned once per worker (``CREATE DATABASE …
TEMPLATE``) into the database whose rolled-back transactions ``migrated_db`` hands
out, and cloned per test for ``migrated_db_path`` (a URL, which code that commits
may open). Why this split: docs/testing.rst, "PostgreSQL". Imported by the fixtures
only when a server is configured.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import re
import time
import typing as t
import uuid
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row

from ..backends.postgres.backend import PostgresBackend
from ..backends.postgres.url import is_postgres_url, libpq_url, mask
from ..config import Options
from ..core.runner import Runner
from ..errors import ConfigError, SelfMigrateError

if t.TYPE_CHECKING:
    from ..core.registry import MigrationRegistry

logger = logging.getLogger(__name__)

#: The environment variable that points the plugin at a PostgreSQL server (wins over the ini option).
ENV = "SELFMIGRATE_TEST_DATABASE"
#: The names this module gives databases: ``sm_tmpl_`` / ``sm_test_``, the run, a suffix.
#: Only names of this form are ever dropped (``tests/postgres``'s own ``sm_test_<12 hex>`` are not).
OWN_NAME = re.compile(r"^sm_(?:tmpl|test)_(?P<run>[0-9a-f]{12})_[a-z0-9_]+$")
#: How long a worker waits for another to finish building a template.
BUILD_WAIT = 600.0

PgConnection = psycopg.Connection[t.Any]


def server_url(value: str) -> str:
    """``value`` (a ``postgresql://`` URL in any spelling selfmigrate takes) as libpq reads it.

    :raises ConfigError: not a PostgreSQL URL.
    """
    if not is_postgres_url(value):
        raise ConfigError(
            f"selfmigrate_database / {ENV} must be a PostgreSQL server URL such as"
            f" postgresql://postgres@127.0.0.1:5432/postgres (the test databases are created on that"
            f" server), not {mask(value)!r}; leave it unset for SQLite test databases."
        )
    return libpq_url(value)


def lock_key(text: str) -> int:
    """A signed 64-bit advisory lock key for ``text``."""
    return int.from_bytes(hashlib.sha256(f"selfmigrate pytest {text}".encode()).digest()[:8], "big", signed=True)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgresTemplates:
    """Template and test databases on one PostgreSQL server, for one pytest process.

    :param server: URL of a database of the server to connect to for ``CREATE
        DATABASE`` (the maintenance database ``postgres`` will do); its user must
        have ``CREATEDB``.
    :param run: the test run's id (shared by its xdist workers); by default a new one.
    :param worker: this process's name in the run (``gw0``…); by default ``main``.
    """

    def __init__(self, server: str, *, run: str | None = None, worker: str | None = None) -> None:
        self.server = server_url(server)
        # Not from PYTEST_XDIST_* variables: a pytest started inside an xdist worker inherits them.
        self.run = hashlib.sha256((run or uuid.uuid4().hex).encode()).hexdigest()[:12]
        self.worker = re.sub(r"[^a-z0-9]", "", (worker or "main").lower()) or "main"
        self._admin: PgConnection | None = None
        self._templates: dict[str, str | SelfMigrateError] = {}
        #: Per template: this worker's database and its reused connection (see :meth:`connect`).
        self._worker_dbs: dict[str, tuple[str, PgConnection | None]] = {}
        self._numbers = itertools.count()
        #: How many templates this process migrated, cloned (``CREATE DATABASE … TEMPLATE``), re-cloned.
        self.built = 0
        self.cloned = 0
        self.dirty = 0

    def __repr__(self) -> str:
        return f"PostgresTemplates({mask(self.server)!r})"

    # -- the server ---------------------------------------------------------------

    def url(self, dbname: str) -> str:
        """The URL of database ``dbname`` on the server: the server URL with another database."""
        parts = urlsplit(self.server)
        return urlunsplit(parts._replace(path="/" + quote(dbname)))

    def admin(self) -> PgConnection:
        """The process's connection to the server, opened (and stale databases dropped) on first use.

        It holds a shared advisory lock on the run for the whole session: the
        sign, for other sessions' clean-up, that the run's databases are in use.
        """
        if self._admin is None or self._admin.closed:
            try:
                conn = psycopg.connect(self.server, autocommit=True, application_name="selfmigrate pytest")
            except psycopg.Error as e:
                raise ConfigError(
                    f"selfmigrate cannot reach the PostgreSQL server for the test databases at"
                    f" {mask(self.server)} ({str(e).strip()}). Start it, or fix selfmigrate_database /"
                    f" {ENV}; unset both to test on SQLite."
                ) from e
            conn.execute("SELECT pg_advisory_lock_shared(%s)", (lock_key(f"run {self.run}"),))
            self._admin = conn
            self.drop_stale()
        return self._admin

    def drop_stale(self) -> list[str]:
        """Drop the databases of this plugin's runs that no live session holds; return their names.

        A run's processes each hold a shared advisory lock on it from before its
        first database is made to after its last is dropped; so when the exclusive
        lock is free, no process of that run is alive (a crashed one's lock went
        with its connection) and its databases are left-overs.
        """
        conn = self.admin()
        names = [
            str(row[0])
            for row in conn.execute("SELECT datname FROM pg_database WHERE datname ~ '^sm_(tmpl|test)_[0-9a-f]{12}_'")
        ]
        runs: dict[str, list[str]] = {}
        for name in names:
            match = OWN_NAME.match(name)
            if match is not None and match["run"] != self.run:
                runs.setdefault(match["run"], []).append(name)
        dropped: list[str] = []
        for run, databases in runs.items():
            key = lock_key(f"run {run}")
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if row is None or not row[0]:
                continue  # a live session of that run
            try:
                for name in databases:
                    conn.execute(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")
                    dropped.append(name)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        if dropped:
            logger.info("Dropped %d test database(s) left by earlier test runs: %s", len(dropped), ", ".join(dropped))
        return dropped

    def _exists(self, name: str) -> bool:
        return self.admin().execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None

    def _clone(self, template: str, name: str) -> str:
        admin = self.admin()
        for attempt in itertools.count():
            try:
                admin.execute(f"CREATE DATABASE {_quote(name)} TEMPLATE {_quote(template)}")
                break
            except psycopg.errors.ObjectInUse:
                # Another worker's connection to the template (its build) is still closing.
                if attempt >= 50:
                    raise
                time.sleep(0.1)
        self.cloned += 1
        return name

    def drop(self, name: str) -> None:
        """Drop database ``name`` (connections to it are ended first)."""
        self.admin().execute(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")

    # -- templates ----------------------------------------------------------------

    def template(self, registry: MigrationRegistry, key: str, *, target: int | None, table: str) -> str:
        """The name of the run's template database of ``registry`` up to ``target``, built if missing.

        :param key: the template's key (:func:`~selfmigrate.testing.templates.template_key`).
        :raises SelfMigrateError: discovery or a migration failed (raised again
            for later requests, without migrating again).
        """
        key = key[:16]
        name = f"sm_tmpl_{self.run}_{key}"
        found = self._templates.get(name)
        if found is None:
            try:
                found = self._build(registry, name, target, table)
            except SelfMigrateError as e:
                self._templates[name] = e
                raise
            self._templates[name] = found
        if isinstance(found, SelfMigrateError):
            raise found.with_traceback(None)
        return found

    def _build(self, registry: MigrationRegistry, name: str, target: int | None, table: str) -> str:
        admin = self.admin()
        key = lock_key(f"build {name}")
        deadline = time.monotonic() + BUILD_WAIT
        while not admin.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:  # type: ignore[index]
            if time.monotonic() > deadline:
                raise ConfigError(f"selfmigrate waited {BUILD_WAIT:.0f} s for another worker to build {name}.")
            time.sleep(0.02)
        try:
            if self._exists(name):  # another worker of this run built it
                return name
            partial = f"{name}_partial"
            self.drop(partial)  # left by a worker of this run that failed
            admin.execute(f"CREATE DATABASE {_quote(partial)}")
            try:
                options = Options(table=table, backup=False)
                backend = PostgresBackend(self.url(partial), lock_timeout=options.lock_timeout)
                Runner.from_options(self.url(partial), registry, options, backend=backend).apply(target=target)
                del backend
                # The runner's connection may still be closing: RENAME needs none.
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (partial,),
                )
                admin.execute(f"ALTER DATABASE {_quote(partial)} RENAME TO {_quote(name)}")
            except BaseException:
                self.drop(partial)
                raise
            self.built += 1
            return name
        finally:
            admin.execute("SELECT pg_advisory_unlock(%s)", (key,))

    # -- what the fixtures hand out ------------------------------------------------

    def new_database(self, template: str, label: str = "db") -> str:
        """A new database cloned from ``template``, private to the caller; returns its URL."""
        name = f"sm_test_{self.run}_{self.worker}_{next(self._numbers):06d}"
        self._clone(template, name)
        return self.url(name)

    def drop_url(self, url: str) -> None:
        """Drop the database of a URL :meth:`new_database` returned."""
        self.drop(str(conninfo_to_dict(url)["dbname"]))

    @contextlib.contextmanager
    def rolled_back(self, template: str) -> t.Iterator[PgConnection]:
        """A connection to this worker's copy of ``template`` inside a transaction, rolled back afterwards.

        The connection is reused by the worker's next test (a new connection
        costs more than the whole rest); session settings made in the test are
        undone with its transaction, and the row factory is reset. If the test
        ended the transaction itself (``COMMIT`` in SQL: ``conn.commit()`` is
        refused inside it by psycopg), the copy is dropped and the next test gets
        a new one.
        """
        name, conn = self._worker_dbs.get(template, ("", None))
        if not name:
            name = f"sm_test_{self.run}_{self.worker}_{template.rpartition('_')[2]}"
            self._clone(template, name)
        if conn is None or conn.closed:
            conn = psycopg.connect(self.url(name), application_name="selfmigrate pytest")
        self._worker_dbs[template] = (name, conn)
        with conn.transaction(force_rollback=True):
            row = conn.execute("SELECT pg_current_xact_id()::text").fetchone()
            xid = None if row is None else str(row[0])
            try:
                yield conn
            finally:
                # A ROLLBACK after the test's own COMMIT rolls back what came after, or warns.
                committed = not self._same_transaction(conn, xid)
        if not conn.closed:
            if xid is not None and not committed:
                committed = self._committed(conn, xid)
            conn.row_factory = tuple_row
        if committed:
            self.dirty += 1
            logger.warning("A test committed in migrated_db's database %s; it is replaced for the next test.", name)
            with contextlib.suppress(psycopg.Error):
                conn.close()
            self.drop(name)
            self._worker_dbs[template] = ("", None)

    @staticmethod
    def _same_transaction(conn: PgConnection, xid: str | None) -> bool:
        if conn.closed or xid is None:
            return True  # closed: the server rolled the open transaction back
        status = conn.info.transaction_status
        if status == TransactionStatus.INERROR:
            return True  # checked after the rollback (_committed)
        if status != TransactionStatus.INTRANS:
            return False
        row = conn.execute("SELECT pg_current_xact_id()::text").fetchone()
        return row is not None and str(row[0]) == xid

    @staticmethod
    def _committed(conn: PgConnection, xid: str) -> bool:
        row = conn.execute("SELECT pg_xact_status(%s::xid8)", (xid,)).fetchone()
        conn.rollback()
        return row is not None and row[0] != "aborted"

    # -- the end of the session ----------------------------------------------------

    def close(self) -> None:
        """Drop this process's databases, and the run's templates if no other process of the run is left."""
        if self._admin is None or self._admin.closed:
            return
        admin = self._admin
        try:
            for _name, conn in self._worker_dbs.values():
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        conn.close()
            names = [
                str(row[0])
                for row in admin.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s",
                    (f"sm\\_test\\_{self.run}\\_{self.worker}\\_%",),
                )
            ]
            for name in names:
                self.drop(name)
            key = lock_key(f"run {self.run}")
            admin.execute("SELECT pg_advisory_unlock_shared(%s)", (key,))
            last = admin.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if last is not None and last[0]:
                for row in admin.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"sm_%\\_{self.run}\\_%",)
                ).fetchall():
                    self.drop(str(row[0]))
        finally:
            admin.close()
            self._admin = None
