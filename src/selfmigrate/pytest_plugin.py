"""The pytest plugin: a freshly migrated database for every test.

Registered through the ``pytest11`` entry point (named ``selfmigrate``; disable
it with ``-p no:selfmigrate``), so installing selfmigrate is enough. It adds:

- the fixtures ``migrated_db`` (a :class:`sqlite3.Connection`),
  ``migrated_db_path`` (a file path) and ``migrated_db_factory``, and the
  fixtures they read their settings from (see :mod:`selfmigrate.fixtures`);
- the ini options ``selfmigrate_migrations``, ``selfmigrate_table`` and
  ``selfmigrate_check_database``;
- the marker ``@pytest.mark.migrate_to(version)``.

Importing it is cheap and it does nothing — no file, no database — until a test
asks for one of its fixtures. The optional migration checks are ready-made
tests in :mod:`selfmigrate.pytest_checks`.
"""

from __future__ import annotations

import pytest

from .fixtures import (
    CHECK_DATABASE_OPTION,
    MARKER,
    MIGRATIONS_OPTION,
    TABLE_OPTION,
)
from .fixtures import _selfmigrate_templates as _selfmigrate_templates
from .fixtures import migrated_db as migrated_db
from .fixtures import migrated_db_factory as migrated_db_factory
from .fixtures import migrated_db_path as migrated_db_path
from .fixtures import selfmigrate_check_database as selfmigrate_check_database
from .fixtures import selfmigrate_migrations as selfmigrate_migrations
from .fixtures import selfmigrate_table as selfmigrate_table


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add selfmigrate's ini options."""
    parser.addini(
        MIGRATIONS_OPTION,
        type="linelist",
        default=[],
        help="selfmigrate: migrations for migrated_db (package names or directories relative to the"
        " ini file, one a line)",
    )
    parser.addini(
        TABLE_OPTION,
        default="",
        help="selfmigrate: tracker table of the test databases (default: schema_migrations)",
    )
    parser.addini(
        CHECK_DATABASE_OPTION,
        default="",
        help="selfmigrate: database the applied-migrations-unchanged check compares with",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``migrate_to`` marker."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(version): migrated_db and migrated_db_path are migrated only up to this version",
    )
