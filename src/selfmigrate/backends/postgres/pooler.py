"""Telling a direct connection from one through a transaction-pooling pgbouncer.

Holds :func:`pooled`: a connection reaches the server directly when the server sees
this very socket at the other end (``inet_client_addr()``/``inet_client_port()`` are
its local address); else a pooler gives itself away by answering on another port than
the server's (``inet_server_port()``), or by serving two client connections with one
server process, or one connection with two. Session-level state (an advisory lock,
``SET``) does not survive from one transaction to the next through such a pooler, so a
non-transactional migration must not run there. Must not know migrations.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import typing as t
from dataclasses import dataclass

if t.TYPE_CHECKING:
    import psycopg

#: How many times a second connection is compared with the first when the socket cannot tell.
TRIES = 3


@dataclass(frozen=True)
class Pooled:
    """What shows that a connection goes through a pooler."""

    #: The port the server listens on (for the direct URL the fix names).
    server_port: int
    #: What gave the pooler away, for the message.
    evidence: str


def pooled(conn: psycopg.Connection[t.Any], another: t.Callable[[], psycopg.Connection[t.Any]]) -> Pooled | None:
    """Why ``conn`` goes through a pooler, or ``None`` if it reaches the server directly.

    ``another`` opens a second connection to the same URL, used only when the
    socket cannot tell (a proxy or NAT in between rewrites the client's address,
    as a pooler does). A Unix-socket connection counts as direct.
    """
    row = conn.execute(
        "SELECT inet_server_port(), host(inet_client_addr()), inet_client_port(), pg_backend_pid()"
    ).fetchone()
    assert row is not None
    server_port, client_addr, client_port, pid = row
    if server_port is None:
        return None
    if _seen_as(conn) == (client_addr, client_port):
        return None  # the server's other end is this socket: nothing in between
    try:
        port = int(conn.info.port)
    except (TypeError, ValueError):
        port = None
    if port is not None and port != int(server_port):
        return Pooled(int(server_port), f"it connects to port {port}, the server behind it listens on {server_port}")
    for _ in range(TRIES):
        with another() as other:
            found = other.execute("SELECT pg_backend_pid()").fetchone()
        if found is not None and found[0] == pid:
            return Pooled(int(server_port), f"two of its connections were served by one server process (pid {pid})")
        again = conn.execute("SELECT pg_backend_pid()").fetchone()
        if again is not None and again[0] != pid:
            return Pooled(
                int(server_port), f"one of its connections was served by two server processes (pids {pid}, {again[0]})"
            )
    return None


def _seen_as(conn: psycopg.Connection[t.Any]) -> tuple[str, int] | None:
    """This connection's local address and port, as the server would name them (``None``: not TCP)."""
    try:
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                return None
            address, port = sock.getsockname()[:2]
    except OSError:
        return None
    parsed = ipaddress.ip_address(str(address).partition("%")[0])
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return str(parsed), int(port)
