"""The first note, written through the psycopg connection ``up`` gets.

Run twice, this leaves two seeded notes: the test counts them.
"""

from __future__ import annotations

import typing as t


def up(conn: t.Any) -> None:
    conn.execute("INSERT INTO note (body) VALUES (%s)", ("seeded by migration 2",))
