"""selfmigrate's ready-made checks, run on the example app's migrations.

Every migration applies to an empty database, each one with a down goes up,
down and up again leaving the same schema, and no two share a version. (The
fourth check compares with a copy of a production database; it is skipped
unless one is configured with ``selfmigrate_check_database``.)
"""

from __future__ import annotations

from selfmigrate.pytest_checks import (  # noqa: F401
    test_applied_migrations_unchanged,
    test_migration_versions_unique,
    test_migrations_apply_from_empty,
    test_migrations_round_trip,
)
