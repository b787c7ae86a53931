"""Writing a new migration file from a template: :func:`create`.

Holds the file-naming side of migrations: the next version, the slug, the template.
Must not know databases; where a location's folder is comes from core.locations.
"""

from __future__ import annotations

import importlib.resources
import logging
import re
import typing as t
import unicodedata

from ..core.locations import folder_to_write
from ..core.registry import MigrationRegistry
from ..errors import ConfigError

if t.TYPE_CHECKING:
    from pathlib import Path

    from ..core.locations import LocationSpec

# The logger keeps the name it had before the package had layers: users configure it.
logger = logging.getLogger("selfmigrate.create")

#: The longest slug :func:`create` writes.
MAX_SLUG_LENGTH = 60


def slugify(message: str) -> str:
    """Turn a message into a file-name slug: lower case ASCII letters, digits, ``_``.

    :raises ConfigError: nothing usable is left (an empty or all-symbol message).
    """
    # Accented letters keep their base letter ("café" → "cafe") rather than vanishing.
    ascii_text = unicodedata.normalize("NFKD", message).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")[:MAX_SLUG_LENGTH].rstrip("_")
    if not slug:
        raise ConfigError(
            f"The message {message!r} gives an empty file name. Describe the change in words,"
            ' for example "add user avatar column".'
        )
    return slug


def create(location: LocationSpec, message: str, *, sql: bool = False) -> Path:
    """Write the next numbered migration into ``location`` and return its path.

    The version is one more than the highest present, written with four digits
    at least; the name is the message as a slug. A missing directory is created,
    with an empty ``__init__.py`` when its parent is a package.

    :param location: a directory path, or the name of a package on disk.
    :param message: what the migration does (``"add user avatar column"``).
    :param sql: write a ``.sql`` file instead of a ``.py`` file.
    :raises ConfigError: an unusable message, or a package inside a zip file.
    """
    slug = slugify(message)
    folder = folder_to_write(location)
    if not folder.exists():
        folder.mkdir(parents=True)
        if (folder.parent / "__init__.py").is_file():
            # Inside a package: a package too, so that it is importable as
            # "<package>.migrations" (apply(app)'s default) and ships in the wheel.
            # A top-level folder stays a plain directory: an __init__.py would make
            # a generic name like "migrations" an importable top-level package.
            (folder / "__init__.py").write_text("", encoding="utf-8")
            logger.info("Created migrations package %s.", folder)
        else:
            logger.info("Created migrations directory %s.", folder)
    head = MigrationRegistry(folder).head
    version = (head or 0) + 1
    kind = "sql" if sql else "py"
    path = folder / f"{version:04d}_{slug}.{kind}"
    template = importlib.resources.files("selfmigrate").joinpath("templates", f"migration.{kind}.template")
    summary = " ".join(message.split())
    if kind == "py":
        # The message becomes the module docstring: keep quotes and backslashes literal.
        summary = summary.replace("\\", "\\\\").replace('"', '\\"')
    text = template.read_text(encoding="utf-8").format(message=summary)
    with open(path, "x", encoding="utf-8") as f:
        f.write(text)
    logger.info("Created migration %s.", path)
    return path
