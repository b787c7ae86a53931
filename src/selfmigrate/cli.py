"""The command line's path in the flat layout, kept: re-exports :mod:`selfmigrate.faces.cli.main`.

For code that embeds the group (``from selfmigrate.cli import cli``) or calls
:func:`main`; new code imports :mod:`selfmigrate.faces.cli.main`. Holds nothing of its own.
"""

from __future__ import annotations

from .faces.cli.main import cli as cli
from .faces.cli.main import main as main
from .faces.flask import flask_group as flask_group
