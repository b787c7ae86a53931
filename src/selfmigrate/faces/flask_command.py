"""The ``flask selfmigrate`` command group as a Flask CLI plugin (entry point ``flask.commands``).

Holds :data:`cli`, which Flask adds to every ``flask`` command line before it loads
the app, so that the group can tell :func:`selfmigrate.apply` that the app is loaded
for one of its commands. Imported only by Flask's command line.
"""

from __future__ import annotations

from ..config import DEFAULT_CLI_GROUP
from .flask import flask_group

#: The ``flask selfmigrate`` group.
cli = flask_group(DEFAULT_CLI_GROUP)
