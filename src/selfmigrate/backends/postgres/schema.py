"""Reading a PostgreSQL database's schema, for the round-trip and verify checks.

Holds :func:`read_schema`: tables with their columns, indexes, views and triggers of the
user's schemas, normalised as the server prints them. Must not write anything.
"""

from __future__ import annotations

import typing as t

from ..base import SchemaObject

if t.TYPE_CHECKING:
    import psycopg

    from ..base import Schema

_USER_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'"


def read_schema(conn: psycopg.Connection[t.Any], *, exclude: t.Collection[str] = ()) -> Schema:
    """The schema of the user's schemas, without the tables ``exclude`` and their indexes and triggers."""
    skip = set(exclude)
    schema: Schema = {}
    for table, kind, definition in conn.execute(
        "SELECT c.relname, c.relkind, CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) ELSE '' END"
        f" FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_USER_SCHEMAS}"
        " AND c.relkind IN ('r', 'p', 'v', 'm')"
    ).fetchall():
        if table in skip:
            continue
        if kind in ("v", "m"):
            schema[table] = SchemaObject("view", table, " ".join(str(definition).split()))
            continue
        columns = tuple(
            tuple(row)
            for row in conn.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
                " pg_get_expr(d.adbin, d.adrelid),"
                " EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary"
                " AND a.attnum = ANY (i.indkey))"
                " FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
                " WHERE a.attrelid = to_regclass(quote_ident(%s)) AND a.attnum > 0 AND NOT a.attisdropped"
                " ORDER BY a.attnum",
                (table,),
            )
        )
        schema[table] = SchemaObject("table", table, "", columns)
    for name, table, definition in conn.execute(
        "SELECT indexname, tablename, indexdef FROM pg_indexes n WHERE schemaname NOT IN"
        " ('pg_catalog', 'information_schema') AND schemaname NOT LIKE 'pg\\_%%'"
    ).fetchall():
        if table not in skip:
            schema[name] = SchemaObject("index", table, " ".join(str(definition).split()))
    for name, table, definition in conn.execute(
        "SELECT t.tgname, c.relname, pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
        f" JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND {_USER_SCHEMAS}"
    ).fetchall():
        if table not in skip:
            schema[name] = SchemaObject("trigger", table, " ".join(str(definition).split()))
    return schema
