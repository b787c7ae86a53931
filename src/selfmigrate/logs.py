"""selfmigrate's loggers, looked up only when a record can reach a handler: :class:`Logger`.

Holds the one way the library logs on the paths a start takes (the runner, snapshots, the
quick check). Imports only :mod:`sys`; must not know anything else of selfmigrate. The why
(the cost of importing :mod:`logging` on a start) is in docs/startup.rst.
"""

from __future__ import annotations

import sys


class Logger:
    """The records of logger ``name``, which is looked up when a record can reach a handler.

    A handler exists only if some code imported :mod:`logging`; without one, a
    record below WARNING is dropped (the last-resort handler takes WARNING and
    up), so INFO and DEBUG records are skipped without importing the module
    (several milliseconds of a start that applies something). WARNING and up
    always go to :func:`logging.getLogger`. The logger itself is the one
    ``getLogger(name)`` returns, whoever calls it first: an application
    configures ``logging.getLogger("selfmigrate")`` and its children as usual.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Logger({self.name!r})"

    def debug(self, message: str, *args: object) -> None:
        logging = sys.modules.get("logging")
        if logging is not None:
            logging.getLogger(self.name).debug(message, *args, stacklevel=2)

    def info(self, message: str, *args: object) -> None:
        logging = sys.modules.get("logging")
        if logging is not None:
            logging.getLogger(self.name).info(message, *args, stacklevel=2)

    def warning(self, message: str, *args: object) -> None:
        import logging

        logging.getLogger(self.name).warning(message, *args, stacklevel=2)

    def error(self, message: str, *args: object) -> None:
        import logging

        logging.getLogger(self.name).error(message, *args, stacklevel=2)
