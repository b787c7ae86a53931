"""Telling a direct connection from one through a transaction-pooling pgbouncer.

Holds :func:`pooled_port`: a pooler answers on its own port while the server behind it
reports the port it listens on (``inet_server_port()``). Session-level state (an advisory
lock, ``SET``) does not survive from one transaction to the next through such a pooler,
so a non-transactional migration must not run there. Must not know migrations.
"""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    import psycopg


def pooled_port(conn: psycopg.Connection[t.Any]) -> tuple[int, int] | None:
    """``(port connected to, server's port)`` if they differ (a pooler in between), else ``None``.

    A Unix-socket connection (``inet_server_port()`` is NULL) counts as direct.
    """
    row = conn.execute("SELECT inet_server_port()").fetchone()
    server_port = None if row is None else row[0]
    try:
        client_port = int(conn.info.port)
    except (TypeError, ValueError):
        return None
    if server_port is None or int(server_port) == client_port:
        return None
    return client_port, int(server_port)
