"""SQLite's SQL text: splitting a script into statements, each with its line.

Holds :func:`split_statements`, which understands SQLite's quoting, comments and
trigger bodies. Must not know connections, transactions or migrations.
"""

from __future__ import annotations

import sqlite3
import typing as t

from ..base import Statement

if t.TYPE_CHECKING:
    from ..base import SQLScript


def split_statements(script: SQLScript) -> list[Statement]:
    """Split SQL text into statements, with the file line each one starts on.

    Quotes (``'…'``, ``"…"``, ``[…]``, `````…`````) and comments (``--``, ``/* */``) are
    understood, and a semicolon ends a statement only where
    :func:`sqlite3.complete_statement` agrees, so ``CREATE TRIGGER … BEGIN …; END;``
    stays whole. Comment-only pieces and lone semicolons are dropped; a last statement without a
    semicolon is kept.
    """
    text = script.text
    statements: list[Statement] = []
    start = 0  # where the current statement's text begins
    first_code: int | None = None  # index of its first character that is not comment/space
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "-" and text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end == -1 else end + 1
            continue
        if c == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end == -1 else end + 2
            continue
        if c.isspace():
            i += 1
            continue
        if first_code is None:
            first_code = i
        if c in "'\"`[":
            close = "]" if c == "[" else c
            end = text.find(close, i + 1)
            # A doubled quote inside a string is an escaped quote: keep scanning.
            while end != -1 and close != "]" and text.startswith(close * 2, end):
                end = text.find(close, end + 2)
            i = n if end == -1 else end + 1
            continue
        if c == ";" and sqlite3.complete_statement(text[start : i + 1]):
            if first_code != i:  # a lone ";" is an empty statement: nothing to run
                statements.append(_statement(text, first_code, i + 1, script.first_line))
            start, first_code = i + 1, None
        i += 1
    if first_code is not None:
        statements.append(_statement(text, first_code, n, script.first_line))
    return statements


def _statement(text: str, begin: int, end: int, first_line: int) -> Statement:
    return Statement(text[begin:end].strip(), first_line + text.count("\n", 0, begin))
