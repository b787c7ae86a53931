"""selfmigrate: the database migrates itself when the app starts.

In a Flask app factory::

    import selfmigrate

    def create_app():
        app = Flask(__name__, instance_relative_config=True)
        app.config.from_mapping(DATABASE="app.sqlite")
        selfmigrate.apply(app)
        return app

Without Flask: ``selfmigrate.migrate("app.sqlite", "myapp.migrations")``.
"""

from __future__ import annotations

from .create import create as create
from .errors import ChecksumMismatch as ChecksumMismatch
from .errors import ConfigError as ConfigError
from .errors import DatabaseError as DatabaseError
from .errors import DiscoveryError as DiscoveryError
from .errors import LockTimeout as LockTimeout
from .errors import MigrationError as MigrationError
from .errors import OutOfOrderError as OutOfOrderError
from .errors import SelfMigrateError as SelfMigrateError
from .errors import StateError as StateError
from .errors import TrackerError as TrackerError
from .flask_ext import apply as apply
from .migration import Migration as Migration
from .registry import MigrationRegistry as MigrationRegistry
from .report import AppliedResult as AppliedResult
from .report import MigrationReport as MigrationReport
from .runner import Runner as Runner
from .runner import migrate as migrate
from .status import Status as Status

__version__ = "0.1.0"
