"""The PostgreSQL statement splitter, by example and against the server's own parser."""

from __future__ import annotations

import typing as t
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfmigrate.backends.postgres.sqltext import SQLTextError, split_statements


def pieces(text: str) -> list[tuple[str, int]]:
    return [(s.sql, s.line) for s in split_statements(text)]


def test_semicolons_inside_quotes_comments_and_bodies_do_not_split() -> None:
    text = (
        "-- header; still a comment\n"
        "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n"
        "CREATE FUNCTION g() RETURNS int AS $body$ SELECT 2; -- $$ ; $body$ LANGUAGE sql;\n"
        "SELECT E'it\\'s; here', 'a''b;' /* outer /* inner; */ still; */ ;\n"
        'SELECT 1 AS "odd;""name";\n'
        "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2));\n"
        "CREATE FUNCTION h() RETURNS int LANGUAGE sql\n"
        "BEGIN ATOMIC\n  SELECT 1;\n  SELECT CASE WHEN true THEN 2 END;\nEND;\n"
        "SELECT $1, a$b$ FROM t;\n"
        "SELECT 'last'"
    )
    assert [line for _, line in pieces(text)] == [2, 3, 4, 5, 6, 7, 12, 13]
    assert pieces(text)[3][0] == 'SELECT 1 AS "odd;""name";'


def test_lone_semicolons_and_comment_only_pieces_are_dropped() -> None:
    assert pieces(";;\n-- only a comment\n/* and /* nested */ this */\n;") == []


def test_first_line_offsets_every_line() -> None:
    assert pieces("\n\nSELECT 1;\nSELECT 2;") == [("SELECT 1;", 3), ("SELECT 2;", 4)]
    assert [s.line for s in split_statements("SELECT 1;\nSELECT 2;", first_line=10)] == [10, 11]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("SELECT 1;\nSELECT 'open", 2, "never closed"),
        ("SELECT 1;\n\nSELECT $$ open", 3, "dollar-quoted"),
        ("/* open /* nested */ still open", 1, "comment"),
        ('SELECT "open', 1, "identifier"),
        ("SELECT 1;\nCOPY t (a) FROM stdin;\n1\n\\.\n", 2, "COPY"),
        ("\\connect other\nSELECT 1;", 1, "psql"),
    ],
)
def test_what_cannot_be_split_is_an_error_with_its_line(text: str, line: int, words: str) -> None:
    with pytest.raises(SQLTextError) as caught:
        split_statements(text)
    assert caught.value.line == line
    assert words in caught.value.message


def test_copy_from_a_file_is_an_ordinary_statement() -> None:
    assert pieces("COPY t FROM '/tmp/data.csv';") == [("COPY t FROM '/tmp/data.csv';", 1)]


# --- against the server -------------------------------------------------------------

_text = st.text(alphabet=st.sampled_from(list("ab; '\"$*/-\\\nx")), max_size=12)


@st.composite
def statement(draw: st.DrawFn) -> list[str]:
    """Valid statements (one, or two for a rule and its table) full of characters that
    could end them too early."""
    kind = draw(st.sampled_from(["string", "estring", "dollar", "ident", "comment", "function", "rule", "atomic"]))
    body = draw(_text)
    if kind == "string":
        return ["SELECT '" + body.replace("'", "''") + "'"]
    if kind == "estring":
        return ["SELECT E'" + body.replace("\\", "\\\\").replace("'", "\\'") + "'"]
    if kind == "dollar":
        tag = draw(st.sampled_from(["", "x", "body_1"]))
        inner = body.replace("$", "")
        return [f"SELECT ${tag}${inner}${tag}$"]
    if kind == "ident":
        return ['SELECT 1 AS "x' + body.replace('"', '""') + '"']
    if kind == "comment":
        inner = body.replace("*/", "").replace("/*", "").replace("*", "")
        return [f"SELECT /* {inner} /* nested; */ {inner} */ 2"]
    name = f"f_{uuid.uuid4().hex[:8]}"
    if kind == "function":
        inner = body.replace("$", "").replace("'", "''")
        return [f"CREATE FUNCTION {name}() RETURNS text AS $fn$ SELECT '{inner}'; $fn$ LANGUAGE sql"]
    if kind == "rule":
        return [
            f"CREATE TABLE {name} (a int)",
            f"CREATE RULE r_{name} AS ON INSERT TO {name} DO ALSO (SELECT 1; SELECT 2)",
        ]
    return [
        f"CREATE FUNCTION {name}() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1;"
        " SELECT CASE WHEN true THEN 2 END; END"
    ]


_separator = st.sampled_from([";\n", ";", ";\n\n", "; -- done; really\n", ";\n/* between; */\n", "\n;\n"])


@pytest.fixture(scope="module")
def server_conn(pg_server: str) -> t.Iterator[t.Any]:
    import psycopg

    name = f"sm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    conn = psycopg.connect(pg_server.rsplit("/", 1)[0] + "/" + name, autocommit=True)
    try:
        yield conn
    finally:
        conn.close()
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(statement(), _separator), min_size=1, max_size=5), st.sampled_from(["", "-- head\n", "\n\n"]))
def test_pieces_are_the_statements_the_server_runs(
    server_conn: t.Any, parts: list[tuple[list[str], str]], head: str
) -> None:
    """Split a generated script: each piece is one whole statement the server accepts,
    and it starts on the line where it was written."""
    text = head
    expected: list[tuple[str, int]] = []
    for sqls, separator in parts:
        for sql in sqls:
            expected.append((sql, text.count("\n") + 1))
            text += sql + separator
    got = split_statements(text)
    assert [(s.sql.removesuffix(";").rstrip(), s.line) for s in got] == expected
    with server_conn.transaction(force_rollback=True):
        for piece in got:
            server_conn.execute(piece.sql.encode())  # bytes: no client-side placeholder parsing


def test_a_long_data_script_keeps_every_statement_and_its_line() -> None:
    """Thousands of lines: every statement kept, each on its own line (and counted without
    going back to the top of the file for each one)."""
    text = "".join(f"INSERT INTO t VALUES ({i}, 'a;b');\r\n" for i in range(6000))
    got = split_statements(text, first_line=3)
    assert len(got) == 6000
    assert [s.line for s in got] == list(range(3, 6003))
    assert got[-1].sql == "INSERT INTO t VALUES (5999, 'a;b');"
