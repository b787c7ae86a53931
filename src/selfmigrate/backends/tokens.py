"""SQL text cut into tokens (space, comments, quoted text, semicolons) and file lines.

Holds :func:`sql_tokens`, :func:`line_of` and :func:`line_finder`, as SQLite's tokenizer reads SQL: shared by
the marker lines of a ``.sql`` migration (core, with :func:`marker_chunks`, which also knows
PostgreSQL's quoted text) and SQLite's statement splitter. Must not
know connections or engines' other rules (PostgreSQL's splitter has its own lexer).
"""

from __future__ import annotations

import bisect
import re

TYPE_CHECKING = False  # not typing's: see backends/base.py
if TYPE_CHECKING:
    import typing as t

#: The characters SQLite's tokenizer takes for white space (``tokenize.c``,
#: ``complete.c``). Python's :meth:`str.isspace` knows more (``\x0b``, ``\x85``,
#: ``\u2028`` …): to SQLite those are an illegal character or part of a word.
SQL_WHITESPACE = " \t\n\f\r"

#: One token of SQL as SQLite's tokenizer cuts it, as far as splitting needs:
#: white space, a ``--`` comment (to the next ``\n``: SQLite knows no other line
#: end), a ``/* */`` comment (unterminated: to the end; a bare ``/*`` ending the
#: text is two characters of code, as in SQLite), a quoted string or
#: identifier (a doubled quote inside is an escaped one; ``[…]`` has no escape;
#: unterminated: to the end), a semicolon, or anything else. Compiled (and cached by
#: :mod:`re`) on first use: a start reads its files with :data:`_CHUNK` only.
_TOKEN = (
    r"""(?P<space>[ \t\n\f\r]+)
    |(?P<line>--[^\n]*)
    |(?P<block>/\*.*?\*/|/\*.+)
    |(?P<quoted>'(?:[^']+|'')*'?|"(?:[^"]+|"")*"?|`(?:[^`]+|``)*`?|\[[^\]]*\]?)
    |(?P<semicolon>;)
    |(?P<other>[^ \t\n\f\r;'"`\[/-]+|.)"""
)


def sql_tokens(text: str) -> t.Iterator[tuple[str, int, int]]:
    """Cut SQL text into tokens: ``(kind, start, end)`` for every piece of ``text``.

    ``kind`` is ``"space"``, ``"line"`` (a ``--`` comment, without its ``\\n``),
    ``"block"`` (a ``/* */`` comment), ``"quoted"``, ``"semicolon"`` or
    ``"other"``. The tokens cover ``text`` end to end, as SQLite would read it.
    """
    for match in re.finditer(_TOKEN, text, re.DOTALL | re.VERBOSE):
        begin, end = match.span()
        # Every alternative is a named group: lastgroup is never None (``or`` satisfies the types).
        yield match.lastgroup or "other", begin, end


#: :data:`_TOKEN` with white space and code run together (``code``: anything up to the
#: next comment, quote or semicolon, white space included): the same comments, quotes
#: and semicolons at a fraction of the tokens, for readers that need no more.
_CHUNK = re.compile(
    r"""(?P<line>--[^\n]*)
    |(?P<block>/\*.*?\*/|/\*.+)
    |(?P<quoted>'(?:[^']+|'')*'?|"(?:[^"]+|"")*"?|`(?:[^`]+|``)*`?|\[[^\]]*\]?)
    |(?P<semicolon>;)
    |(?P<code>[^;'"`\[/-]+|.)""",
    re.DOTALL | re.VERBOSE,
)


def sql_chunks(text: str) -> t.Iterator[tuple[str, int, int]]:
    """:func:`sql_tokens` with each run of space and other code as one ``"code"`` chunk.

    ``kind`` is ``"line"``, ``"block"``, ``"quoted"`` and ``"semicolon"`` exactly
    where :func:`sql_tokens` has them, or ``"code"``: text between those, which
    may be white space only (``text[begin:end].strip(SQL_WHITESPACE)`` tells).
    """
    for match in _CHUNK.finditer(text):
        begin, end = match.span()
        yield match.lastgroup or "code", begin, end


#: :data:`_CHUNK` for finding marker lines in a file that may run on either engine: also
#: PostgreSQL's quoted text, which SQLite's tokenizer reads as code. A dollar-quoted
#: string (``$$…$$``, ``$tag$…$tag$``, starting where a word can) and an escape string
#: (``E'…'``, ``\\'`` escaping a quote) are ``"quoted"``: read with SQLite's rules, an
#: apostrophe inside ``$$it's$$`` opened a string that hid the ``-- migrate:down`` line,
#: and the down ran on the way up. Neither is valid SQLite outside a string or comment
#: (``$tag`` is a parameter there, which a migration cannot bind; ``e'x'`` is a column
#: with an alias, a backslash in it the only difference), so no SQLite file that can run
#: reads differently. Compiled (and cached by :mod:`re`) on first use, as :data:`_TOKEN`:
#: its character ranges take milliseconds to compile, and few files need it.
_MARKER_CHUNK = (
    r"""(?P<line>--[^\n]*)
    |(?P<block>/\*.*?\*/|/\*.+)
    |(?P<dollar>(?<![\w$])\$(?P<tag>(?:[A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?)\$(?:.*?\$(?P=tag)\$|.*))
    |(?P<escape>(?<![\w$])[Ee]'(?:[^'\\]+|\\.|'')*'?)
    |(?P<quoted>'(?:[^']+|'')*'?|"(?:[^"]+|"")*"?|`(?:[^`]+|``)*`?|\[[^\]]*\]?)
    |(?P<semicolon>;)
    |(?P<code>(?:[^;'"`\[/$Ee-]+|[Ee](?!')|(?<=[\w$])[Ee])+|.)"""
)


def _may_hold_postgres_quote(text: str) -> bool:
    """Whether a dollar-quoted or ``E''`` string could start anywhere in ``text`` (where a word can).

    A few :meth:`str.find` calls: most files have no ``$`` and no ``E'`` after a word's
    end (a literal such as ``'table'`` has ``e'`` inside a word), and take :func:`sql_chunks`.
    """
    for needle in ("$", "e'", "E'"):
        i = text.find(needle)
        while i != -1:
            before = text[i - 1] if i else " "
            if not (before.isalnum() or before in "_$" or ord(before) >= 0x80):
                return True
            i = text.find(needle, i + 1)
    return False


def marker_chunks(text: str) -> t.Iterator[tuple[str, int, int]]:
    """:func:`sql_chunks` that also knows PostgreSQL's dollar-quoted and ``E''`` strings (as ``"quoted"``).

    For the marker lines of a ``.sql`` migration, which either engine may run: a
    marker inside such a string is text, and a quote inside one opens nothing.
    """
    if not _may_hold_postgres_quote(text):
        # Neither kind of string can start anywhere: the same chunks as sql_chunks, faster.
        return sql_chunks(text)
    return _marker_chunks(text)


def _marker_chunks(text: str) -> t.Iterator[tuple[str, int, int]]:
    for match in re.finditer(_MARKER_CHUNK, text, re.DOTALL | re.VERBOSE):
        begin, end = match.span()
        kind = match.lastgroup or "code"
        yield ("quoted" if kind in ("dollar", "escape", "tag") else kind), begin, end


def line_of(text: str, offset: int) -> int:
    """The 1-based line of ``text`` that ``offset`` is on.

    A line ends at ``\\n``, ``\\r\\n`` or a lone ``\\r``: the line ends an editor
    shows, Python's universal newlines and :func:`~selfmigrate.core.migration.checksum`
    know. The other characters ``str.splitlines()`` splits at (``\\x0b``,
    ``\\x0c``, ``\\x1c``–``\\x1e``, ``\\x85``, ``\\u2028``, ``\\u2029``) are
    characters within a line, as for editors, ``grep -n`` and Python's compiler.
    """
    return 1 + text.count("\n", 0, offset) + text.count("\r", 0, offset) - text.count("\r\n", 0, offset)


_LINE_END = re.compile(r"\r\n|\r|\n")


def line_finder(text: str) -> t.Callable[[int], int]:
    """:func:`line_of` for many offsets of one ``text``: the line ends are found once.

    Offsets between the ``\\r`` and ``\\n`` of a ``\\r\\n`` (no token starts there)
    count as the line that pair ends.

    A script of N statements asks for N lines; counting from the start each time
    would be quadratic (a 15 000-statement data script took seconds).
    """
    starts = [match.end() for match in _LINE_END.finditer(text)]
    return lambda offset: 1 + bisect.bisect_right(starts, offset)
