"""The migration checks' path in the flat layout, kept (docs/testing.rst named it).

Re-exports :mod:`selfmigrate.testing.roundtrip`, :mod:`selfmigrate.testing.checks` and
SQLite's schema reading; new code imports those. Holds nothing of its own.
"""

from __future__ import annotations

from .backends.base import Schema as Schema
from .backends.base import SchemaObject as SchemaObject
from .backends.sqlite.schema import normalise_sql as normalise_sql
from .backends.sqlite.schema import read_schema as read_schema
from .backends.sqlite.schema import schema as schema
from .testing.checks import edited_migrations as edited_migrations
from .testing.checks import schema_diff as schema_diff
from .testing.roundtrip import RoundTripReport as RoundTripReport
from .testing.roundtrip import check_round_trips as check_round_trips
