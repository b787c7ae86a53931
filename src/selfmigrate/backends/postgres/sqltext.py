"""PostgreSQL SQL text: a script split into statements, each with the line it starts on.

Knows PostgreSQL's lexical rules (dollar quoting, ``E''`` strings, nested block
comments, parentheses, ``BEGIN ATOMIC`` bodies); knows nothing of connections.
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass

if t.TYPE_CHECKING:
    #: Maps an index of the text to its file line.
    LineAt = t.Callable[[int], int]

# A dollar-quote tag: $$ or $name$ (a name starts with a letter or _, never a digit,
# so that $1 stays a parameter).
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")
_WORD = re.compile(r"[A-Za-z_\x80-\uffff][A-Za-z0-9_$\x80-\uffff]*")
_COPY_FROM_STDIN = re.compile(r"^\s*copy\b.*\bfrom\s+stdin\b", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a script, and the line of its file it starts on."""

    sql: str
    line: int


class SQLTextError(Exception):
    """The script cannot be split: an unterminated quote or comment, ``COPY … FROM stdin``,
    a psql meta-command. :attr:`line` is the file line where the problem starts."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def split_statements(text: str, first_line: int = 1) -> list[Statement]:
    """Split PostgreSQL SQL text into statements, with the file line each one starts on.

    A semicolon ends a statement only outside strings (``'…'``, ``E'…'``, dollar
    quoted ``$tag$…$tag$``), quoted identifiers, comments (``--``, nested
    ``/* /* */ */``), parentheses (``CREATE RULE … DO (…; …)``) and SQL-standard
    function bodies (``BEGIN ATOMIC … END``). Comment-only pieces and lone
    semicolons are dropped; a last statement without a semicolon is kept.
    Lines are counted at ``\\n`` (what PostgreSQL and psql count).

    :param first_line: the file line on which ``text`` starts.
    :raises SQLTextError: an unterminated string, identifier or comment, a
        ``COPY … FROM stdin`` (its data cannot be sent this way), or a psql
        backslash command.
    """
    statements: list[Statement] = []
    first_code: int | None = None  # index of the statement's first code character
    depth = 0  # parentheses, plus BEGIN ATOMIC / CASE blocks inside a function body
    words: list[str] = []  # the statement's leading keywords, lower case (for BEGIN ATOMIC)
    atomic = 0  # open BEGIN ATOMIC blocks
    i, n = 0, len(text)

    # Statements start in increasing order: count newlines from the last position asked
    # for, not from the top (a data script of thousands of lines would be quadratic).
    seen = [0, first_line]  # an index, and the line it is on

    def line_at(index: int) -> int:
        at, line = seen if index >= seen[0] else (0, first_line)
        line += text.count("\n", at, index)
        seen[:] = [index, line]
        return line

    while i < n:
        c = text[i]
        if c == "-" and text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end == -1 else end + 1
            continue
        if c == "/" and text.startswith("/*", i):
            i = _skip_block_comment(text, i, line_at)
            continue
        if c.isspace():
            i += 1
            continue
        if first_code is None:
            first_code = i
            if c == "\\":
                raise SQLTextError(
                    "a psql backslash command (such as \\i or \\connect) is not SQL; selfmigrate"
                    " sends each statement to the server itself. Write it as SQL or remove it.",
                    line_at(i),
                )
        if c == "'":
            i = _skip_string(text, i, line_at, escapes=_has_escape_prefix(text, i))
            continue
        if c == '"':
            end = _find_closing(text, i + 1, '"')
            if end == -1:
                raise SQLTextError('a quoted identifier (") is never closed', line_at(i))
            i = end + 1
            continue
        if c == "$":
            tag = _DOLLAR_TAG.match(text, i)
            if tag and not _in_word(text, i):
                end = text.find(tag.group(), tag.end())
                if end == -1:
                    raise SQLTextError(f"a dollar-quoted string ({tag.group()}) is never closed", line_at(i))
                i = end + len(tag.group())
                continue
            i += 1
            continue
        word = _WORD.match(text, i) if not _in_word(text, i) else None
        if word:
            lowered = word.group().lower()
            if len(words) < 64:
                words.append(lowered)
            if lowered == "atomic" and len(words) >= 2 and words[-2] == "begin" and _is_routine(words):
                atomic += 1
                depth += 1
            elif atomic and lowered == "case":
                depth += 1
            elif atomic and lowered == "end" and depth > 0:
                depth -= 1
                if depth == 0:
                    atomic = 0
            i = word.end()
            continue
        if c == "(":
            depth += 1
        elif c == ")" and depth > 0:
            depth -= 1
        elif c == ";" and depth == 0:
            if first_code != i:
                statements.append(_statement(text, first_code, i + 1, line_at))
            first_code, words, atomic = None, [], 0
        i += 1
    if first_code is not None:
        statements.append(_statement(text, first_code, n, line_at))
    return statements


def _statement(text: str, begin: int, end: int, line_at: LineAt) -> Statement:
    sql = text[begin:end].strip()
    if _COPY_FROM_STDIN.match(sql):
        raise SQLTextError(
            "COPY … FROM stdin needs the data sent by a client such as psql; selfmigrate runs each"
            " statement on its own. Use INSERT statements, or COPY FROM a file the server can read"
            " in a Python migration.",
            line_at(begin),
        )
    return Statement(sql, line_at(begin))


def _skip_block_comment(text: str, i: int, line_at: LineAt) -> int:
    """The index after the block comment starting at ``i``; PostgreSQL nests them."""
    depth, j, n = 0, i, len(text)
    while j < n:
        if text.startswith("/*", j):
            depth += 1
            j += 2
        elif text.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0:
                return j
        else:
            j += 1
    raise SQLTextError("a /* comment is never closed", line_at(i))


def _skip_string(text: str, i: int, line_at: LineAt, *, escapes: bool) -> int:
    """The index after the string literal whose opening quote is at ``i``."""
    j, n = i + 1, len(text)
    while j < n:
        c = text[j]
        if escapes and c == "\\":
            j += 2
            continue
        if c == "'":
            if text.startswith("''", j):
                j += 2
                continue
            return j + 1
        j += 1
    raise SQLTextError("a string (') is never closed", line_at(i))


def _find_closing(text: str, start: int, quote: str) -> int:
    end = text.find(quote, start)
    while end != -1 and text.startswith(quote * 2, end):
        end = text.find(quote, end + 2)
    return end


def _has_escape_prefix(text: str, quote: int) -> bool:
    """Whether the string at ``quote`` is an escape string: ``E'…'`` (not part of a longer word)."""
    return quote >= 1 and text[quote - 1] in "eE" and not _in_word(text, quote - 1)


def _in_word(text: str, i: int) -> bool:
    """Whether the character at ``i`` continues a word (identifier or number) begun before it."""
    if i == 0:
        return False
    before = text[i - 1]
    return before.isalnum() or before in "_$" or ord(before) >= 0x80


def _is_routine(words: list[str]) -> bool:
    return words[:1] == ["create"] and ("function" in words or "procedure" in words)
