"""Property-based tests of the statement splitter, line numbers and marker lines.

SQLite is the oracle: :func:`sqlite3.complete_statement` for where a statement
ends, and running the pieces one by one against :meth:`sqlite3.Connection.executescript`
on scratch databases for what they do. Scripts are generated from strings with
doubled quotes and semicolons, quoted identifiers (``""``, ``[]``, `````),
``--`` and ``/* */`` comments (unterminated at the end too), trigger bodies and
every line end ``str.splitlines()`` knows.
"""

from __future__ import annotations

import re
import sqlite3
import typing as t

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from selfmigrate import DiscoveryError
from selfmigrate.backends.sqlite.sqltext import split_statements
from selfmigrate.backends.tokens import SQL_WHITESPACE, line_finder, line_of, sql_chunks, sql_tokens
from selfmigrate.core.migration import DOWN_MARKER, Migration, SQLScript, looks_like_marker, parse_markers

# No example database: tests never write into the source tree (.hypothesis/).
EXAMPLES = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
BASE = "CREATE TABLE t (a, b); CREATE TABLE log (v);"

#: Characters that end a line for str.splitlines but not for selfmigrate (nor for
#: editors and Python's compiler): allowed inside strings and comments.
ODD = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
#: Text inside strings and comments: quotes, semicolons, comment starts, odd characters.
inner = st.text(alphabet=st.sampled_from(list("ab ;'\"`[]-*/\t\r") + list(ODD) + ["é"]), max_size=12)
line_end = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def gap(draw: st.DrawFn) -> str:
    """What may stand between two tokens: SQLite white space and comments, at least one."""
    parts = draw(
        st.lists(
            st.one_of(
                st.sampled_from([" ", "\t", "\f", "\n", "\r\n", "\r"]),
                line_end.map(lambda end: " " + end),
                # A "--" comment ends at \n only (SQLite knows no other line end).
                inner.map(lambda s: "-- " + s.replace("\r", "") + "\n"),
                st.tuples(inner, line_end).map(lambda p: "/*" + p[0].replace("*/", "") + p[1] + "*/"),
            ),
            min_size=1,
            max_size=3,
        )
    )
    return "".join(parts)


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@st.composite
def identifier(draw: st.DrawFn, name: str) -> str:
    """``name`` quoted one of SQLite's ways, sometimes with an escaped quote inside."""
    style = draw(st.sampled_from(['"', "`", "[", "plain"]))
    odd = draw(st.booleans())
    if style == "plain":
        return name
    if style == "[":
        return f"[{name}{' ;' if odd else ''}]"
    return f"{style}{name}{style * 2 if odd else ''}{style}"


@st.composite
def statement(draw: st.DrawFn, index: int) -> list[str]:
    """One valid statement as a list of tokens (joined by gaps later)."""
    kind = draw(st.sampled_from(["create", "insert", "select", "trigger"]))
    text = st.text(alphabet=st.sampled_from(list("x;'\"-/*\n") + list(ODD)), max_size=8)
    if kind == "create":
        table = draw(identifier(f"x{index}"))
        return ["CREATE", "TABLE", table, "(", draw(identifier("c")), ",", draw(identifier("d")), ")"]
    if kind == "insert":
        return ["INSERT", "INTO", "t", "VALUES", "(", sql_string(draw(text)), ",", str(index), ")"]
    if kind == "select":
        return ["SELECT", sql_string(draw(text)), "AS", draw(identifier("v"))]
    return [
        "CREATE", "TRIGGER", f"tr{index}", "AFTER", "INSERT", "ON", "t", "BEGIN",
        "INSERT", "INTO", "log", "VALUES", "(", sql_string(draw(text)), ")", ";",
        "UPDATE", "log", "SET", "v", "=", sql_string(draw(text)), ";", "END",
    ]  # fmt: skip


@st.composite
def script(draw: st.DrawFn) -> tuple[str, list[tuple[int, str]]]:
    """A script and, for each statement, the offset and text of its first token."""
    out = [draw(st.sampled_from(["", " ", "\n", "\r\n"]))]
    firsts: list[tuple[int, str]] = []
    count = draw(st.integers(min_value=1, max_value=5))
    for index in range(count):
        tokens = draw(statement(index))
        firsts.append((len("".join(out)), tokens[0]))
        # A few boundaries get generated white space and comments, the others one space
        # (a gap at every boundary makes generation the cost of the test).
        gaps = draw(st.dictionaries(st.integers(0, len(tokens) - 2), gap(), max_size=3))
        for position, token in enumerate(tokens[:-1]):
            out += [token, gaps.get(position, " ")]
        out.append(tokens[-1])
        last = index == count - 1
        if not last or draw(st.booleans()):
            out += [draw(st.sampled_from(["", " ", "\n"])), ";"]
            out += draw(st.lists(st.sampled_from([";", " ;", "\n;"]), max_size=2))  # empty statements
        out.append(draw(gap()) if not last else draw(st.sampled_from(["", "\n", "\r", " "])))
    tail = draw(st.sampled_from(["", "-- unterminated", "/* unterminated", "/* done */", "\r\n"]))
    if tail and not "".join(out).endswith(("\n", "\r", " ", ";")) and not tail.startswith("\r"):
        tail = "\n" + tail
    return "".join(out) + tail, firsts


def expected_line(text: str, offset: int) -> int:
    """The line of ``offset``: line ends \\n, \\r\\n, \\r (independent of the code under test)."""
    return 1 + len(re.findall(r"\r\n|\r|\n", text[:offset]))


def run_pieces(pieces: t.Sequence[str]) -> tuple[bool, list[str]]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.executescript(BASE)
        try:
            for piece in pieces:
                conn.execute(piece).fetchall()  # refuses a piece holding two statements
        except sqlite3.Error:
            return False, list(conn.iterdump())
        return True, list(conn.iterdump())
    finally:
        conn.close()


def run_script(text: str) -> tuple[bool, list[str]]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.executescript(BASE)
        try:
            conn.executescript(text)
        except sqlite3.Error:
            return False, list(conn.iterdump())
        return True, list(conn.iterdump())
    finally:
        conn.close()


@EXAMPLES
@given(script(), st.sampled_from([1, 2, 37, 10_000]))
def test_pieces_are_sqlites_statements_with_the_line_of_their_first_token(
    generated: tuple[str, list[tuple[int, str]]], first: int
) -> None:
    text, firsts = generated
    pieces = split_statements(SQLScript(text, first))
    assert [p.line for p in pieces] == [first - 1 + expected_line(text, offset) for offset, _ in firsts]
    assert all(p.sql.startswith(token) for p, (_, token) in zip(pieces, firsts, strict=True))
    for piece in pieces[:-1]:
        assert sqlite3.complete_statement(piece.sql)
    ran, dumped = run_script(text)
    assert ran and run_pieces([p.sql for p in pieces]) == (ran, dumped)


#: Fragments glued at random: mostly invalid SQL, which both ways must refuse alike.
#: Control characters SQLite finds illegal (\x0b, \x1c…) appear only inside strings and
#: comments here: SQLite accepts " \x0b" and refuses "\x0b" (the splitter refuses both).
FRAGMENTS = [
    "SELECT 1", "SELECT 'a;b'", "SELECT \"x\"\"y\"", "SELECT [a;b]", "SELECT `a``;`", ";", " ", "\n", "\r",
    "\r\n", "-- c;\n", "--", "/* ; */", "/*", "*/", "'", '"', "[", "`", "CREATE TABLE", " z", "(q)",
    "CREATE TRIGGER tg AFTER INSERT ON t BEGIN ", "END", "INSERT INTO log VALUES (1)", "CASE", "\x0c",
    "\u2028", "\x85", "é", "'\x0b'", "-- \x0b\x1c\n",
]  # fmt: skip


@EXAMPLES
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join))
@example("--SELECT 1\nSELECT 1")  # the statement's words in a comment before it
def test_any_text_runs_piecewise_as_sqlite_runs_it(text: str) -> None:
    pieces = split_statements(SQLScript(text, 1))
    assert run_pieces([p.sql for p in pieces]) == run_script(text)
    # Where each piece is in the text: the first occurrence that starts at a code token
    # (the same words inside a comment, "--SELECT 1", are not it).
    code = {start for kind, start, _ in sql_tokens(text) if kind not in ("space", "line", "block")}
    offset = 0
    for piece in pieces:
        offset = text.index(piece.sql, offset)
        while offset not in code:
            offset = text.index(piece.sql, offset + 1)
        assert piece.line == expected_line(text, offset)
        offset += len(piece.sql)


@EXAMPLES
@given(script(), st.sampled_from(["\n", "\r\n", "\r"]), st.booleans())
def test_loaded_file_lines_match_for_every_line_end(
    tmp_path_factory: pytest.TempPathFactory, generated: tuple[str, list[tuple[int, str]]], end: str, down: bool
) -> None:
    text, firsts = generated
    # The file as a team's editor writes it: one kind of line end throughout.
    body = re.sub(r"\r\n|\r|\n", end, text)
    down = down and "unterminated" not in text
    if down:
        body += end + DOWN_MARKER + end + end + "DROP TABLE t;" + end
    path = tmp_path_factory.getbasetemp() / "0001_x.sql"
    path.write_bytes(body.encode())
    loaded = Migration(1, "x", "sql", str(path)).load()
    assert loaded.up_sql is not None
    up_lines = [s.line for s in split_statements(loaded.up_sql)]
    assert up_lines == [expected_line(body, len(re.sub(r"\r\n|\r|\n", end, text[:o]))) for o, _ in firsts]
    if down:
        assert loaded.down_sql is not None
        assert [s.line for s in split_statements(loaded.down_sql)] == [expected_line(body, body.rindex("DROP"))]
    else:
        assert loaded.down_sql is None


# Marker lines ------------------------------------------------------------------------------------

spaces = st.sampled_from(["", " ", "  ", "\t"])
marker_line = st.builds(
    lambda lead, gap1, plus, word, sep, name, rest, trail: f"{lead}--{gap1}{plus}{word}{sep}{name}{rest}{trail}",
    spaces,
    spaces,
    st.sampled_from(["", "+"]),
    st.sampled_from(["migrate", "Migrate", "MIGRATE", "migration", "migrations", "goose", "mig rate"]),
    st.sampled_from(["", ":", " :", ": ", " ", "_", "-", "=", "::"]),
    st.sampled_from(
        ["down", "Down", "DOWN", "up", "no-transaction", "notransaction", "no transaction", "transaction", "", "x"]
    ),
    st.sampled_from(["", " transaction:false", " transaction:true", " now", "s", ";"]),
    spaces,
)
EXACT = {"-- migrate:down", "-- migrate:no-transaction", "-- migrate:up", "-- migrate:up transaction:false"}


def outcome(text: str) -> str:
    try:
        markers = parse_markers(text, "0001_x.sql")
    except DiscoveryError as e:
        return f"error: {e}"
    if markers.down is not None:
        return "down"
    return "header" if not markers.transactional else "comment"


@EXAMPLES
@given(marker_line)
@example("\t-- MIGRATE:up")  # a header marker in another case, after a statement
def test_a_comment_line_is_a_marker_an_error_or_plainly_a_comment(line: str) -> None:
    for before, after in [("CREATE TABLE a (x);\n", "\nSELECT 1;\n"), ("/* licence\n*/\n", "\nSELECT 1;\n")]:
        result = outcome(before + line + after)
        spelt = line.strip(" \t").lower()
        if result.startswith("error: "):
            assert "0001_x.sql, line 2" in result or "0001_x.sql, line 3" in result
            assert "'-- migrate:" in result  # the exact spelling to use
        elif result == "comment":
            header_up = spelt == "-- migrate:up" and before.startswith("/*")
            assert header_up or not looks_like_marker(line.strip(" \t")[2:])
        elif result == "down":
            assert spelt == DOWN_MARKER
        else:
            assert before.startswith("/*") and spelt in {"-- migrate:no-transaction", "-- migrate:up transaction:false"}


@EXAMPLES
@given(
    spaces,
    st.sampled_from(["migrate", "MIGRATE", "Migrate", "mIgRaTe"]),
    spaces,
    st.text(alphabet=st.characters(blacklist_characters="\n\r", blacklist_categories=["Cs"]), max_size=20),
)
def test_migrate_colon_is_never_a_plain_comment(gap1: str, word: str, gap2: str, rest: str) -> None:
    line = f"--{gap1}{word}{gap2}:{rest}"
    result = outcome(f"CREATE TABLE a (x);\n{line}\nDROP TABLE a;\n")
    assert result == "down" or result.startswith("error: ")


@EXAMPLES
@given(st.text(alphabet=st.sampled_from(list("a\n\r;") + list(ODD)), max_size=40))
def test_line_finder_agrees_with_line_of_at_every_offset(text: str) -> None:
    find = line_finder(text)
    # Between the two characters of a "\r\n" is no token's start: not asked.
    offsets = [o for o in range(len(text) + 1) if not text.startswith("\r\n", o - 1)]
    assert [find(offset) for offset in offsets] == [line_of(text, offset) for offset in offsets]


@EXAMPLES
@given(st.text(alphabet=st.sampled_from(list("ab ;'\"`[]-*/\t\r\n\f") + list(ODD) + ["é"]), max_size=60))
def test_chunks_are_the_tokens_with_space_and_other_code_run_together(text: str) -> None:
    # What split_statements and parse_markers read: the same comments, quotes and
    # semicolons as the tokenizer, and every "code" chunk exactly its space and other tokens.
    def merged(pieces: t.Iterable[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
        out: list[tuple[str, int, int]] = []
        for kind, begin, end in pieces:
            kind = "code" if kind in ("space", "other") else kind
            if kind == "code" and out and out[-1][0] == "code" and out[-1][2] == begin:
                out[-1] = ("code", out[-1][1], end)
            else:
                out.append((kind, begin, end))
        return out

    chunks = list(sql_chunks(text))
    assert merged(chunks) == merged(sql_tokens(text))
    assert "".join(text[b:e] for _, b, e in chunks) == text
    for kind, begin, end in chunks:
        if kind == "code" and not text[begin:end].strip(SQL_WHITESPACE):
            assert all(c in SQL_WHITESPACE for c in text[begin:end])


def test_a_long_data_script_keeps_every_statement_and_its_line() -> None:
    # Chinook's shape: thousands of INSERTs with CRLF line ends (numbered in one pass, not per statement).
    rows = 20_000
    text = "\r\n".join(f"INSERT INTO t VALUES ({i}, 'a;b -- {i}');" for i in range(rows)) + "\r\n"
    pieces = split_statements(SQLScript(text, 1))
    assert [p.line for p in pieces] == list(range(1, rows + 1))
    assert pieces[-1].sql == f"INSERT INTO t VALUES ({rows - 1}, 'a;b -- {rows - 1}');"
