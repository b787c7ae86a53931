"""selfmigrate's example app: saved searches in a SQLite database.

The database migrates itself when the app starts: ``create_app`` calls
:func:`selfmigrate.apply`, which applies every pending migration from the
``flask_app.migrations`` package before the app serves a request.
"""

from __future__ import annotations

import logging
import typing as t

from flask import Flask
from flask.logging import default_handler

import selfmigrate

from . import db, searches


def create_app(test_config: t.Mapping[str, t.Any] | None = None) -> Flask:
    """Create and configure the app; its database is migrated on the way."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        SECRET_KEY="dev",
        DATABASE="app.sqlite",  # relative: in the instance folder
    )
    if test_config is None:
        # In production: instance/config.py, then FLASK_* environment variables
        # (FLASK_DATABASE=/data/app.sqlite, FLASK_SELFMIGRATE_LOCK_TIMEOUT=120).
        app.config.from_pyfile("config.py", silent=True)
        app.config.from_prefixed_env()
    else:
        app.config.update(test_config)
    if not app.testing:
        show_migration_log()

    # When this returns, the database is at the newest version, or it raised
    # an error naming the migration that failed (the app does not start).
    selfmigrate.apply(app)

    db.init_app(app)
    app.register_blueprint(searches.bp)
    return app


def show_migration_log() -> None:
    """Show selfmigrate's INFO lines (one per applied migration) where Flask logs.

    selfmigrate only emits records on the ``selfmigrate`` logger; where they go
    is the app's choice. Here: Flask's default handler (stderr), unless the
    logger was configured already.
    """
    logger = logging.getLogger("selfmigrate")
    if not logger.handlers:
        logger.addHandler(default_handler)
        logger.setLevel(logging.INFO)
