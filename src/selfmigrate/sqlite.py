"""``selfmigrate.sqlite``: the SQLite face, helpers a SQLite migration may call.

Holds the public SQLite names, each loaded from :mod:`selfmigrate.backends.sqlite` on
first use (PEP 562), so importing this module imports neither :mod:`sqlite3` nor the
backend. Must hold no code of its own: the backend owns it.
"""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from .backends.base import Statement as Statement
    from .backends.base import StatementError as StatementError
    from .backends.sqlite.backend import NO_TRANSACTION_PRAGMAS as NO_TRANSACTION_PRAGMAS
    from .backends.sqlite.backend import SQLiteBackend as SQLiteBackend
    from .backends.sqlite.connection import database_path as database_path
    from .backends.sqlite.lock import LOCK_SUFFIX as LOCK_SUFFIX
    from .backends.sqlite.lock import MigrationLock as MigrationLock
    from .backends.sqlite.sqltext import split_statements as split_statements
    from .backends.sqlite.transform import transform as transform

# Public name -> the module that defines it. SQLite helpers for migrations (the
# ``transform`` table rebuild) are defined under backends/sqlite/ too.
_EXPORTS = {
    "Statement": "selfmigrate.backends.base",
    "StatementError": "selfmigrate.backends.base",
    "NO_TRANSACTION_PRAGMAS": "selfmigrate.backends.sqlite.backend",
    "SQLiteBackend": "selfmigrate.backends.sqlite.backend",
    "database_path": "selfmigrate.backends.sqlite.connection",
    "LOCK_SUFFIX": "selfmigrate.backends.sqlite.lock",
    "MigrationLock": "selfmigrate.backends.sqlite.lock",
    "split_statements": "selfmigrate.backends.sqlite.sqltext",
    "transform": "selfmigrate.backends.sqlite.transform",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
