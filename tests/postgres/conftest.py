"""Fixtures for the tests that need a real PostgreSQL server (and pgbouncer).

Each test gets a database of its own, dropped afterwards. Without a server (or
without psycopg) the tests skip, saying how to enable them; in CI (``CI`` set)
they fail instead, so a missing service can never pass for a green run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import typing as t
import uuid
from pathlib import Path

import pytest

#: The server the tests use; override with SELFMIGRATE_TEST_POSTGRES.
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
ENABLE = (
    "start PostgreSQL (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start), "
    "pip install -e '.[test]' (psycopg), or point SELFMIGRATE_TEST_POSTGRES at a server"
)


def _unavailable(reason: str) -> t.NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL tests cannot run in CI: {reason}. .ci/run must {ENABLE}.", pytrace=False)
    pytest.skip(f"PostgreSQL tests need a server: {reason}. To run them: {ENABLE}.")


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The URL of a PostgreSQL server's maintenance database, checked to answer."""
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed")
    url = os.environ.get("SELFMIGRATE_TEST_POSTGRES", DEFAULT_SERVER)
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as e:
        _unavailable(f"no server answers at {url} ({e})")
    return url


@pytest.fixture
def pg_url(pg_server: str) -> t.Iterator[str]:
    """The URL of a new, empty database, dropped when the test ends."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    name = f"sm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(pg_server)
    yield _url(params, name)
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _url(params: dict[str, t.Any], dbname: str, *, port: int | None = None) -> str:
    user = params.get("user", "postgres")
    host = params.get("host", "127.0.0.1")
    return f"postgresql://{user}@{host}:{port or params.get('port', 5432)}/{dbname}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _pgbouncer(pg_server: str, address: str, port: int) -> t.Iterator[None]:
    """A real pgbouncer in transaction pooling mode on ``address:port`` in front of the server.

    Debian's ``pgbouncer`` (``apt-get install pgbouncer``; ``.ci/run`` installs
    it). Started as the ``postgres`` user when run as root (pgbouncer refuses
    root), stopped when the block ends.
    """
    from psycopg.conninfo import conninfo_to_dict

    binary = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if binary is None:
        _unavailable("pgbouncer is not installed (apt-get install -y pgbouncer)")
    params = conninfo_to_dict(pg_server)
    # Not under pytest's tmp_path: its folders are private to root, and pgbouncer runs
    # as postgres and must read its files.
    folder = Path(tempfile.mkdtemp(prefix="selfmigrate-pgbouncer-"))
    folder.chmod(0o777)
    ini = folder / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        f"* = host={params.get('host', '127.0.0.1')} port={params.get('port', 5432)}\n"
        "[pgbouncer]\n"
        f"listen_addr = {address}\nlisten_port = {port}\n"
        f"unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {folder / 'users.txt'}\n"
        "pool_mode = transaction\n"
        "max_client_conn = 200\ndefault_pool_size = 20\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
        f"pidfile = {folder / 'pgbouncer.pid'}\n"
    )
    (folder / "users.txt").write_text(f'"{params.get("user", "postgres")}" ""\n')
    for path in folder.iterdir():
        path.chmod(0o666)
    command = [binary, str(ini)]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "postgres"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((address, port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = folder / "pgbouncer.log"
                    _unavailable(f"pgbouncer did not start: {log.read_text() if log.exists() else 'no log'}")
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pgbouncer(pg_server: str) -> t.Iterator[int]:
    """A pgbouncer in transaction pooling mode on a port of its own; yields its port."""
    port = _free_port()
    with _pgbouncer(pg_server, "127.0.0.1", port):
        yield port


@pytest.fixture(scope="session")
def pgbouncer_on_the_servers_port(pg_server: str) -> t.Iterator[str]:
    """A pgbouncer in transaction pooling mode on the server's own port, on another loopback
    address (127.0.0.2): the port cannot tell it from the server. Yields its address."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(pg_server)
    port = int(params.get("port", 5432))
    address = "127.0.0.2"
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as pgbouncer does: TIME_WAIT is no obstacle
        try:
            probe.bind((address, port))
        except OSError as e:
            pytest.skip(f"{address}:{port} is taken (the server listens on every address?): {e}")
    with _pgbouncer(pg_server, address, port):
        yield address


@pytest.fixture
def pgbouncer_url(pg_url: str, pgbouncer: int) -> str:
    """The test's database, reached through pgbouncer in transaction pooling mode."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(pg_url)
    return _url(params, params["dbname"], port=pgbouncer)


@pytest.fixture
def pgbouncer_on_the_servers_port_url(pg_url: str, pgbouncer_on_the_servers_port: str) -> str:
    """The test's database through the pgbouncer that listens on the server's port."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(pg_url)
    user, port = params.get("user", "postgres"), params.get("port", 5432)
    return f"postgresql://{user}@{pgbouncer_on_the_servers_port}:{port}/{params['dbname']}"
