"""PostgreSQL database URLs: the spellings users copy, what libpq is given, and masking.

Holds :func:`libpq_url` (``postgres://``, ``postgresql+psycopg://``… to the
``postgresql://`` libpq reads) and :func:`mask` (every password hidden, for messages).
Imports nothing heavy; must not connect.
"""

from __future__ import annotations

import re

#: The URL schemes this backend answers for (lower case; SQLAlchemy's ``+driver`` forms
#: and the ``postgres://`` of hosting providers included).
SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2", "postgres+psycopg")

_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://", re.ASCII)
# user:password@ in the authority part (the password is everything up to the last @).
_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*):[^/?#]*@")
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&]password=)[^&#]*", re.IGNORECASE)


def is_postgres_url(database: str) -> bool:
    """Whether ``database`` is a URL of one of :data:`SCHEMES`."""
    match = _SCHEME.match(database)
    return match is not None and match.group("scheme").lower() in SCHEMES


def libpq_url(database: str) -> str:
    """``database`` as libpq reads it: the scheme ``postgresql://``, the rest untouched.

    libpq then takes what the URL leaves out (password, host, port…) from the
    ``PG*`` environment variables and ``~/.pgpass``, as ``psql`` does.

    :raises ValueError: not a PostgreSQL URL.
    """
    match = _SCHEME.match(database)
    if match is None or match.group("scheme").lower() not in SCHEMES:
        raise ValueError(f"not a PostgreSQL URL: {mask(database)}")
    return "postgresql://" + database[match.end() :]


def mask(database: str) -> str:
    """``database`` with any password (in the authority or a ``password=`` parameter) shown as ``***``."""
    masked = _PASSWORD.sub(r"\g<head>:***@", database)
    return _QUERY_PASSWORD.sub(r"\g<key>***", masked)
