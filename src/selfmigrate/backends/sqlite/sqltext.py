"""SQLite's SQL text: splitting a script into statements, each with its line.

Holds :func:`split_statements`, which understands SQLite's quoting, comments and
trigger bodies. Must not know connections, transactions or migrations.
"""

from __future__ import annotations

import sqlite3

from ..base import Statement
from ..tokens import SQL_WHITESPACE, line_finder, sql_chunks

TYPE_CHECKING = False  # not typing's: see backends/base.py
if TYPE_CHECKING:

    from ..base import SQLScript


def split_statements(script: SQLScript) -> list[Statement]:
    """Split SQL text into statements, with the file line each one starts on.

    Quotes (``'…'``, ``"…"``, ``[…]``, `````…`````) and comments (``--``, ``/* */``)
    are understood as SQLite's tokenizer reads them (:func:`sql_chunks`), and a
    semicolon ends a statement only where :func:`sqlite3.complete_statement`
    agrees, so ``CREATE TRIGGER … BEGIN …; END;`` stays whole. Comment-only
    pieces and lone semicolons are dropped; a last statement without a semicolon
    is kept. Each statement's line is that of its first token (see :func:`line_of`).
    """
    text = script.text
    line_of = line_finder(text)
    statements: list[Statement] = []
    start = 0  # where the current statement's text begins
    first_code: int | None = None  # start of its first token that is not comment/space
    last_end = 0  # end of its last token that is not space (a comment ending the text is kept whole)
    for kind, begin, end in sql_chunks(text):
        if kind == "code":
            # Code with the white space around it: its first and last characters that are not space.
            piece = text[begin:end]
            stripped = piece.lstrip(SQL_WHITESPACE)
            if not stripped:
                continue
            if first_code is None:
                first_code = begin + len(piece) - len(stripped)
            last_end = end - (len(stripped) - len(stripped.rstrip(SQL_WHITESPACE)))
            continue
        last_end = end
        if kind in ("line", "block"):
            continue
        if first_code is None:
            first_code = begin
        if kind == "semicolon" and sqlite3.complete_statement(text[start:end]):
            if first_code != begin:  # a lone ";" is an empty statement: nothing to run
                statements.append(Statement(text[first_code:end], script.first_line - 1 + line_of(first_code)))
            start, first_code = end, None
    if first_code is not None:
        statements.append(Statement(text[first_code:last_end], script.first_line - 1 + line_of(first_code)))
    return statements

