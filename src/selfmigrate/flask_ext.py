"""The Flask face's path in the flat layout, kept: re-exports :mod:`selfmigrate.faces.flask`.

For code that named ``selfmigrate.flask_ext.FlaskState`` (the API reference did) and the
like; new code imports :mod:`selfmigrate.faces.flask`. Holds nothing of its own.
"""

from __future__ import annotations

from .config import DEFAULT_CLI_GROUP as DEFAULT_CLI_GROUP
from .faces.flask import EXTENSION_KEY as EXTENSION_KEY
from .faces.flask import FlaskState as FlaskState
from .faces.flask import apply as apply
from .faces.flask import database_for as database_for
from .faces.flask import flask_group as flask_group
from .faces.flask import migrations_for as migrations_for
