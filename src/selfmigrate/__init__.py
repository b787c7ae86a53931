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

import sys

__version__ = "0.1.0"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .backends.base import Snapshot as Snapshot
    from .backends.sqlite.snapshots import list_snapshots as list_snapshots
    from .backends.sqlite.snapshots import restore as restore
    from .backends.sqlite.snapshots import take_snapshot as take_snapshot
    from .core.migration import Migration as Migration
    from .core.registry import MigrationRegistry as MigrationRegistry
    from .core.runner import Runner as Runner
    from .core.status import Status as Status
    from .errors import AheadError as AheadError
    from .errors import BackupError as BackupError
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
    from .errors import TransformError as TransformError
    from .faces.flask import apply as apply
    from .ops.create import create as create
    from .ops.maintenance import resolve as resolve
    from .report import AppliedResult as AppliedResult
    from .report import MigrationReport as MigrationReport
    from .startup import migrate as migrate

# Public name -> the module that defines it. Each module is imported when one of
# its names is first used (PEP 562), so ``import selfmigrate`` costs next to
# nothing and a process pays only for what it calls (the startup benchmark:
# benchmarks/startup.py). A new public name goes both here and above.
_EXPORTS = {
    "Snapshot": "backends.base",
    "list_snapshots": "backends.sqlite.snapshots",
    "restore": "backends.sqlite.snapshots",
    "take_snapshot": "backends.sqlite.snapshots",
    "create": "ops.create",
    "AheadError": "errors",
    "BackupError": "errors",
    "ChecksumMismatch": "errors",
    "ConfigError": "errors",
    "DatabaseError": "errors",
    "DiscoveryError": "errors",
    "LockTimeout": "errors",
    "MigrationError": "errors",
    "OutOfOrderError": "errors",
    "SelfMigrateError": "errors",
    "StateError": "errors",
    "TrackerError": "errors",
    "TransformError": "errors",
    "apply": "faces.flask",
    "Migration": "core.migration",
    "MigrationRegistry": "core.registry",
    "AppliedResult": "report",
    "MigrationReport": "report",
    "resolve": "ops.maintenance",
    "Runner": "core.runner",
    "migrate": "startup",
    "Status": "core.status",
}

__all__ = sorted(_EXPORTS)


class _Package(type(sys)):  # type: ignore[misc]
    """The package module: public names are imported on first use."""

    def __getattr__(self, name: str) -> object:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        # Not cached here: the name always comes from the module now in
        # sys.modules, even after something (pytester, a reload) replaced it.
        # __import__, not importlib.import_module: importing importlib (and the
        # warnings module with it) would be a tenth of a no-op start's own cost.
        full = f"{__name__}.{module}"
        __import__(full)
        return getattr(sys.modules[full], name)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *_EXPORTS})


sys.modules[__name__].__class__ = _Package
