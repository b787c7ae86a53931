"""Many hosts (issue 12): the image as 4 containers at once, each ``gunicorn -w 4``, on one PostgreSQL database.

The setting PostgreSQL is for: several hosts behind a load balancer, each
running the app's container with several gunicorn workers, all started at once
after an update, all on one server database. Every worker calls the app
factory, which migrates the database before serving, so 16 processes in 4
containers race for the same migrations. The story:

1. image v1 (the test app, migrations 1-3: a table, a Python migration that
   writes a row, a ``CREATE INDEX CONCURRENTLY`` outside a transaction) started
   as 4 containers at once on a fresh database: each migration applied exactly
   once across all 16 workers (the tracker, each worker's own report, the
   containers' logs; each migration would fail or leave a second row if run
   twice), all 16 workers serve, each container's log shows 4 booted workers
   and no failure; a note written over HTTP;
2. image v2 (one more migration, which fails if run twice and keeps the lock a
   second) replaces the 4 containers, started at once again: it is applied
   exactly once (one ``Applied migration`` line across the 4 logs; the other
   15 workers found it done), all 16 workers serve version 4, each container's
   health check (``python -m selfmigrate status`` in the image) passes, and
   the note written under v1 is still there.

The image is the root Dockerfile, unchanged. The app is not the shipped example
(which uses sqlite3): it is ``tests/container_pg_app``, the same shape on
psycopg, put at ``examples/flask_app`` in a copy of the build context, so the
Dockerfile's install line, CMD and health check apply as they are. The database
URL reaches it through the environment (``FLASK_DATABASE``, and
``SELFMIGRATE_DATABASE`` for the health check). The containers use the host's
network (``--network=host``): they reach the server on 127.0.0.1:5432 and each
binds its own port on 127.0.0.1.

It reuses tests/test_container.py's podman runner and base image (made by
debootstrap once, then cached), and needs a PostgreSQL server
(``SELFMIGRATE_TEST_POSTGRES``, default ``postgresql://postgres@127.0.0.1:5432/postgres``);
it works in a database of its own, dropped afterwards. Without podman, the base
image's tools or the server it skips, saying what enables it; with ``CI`` set it
fails instead.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import time
import typing as t
import urllib.request
import uuid
from pathlib import Path

import pytest
from test_container import APP_IMAGE, BASE_IMAGE, Podman, free_port, run
from test_container import base_image as base_image  # noqa: F401 (the fixture, reached by name in required())
from test_container import podman as podman  # noqa: F401 (the fixture, reached by name in required())

ROOT = Path(__file__).resolve().parents[1]
APP_SOURCE = ROOT / "tests" / "container_pg_app"
# Not test_container's label: its clean-up prunes by label, and must not prune this test's images.
LABEL = f"selfmigrate-test=container-postgres-{uuid.uuid4().hex[:8]}"  # one per run, as in test_container
SERVER = os.environ.get("SELFMIGRATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
HOSTS = 4
#: gunicorn workers per container (WEB_CONCURRENCY, the Dockerfile's default, set explicitly).
WORKERS = 4
ENABLE = (
    "as root, apt-get install -y --no-install-recommends podman runc debootstrap (bash .ci/run does this);"
    " start PostgreSQL (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main"
    " start) or point SELFMIGRATE_TEST_POSTGRES at a server; then run pytest tests/test_container_postgres.py"
)
V1_MIGRATIONS = ("0001_create_note", "0002_seed_note", "0003_index_note_created_at")
# v2: run twice, the ALTER fails (the column exists) and stops the worker that ran it. The test
# keeps it waiting for a table lock for a while: above the 5 s default, so that it waits, not retries.
V2_MIGRATION = {
    "0004_add_note_author.sql": (
        "-- migrate:lock-timeout 60s\nALTER TABLE note ADD COLUMN author text NOT NULL DEFAULT 'nobody';\n"
    ),
}
# Each worker start logs exactly one of these first (the no-op start or the one that found work).
START = re.compile(r"is up to date at version \d+|migration\(s\) pending")
# Each worker start of v2 while 0004 is held back.
PENDING_4 = re.compile(r"at version 3; 1 migration\(s\) pending: 0004_add_note_author")
# For a database whose head is version 4, each worker start ends with exactly one of these.
V4_OUTCOME = re.compile(
    r"Applied migration 0004_add_note_author|up to date at version 4\b|migrated to version 4 by another process"
)


def required(request: pytest.FixtureRequest, name: str) -> t.Any:
    """The fixture ``name`` of tests/test_container.py; a skip there is a failure in CI."""
    try:
        return request.getfixturevalue(name)
    except pytest.skip.Exception as e:
        reason = str(e.msg)
    unavailable(reason)


def unavailable(reason: str) -> t.NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"The many-hosts container test cannot run in CI: {reason} .ci/run must provide it.", pytrace=False)
    pytest.skip(f"{reason} To run the many-hosts container test: {ENABLE}.")


@pytest.fixture(scope="module")
def engine(request: pytest.FixtureRequest) -> Podman:
    """podman, with the base image made (or found in the cache)."""
    found: Podman = required(request, "podman")
    required(request, "base_image")
    return found


@pytest.fixture(scope="module")
def server() -> str:
    """The URL of the server's maintenance database, checked to answer (before any image is built)."""
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg is not installed (pip install -e '.[test]').")
    try:
        psycopg.connect(SERVER, connect_timeout=5).close()
    except psycopg.Error as e:
        reason = f"No PostgreSQL server answers at {SERVER} ({' '.join(str(e).split())})."
    else:
        return SERVER
    unavailable(reason)


@pytest.fixture
def database(server: str) -> t.Iterator[str]:
    """The URL of a new, empty database on the server, dropped when the test ends."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    name = f"sm_hosts_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(server)
    user, host, port = params.get("user", "postgres"), params.get("host", "127.0.0.1"), params.get("port", 5432)
    try:
        yield f"postgresql://{user}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of the build's requirements (psycopg[binary] among them), built on the host: the build runs offline."""
    wheels = tmp_path_factory.mktemp("wheelhouse")
    run(
        sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels),
        str(ROOT), str(APP_SOURCE), "gunicorn>=22", "flit_core>=3.9,<4",
        timeout=600,
    )  # fmt: skip
    return wheels


class Images:
    """Builds versions of the test app's image with the root Dockerfile; removes them at the end."""

    def __init__(self, podman: Podman, wheels: Path, workdir: Path) -> None:
        self.podman, self.wheels, self.workdir = podman, wheels, workdir
        self.suffix = uuid.uuid4().hex[:8]
        self.built: list[str] = []

    def build(self, version: str, migrations: dict[str, str]) -> str:
        """The image with ``migrations`` added to the test app's; returns its tag."""
        context = self.workdir / version
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "tests")
        context.mkdir(parents=True)
        for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "LICENSE"):
            shutil.copy2(ROOT / name, context / name)
        shutil.copytree(ROOT / "src", context / "src", ignore=ignore)
        shutil.copytree(APP_SOURCE, context / "examples" / "flask_app", ignore=ignore)
        shutil.copytree(self.wheels, context / "wheelhouse")
        for name, text in migrations.items():
            (context / "examples" / "flask_app" / "flask_app" / "migrations" / name).write_text(text)
        tag = f"{APP_IMAGE}-postgres:{version}-{self.suffix}"
        self.podman(
            "build", "--pull=never", "--network=host", "--format=docker",
            f"--build-arg=PYTHON_IMAGE={BASE_IMAGE}",
            "--build-arg=PIP_NO_INDEX=1", "--build-arg=PIP_FIND_LINKS=/src/wheelhouse",
            f"--label={LABEL}", f"--tag={tag}", str(context),
            timeout=900,
        )  # fmt: skip
        self.built.append(tag)
        return tag


class Host:
    """One host's container: the app's image with the database URL and a port of its own."""

    def __init__(self, podman: Podman, name: str, port: int) -> None:
        self.podman, self.name, self.port = podman, name, port

    def create(self, image: str, database: str) -> None:
        self.podman(
            "create",
            f"--name={self.name}",
            f"--label={LABEL}",
            "--network=host",
            f"--env=FLASK_DATABASE={database}",
            f"--env=SELFMIGRATE_DATABASE={database}",
            f"--env=PORT={self.port}",
            f"--env=GUNICORN_CMD_ARGS=--bind=127.0.0.1:{self.port}",
            f"--env=WEB_CONCURRENCY={WORKERS}",
            image,
        )

    def remove(self) -> None:
        """Stop and remove the container and its anonymous volume (the Dockerfile's /app/data, unused here)."""
        self.podman("rm", "--force", "--volumes", "--time=10", self.name, check=False, timeout=60)

    def logs(self) -> str:
        return self.podman.logs(self.name)

    def wait_serving(self, timeout: float = 120) -> None:
        """Poll ``/health`` until it answers; fail if the container stops first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.get("/health")
                return
            except OSError:
                pass
            state = self.podman.state(self.name)
            if state != "running":
                raise AssertionError(f"container {self.name} is {state}, log:\n{self.logs()}")
            time.sleep(0.2)
        raise AssertionError(f"container {self.name} did not serve in {timeout} s, log:\n{self.logs()}")

    def workers(self, timeout: float = 120) -> dict[int, dict[str, t.Any]]:
        """What each of the container's gunicorn workers answers on ``/worker``, by pid.

        Requests held one second each, :data:`WORKERS` at a time: a sync worker
        serves one at a time, so each round reaches every worker that is up.
        Rounds go on until all of them answered.
        """
        seen: dict[int, dict[str, t.Any]] = {}
        deadline = time.monotonic() + timeout
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            while len(seen) < WORKERS:
                if time.monotonic() > deadline:
                    raise AssertionError(f"only workers {sorted(seen)} of {self.name} answered, log:\n{self.logs()}")
                for answer in pool.map(lambda _: self.get("/worker?hold=1"), range(WORKERS)):
                    seen[answer["pid"]] = answer
        return seen

    def get(self, path: str) -> t.Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as response:
            return json.load(response)

    def post(self, path: str, data: dict[str, t.Any]) -> t.Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=json.dumps(data).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 201
            return json.load(response)


class Fleet:
    """:data:`HOSTS` containers of one image on one database, replaced together as an auto-updater does."""

    def __init__(self, podman: Podman, database: str) -> None:
        self.podman, self.database = podman, database
        self.hosts: list[Host] = []

    def start(self, image: str) -> list[Host]:
        """Replace the running containers by :data:`HOSTS` new ones of ``image``, started at once."""
        self.stop()
        suffix = uuid.uuid4().hex[:8]
        self.hosts = [Host(self.podman, f"selfmigrate-hosts-{suffix}-{n}", free_port()) for n in range(HOSTS)]
        for host in self.hosts:
            host.create(image, self.database)
        starts = [
            subprocess.Popen(
                ["podman", "start", host.name],
                env=self.podman.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for host in self.hosts
        ]
        for host, process in zip(self.hosts, starts, strict=True):
            out, _ = process.communicate(timeout=120)
            assert process.returncode == 0, f"podman start {host.name} exited {process.returncode}: {out}"
        return self.hosts

    def wait_serving(self) -> None:
        for host in self.hosts:
            host.wait_serving()

    def stop(self) -> None:
        for host in self.hosts:
            host.remove()
        self.hosts = []

    def workers(self) -> list[dict[str, t.Any]]:
        """Every worker's answer, container by container: :data:`HOSTS` × :data:`WORKERS` of them."""
        return [answer for host in self.hosts for answer in host.workers().values()]

    def logs(self, timeout: float = 50) -> list[str]:
        """Each container's log, once every worker has logged how its start began (or ``timeout`` passed).

        Below the 60 s that a worker waits for the migration lock.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = [host.logs() for host in self.hosts]
            if all(len(START.findall(log)) >= WORKERS for log in found) or time.monotonic() > deadline:
                return found
            time.sleep(0.3)


@pytest.fixture
def images(engine: Podman, wheelhouse: Path, tmp_path: Path) -> t.Iterator[Images]:
    images = Images(engine, wheelhouse, tmp_path)
    yield images
    if images.built:
        engine("rmi", "--force", *images.built, check=False)
    # The build stages' layers carry the label too; the base image does not and stays.
    engine("image", "prune", "--all", "--force", f"--filter=label={LABEL}", check=False)


@pytest.fixture
def fleet(engine: Podman, database: str) -> t.Iterator[Fleet]:
    fleet = Fleet(engine, database)
    yield fleet
    fleet.stop()


def test_four_containers_of_four_workers_migrate_one_database_once_and_a_new_image_applies_its_migration_once(
    server: str, images: Images, fleet: Fleet, database: str
) -> None:
    import psycopg

    image_v1 = images.build("v1", {})
    image_v2 = images.build("v2", V2_MIGRATION)

    # v1 on the fresh database: 16 workers race for migrations 1-3.
    hosts = fleet.start(image_v1)
    fleet.wait_serving()
    workers = fleet.workers()
    assert len(workers) == HOSTS * WORKERS
    assert {w["current_version"] for w in workers} == {3}, workers
    assert sorted(v for w in workers for v in w["applied"]) == [1, 2, 3], workers  # each by exactly one worker
    logs = fleet.logs()
    for log in logs:
        assert log.count("Booting worker") == WORKERS, log
        assert len(START.findall(log)) == WORKERS, log  # every worker ran the factory
        assert "Worker failed to boot" not in log and "Traceback" not in log, log
    everything = "\n".join(logs)
    assert everything.count("Applied migration") == len(V1_MIGRATIONS), everything
    for migration in V1_MIGRATIONS:
        assert everything.count(f"Applied migration {migration} ") == 1, everything
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT version, state FROM schema_migrations ORDER BY version").fetchall() == [
            (1, "applied"), (2, "applied"), (3, "applied"),
        ]  # fmt: skip
        assert conn.execute("SELECT body FROM note").fetchall() == [("seeded by migration 2",)]
        assert conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'note_created_at'::regclass"
        ).fetchall() == [(True,)]
    written = hosts[0].post("/notes", {"body": "written under v1"})
    before = hosts[1].get("/notes")["notes"]
    assert [note["body"] for note in before] == ["seeded by migration 2", "written under v1"]
    assert written in before

    # v2 replaces all 4 containers at once. A transaction of the test holds a lock on the
    # table, as a long app query would: the worker that runs 0004 waits inside it, holding
    # the migration lock, until every one of the 16 workers has found 0004 pending.
    gate = psycopg.connect(database, application_name="many-hosts-gate")
    try:
        gate.execute("LOCK TABLE note IN SHARE MODE")
        hosts = fleet.start(image_v2)
        logs = fleet.logs()
        pending = [len(PENDING_4.findall(log)) for log in logs]
        assert pending == [WORKERS] * HOSTS, "\n".join(logs)  # all 16 raced for 0004
        # The worker that holds the migration lock waits in its ALTER TABLE; between two
        # table-lock timeouts it backs off, so sample for a while. The statement may be sent
        # with the migration's SAVEPOINT and SET LOCALs in front of it.
        seen: list[int] = []
        with psycopg.connect(database, autocommit=True) as conn:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and 1 not in seen:
                (count,) = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query LIKE '%ALTER TABLE note%'"
                ).fetchone()
                seen.append(count)
                time.sleep(0.05)
        # exactly one worker is running it; the 15 others wait for the migration lock
        assert 1 in seen and max(seen) == 1, (seen, "\n".join(logs))
    finally:
        gate.rollback()
        gate.close()
    fleet.wait_serving()
    workers = fleet.workers()
    assert len(workers) == HOSTS * WORKERS
    assert {w["current_version"] for w in workers} == {4}, workers
    assert sorted(v for w in workers for v in w["applied"]) == [4], workers
    logs = fleet.logs()
    for host, log in zip(hosts, logs, strict=True):
        assert log.count("Booting worker") == WORKERS, log
        assert len(V4_OUTCOME.findall(log)) == WORKERS, log  # each worker applied 4 or found it done
        assert "Worker failed to boot" not in log and "Traceback" not in log, log
        assert host.podman("healthcheck", "run", host.name, check=False).returncode == 0, log
        assert host.get("/notes")["notes"] == before  # written before the update, seen from every host
    everything = "\n".join(logs)
    assert everything.count("Applied migration") == 1, everything
    assert everything.count("Applied migration 0004_add_note_author ") == 1, everything
    assert everything.count("migrated to version 4 by another process") == HOSTS * WORKERS - 1, everything
    with psycopg.connect(database) as conn:
        assert [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")] == [1, 2, 3, 4]
        assert conn.execute("SELECT body, author FROM note ORDER BY id").fetchall() == [
            ("seeded by migration 2", "nobody"), ("written under v1", "nobody"),
        ]  # fmt: skip
