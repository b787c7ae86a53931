"""The pytest plugin: a freshly migrated database for every test.

Registered through the ``pytest11`` entry point, so installing selfmigrate is
enough. Importing it is cheap and it does nothing until a test asks for one of
its fixtures.
"""

from __future__ import annotations
