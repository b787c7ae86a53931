"""Finding migration files: :class:`MigrationRegistry`, pure and strict.

Holds discovery: list the locations, check every name against the naming rule, refuse
duplicate versions, all before a database is touched. Must not know databases; it imports
no migration module and reads no file (a checksum is read on first use).
"""

from __future__ import annotations

import logging
import os
import re
import typing as t

from ..errors import DiscoveryError
from .fingerprint import fingerprint_of
from .locations import Location as Location
from .locations import candidates, is_candidate
from .locations import resolve_location as resolve_location
from .migration import Kind, Migration

if t.TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from .locations import LocationSpec as LocationSpec
    from .locations import LocationsSpec as LocationsSpec
    from .locations import Stat

logger = logging.getLogger("selfmigrate.registry")

#: ``NNNN_slug.sql`` or ``NNNN_slug.py``: a decimal version, an underscore, a slug.
NAME_PATTERN = re.compile(r"(?P<version>[0-9]+)_(?P<name>[A-Za-z0-9_]+)\.(?P<kind>sql|py)")

#: Another tool's name for a migration file: Flyway's ``V1__init.sql``, sqlx's and
#: golang-migrate's ``20220505083406_create-events.up.sql``, ``0001.initial.sql``.
_OTHER_NAME = re.compile(
    r"[Vv]?(?P<version>[0-9](?:[0-9_.-]*[0-9])?)(?:__|[_.-])(?P<slug>.*?)(?:\.(?:up|down|rollback))?\.(?P<kind>sql|py)",
    re.IGNORECASE,
)

#: The ends of one direction's file of a pair: golang-migrate's and sqlx's, yoyo's rollback.
_PAIR_ENDINGS = (".up.sql", ".down.sql", ".rollback.sql")

#: What a tool that keeps one folder per migration puts in it: Prisma's and drizzle's
#: ``migration.sql``, Diesel's ``up.sql`` (and ``down.sql``).
_FOLDER_LAYOUT = ("migration.sql", "up.sql")

#: The largest version the tracker can store (a signed 64-bit database integer).
MAX_VERSION = 2**63 - 1


class MigrationRegistry:
    """The migrations found in one or more locations, merged and checked.

    The registry is a plain object built by its caller; nothing is registered
    globally. Discovery runs on first use of :attr:`migrations` and its result
    is kept for the life of the object.

    :param locations: a package name, a directory path, or a sequence of them.
    """

    def __init__(self, locations: LocationsSpec) -> None:
        if isinstance(locations, (str, os.PathLike)):
            locations = [locations]
        if not locations:
            raise DiscoveryError("No migrations location was given. Name a package or a directory.")
        self._specs: tuple[LocationSpec, ...] = tuple(locations)
        self._locations: tuple[Location, ...] | None = None
        self._migrations: tuple[Migration, ...] | None = None
        # What discovery listed, per folder on disk (None: a location inside a zip file):
        # the fingerprint is made of exactly the listing the migrations came from.
        self._listed: list[tuple[str, list[tuple[str, Stat]]]] | None = None

    def __repr__(self) -> str:
        return f"MigrationRegistry({list(self._specs)!r})"

    @property
    def locations(self) -> tuple[Location, ...]:
        """The resolved locations, in the order given."""
        if self._locations is None:
            self._locations = tuple(resolve_location(spec) for spec in self._specs)
        return self._locations

    @property
    def migrations(self) -> tuple[Migration, ...]:
        """Every migration, sorted by version.

        :raises DiscoveryError: a location is missing, a file breaks the naming
            rule, or two files share a version. Files are not read here: a
            file's checksum is read on first use, and its text when it is loaded.
        """
        if self._migrations is None:
            self._migrations = self._discover()
        return self._migrations

    def get(self, version: int) -> Migration | None:
        """Return the migration with ``version``, or ``None``."""
        for migration in self.migrations:
            if migration.version == version:
                return migration
        return None

    def fingerprint(self) -> str | None:
        """The files' fingerprint (see :mod:`selfmigrate.core.fingerprint`), or ``None``.

        Made of the listing discovery saw (the names, sizes and times each
        migration had when it was found), never of a later one: a file added or
        edited after discovery is not in it, so the next start sees the change.
        ``None`` when a location is inside a zip file (no modification times):
        then every start reads the files.

        :raises DiscoveryError: as :attr:`migrations`.
        """
        self.migrations  # noqa: B018 - discovery fills the listing
        return None if self._listed is None else fingerprint_of(self._listed)

    @property
    def head(self) -> int | None:
        """The highest version, or ``None`` when there are no migrations."""
        return self.migrations[-1].version if self.migrations else None

    def _discover(self) -> tuple[Migration, ...]:
        found: list[Migration] = []
        bad_names: list[str] = []
        listing: list[tuple[str, list[tuple[str, Stat]]]] | None = []
        for location in self.locations:
            package = location.name if location.kind == "package" else None
            entries: list[tuple[str, Stat]] = []
            if listing is not None and location.path is not None:
                listing.append((str(location.path), entries))
            else:
                listing = None
            for filename, where, entry, stat in candidates(location.root):
                if stat is not None:
                    entries.append((filename, stat))
                match = NAME_PATTERN.fullmatch(filename)
                if match is None:
                    bad_names.append(where)
                    continue
                found.append(_migration(entry, stat, where, match, package))
        for location in self.locations:
            if location.path is not None:
                _warn_nested(str(location.path))
        if bad_names:
            _alembic(bad_names)
            listed = "\n  ".join(_with_new_name(where) for where in sorted(bad_names))
            pairs = ""
            if any(name.endswith(_PAIR_ENDINGS) for name in bad_names):
                # golang-migrate's (and sqlx's, yoyo's) layout: one file per direction.
                pairs = (
                    " A NNNN_slug.up.sql / NNNN_slug.down.sql (or .rollback.sql) pair is one file here:"
                    " NNNN_slug.sql with the up, then a line '-- migrate:down' and the down."
                )
            raise DiscoveryError(
                f"These files in a migrations location do not follow the naming rule"
                f" NNNN_slug.sql / NNNN_slug.py:\n  {listed}\n"
                "Rename them (for example 0007_add_index.sql), or start the name with '_'"
                f" if they are helpers, not migrations.{pairs}",
                paths=bad_names,
            )
        found.sort(key=lambda m: (m.version, m.location))
        by_version: dict[int, list[Migration]] = {}
        for migration in found:
            by_version.setdefault(migration.version, []).append(migration)
        duplicates = [group for group in by_version.values() if len(group) > 1]
        if duplicates:
            lines = []
            for group in duplicates:
                files = ", ".join(m.location for m in group)
                lines.append(f"version {group[0].version}: {files}")
            listed = "\n  ".join(lines)
            raise DiscoveryError(
                f"Two or more migration files share a version:\n  {listed}\n"
                "This is usually two branches merged. Renumber the newer file to the next"
                " free version.",
                paths=[m.location for group in duplicates for m in group],
            )
        self._listed = listing
        return tuple(found)


#: At most this many nested files are named in the warning about them.
_NESTED_SHOWN = 5


def suggested_name(filename: str) -> str | None:
    """The name that follows the naming rule for another tool's migration file, or ``None``.

    ``V1__init.sql`` → ``0001_init.sql``; ``20220505083406_create-events.sql`` →
    ``20220505083406_create_events.sql``; ``0003_x.SQL`` → ``0003_x.sql``; a ``.up.sql``/``.down.sql`` pair → the one
    ``.sql`` file they merge into. ``None`` for a name without a leading version.
    """
    match = _OTHER_NAME.fullmatch(filename)
    if match is None:
        return None
    digits = re.sub(r"[^0-9]", "", match["version"])
    if digits != match["version"] and len(digits) < 8:
        return None  # Flyway's V1_1 / V1.1 is 1.1, not 11: no number keeps its order
    slug = re.sub(r"[^A-Za-z0-9_]+", "_", match["slug"]).strip("_") or "migration"
    name = f"{digits.zfill(4)}_{slug}.{match['kind'].lower()}"
    return name if NAME_PATTERN.fullmatch(name) and name != filename and int(digits) > 0 else None


def _with_new_name(where: str) -> str:
    name = os.path.basename(where)
    new = suggested_name(name)
    if new is None:
        return where
    return f"{where}  ({'merge into' if name.endswith(_PAIR_ENDINGS) else 'rename'}: {new})"


def _alembic(bad_names: list[str]) -> None:
    """Refuse an Alembic (Flask-Migrate) folder by its name: renaming its env.py would not help."""
    from ..errors import DiscoveryError

    for where in bad_names:
        if os.path.basename(where) != "env.py":
            continue
        folder = os.path.dirname(where)
        if not any(os.path.exists(os.path.join(folder, name)) for name in ("alembic.ini", "script.py.mako")):
            continue
        raise DiscoveryError(
            f"Migrations folder {folder or '.'} is an Alembic (Flask-Migrate) folder: env.py, script.py.mako"
            " and revisions in versions/. selfmigrate does not run Alembic revisions, and nothing in that"
            " folder is renamed into a migration. Point the migrations setting at a folder (or package)"
            " of its own, and write the schema the revisions built as its first migration: the steps"
            " are in docs/moving.rst, 'From Flask-Migrate (Alembic)'.",
            paths=[where],
        )


def _folder_layout(folder: str, subfolders: list[str]) -> None:
    """Refuse migrations kept one folder each (Prisma, drizzle, Diesel): read as they are, none is found.

    The folder would hold no migration file, so every start would say "nothing to
    apply" while none of them ever ran.
    """
    from ..errors import DiscoveryError

    found = []
    for subfolder in subfolders:
        for name in _FOLDER_LAYOUT:
            if os.path.isfile(os.path.join(subfolder, name)):
                found.append((subfolder, name))
                break
    if not found:
        return
    lines = []
    for subfolder, name in found[:_NESTED_SHOWN]:
        as_file = os.path.basename(subfolder) + ".sql"
        new = as_file if NAME_PATTERN.fullmatch(as_file) else suggested_name(as_file)
        lines.append(f"{os.path.join(subfolder, name)}  (as: {new or 'NNNN_slug.sql'})")
    more = f"\n  and {len(found) - _NESTED_SHOWN} more" if len(found) > _NESTED_SHOWN else ""
    raise DiscoveryError(
        f"Migrations folder {folder} keeps its migrations one folder each (as Prisma, drizzle or"
        " Diesel do); selfmigrate reads one file per migration, at the top level of the folder, so it"
        " would find none of these:\n  " + "\n  ".join(lines) + more + "\n"
        "Make each one a file in that folder, named as shown: migration.sql as it is; up.sql, then"
        " a line '-- migrate:down', then down.sql. (A subfolder whose name starts with '_' is not"
        " looked into.)",
        paths=[path for path, _ in found],
    )


def _warn_nested(folder: str) -> None:
    """Warn about files named like migrations in ``folder``'s subfolders, which are not migrations.

    Discovery reads the top level of a migrations folder only (a subfolder may hold
    anything: fixtures, an archive). A file there named like a migration was most
    likely meant to be one, and would otherwise never be applied, silently. Only the
    full run looks (a no-op start never gets here); subfolders whose name starts with
    ``_`` or ``.`` (``__pycache__``) are not looked into.
    """
    try:
        with os.scandir(folder) as entries:
            subfolders = sorted(e.path for e in entries if not e.name.startswith(("_", ".")) and e.is_dir())
    except OSError:
        return  # the listing itself reported it, or will
    _folder_layout(folder, subfolders)
    nested: list[str] = []
    for subfolder in subfolders:
        try:
            names = sorted(os.listdir(subfolder))
        except OSError:
            continue
        nested.extend(os.path.join(subfolder, n) for n in names if is_candidate(n) and NAME_PATTERN.fullmatch(n))
    if not nested:
        return
    shown = ", ".join(nested[:_NESTED_SHOWN]) + (
        f" and {len(nested) - _NESTED_SHOWN} more" if len(nested) > _NESTED_SHOWN else ""
    )
    logger.warning(
        "%d file(s) in subfolders of migrations folder %s are named like migrations but are not"
        " applied: %s. selfmigrate reads only the top level of a migrations folder. Move them up"
        " into %s, or start the subfolder's name with '_' if they are not migrations.",
        len(nested),
        folder,
        shown,
        folder,
    )


def _migration(
    entry: Traversable | None, stat: Stat | None, where: str, match: re.Match[str], package: str | None
) -> Migration:
    kind = t.cast(Kind, match["kind"])
    version = int(match["version"])
    if version == 0:
        # 0 is the version of a database with nothing applied: 'rollback --to 0' undoes
        # everything, and status shows 0 for "none". A migration 0 would be neither.
        raise DiscoveryError(
            f"Migration file {where} has version 0, which stands for a database with no migration"
            " applied ('rollback --to 0' undoes every migration). Renumber it to 1 or more, before"
            " the next file ('python -m selfmigrate create' numbers files from 0001).",
            paths=[where],
        )
    if version > MAX_VERSION:
        raise DiscoveryError(
            f"Migration file {where} has version {version}, more than the database can store"
            f" (at most {MAX_VERSION}). Renumber it after the newest migration; 'python -m"
            " selfmigrate create' numbers files for you.",
            paths=[where],
        )
    # Filled as Migration's own __init__ fills it, without its object.__setattr__ per
    # field (a frozen dataclass's): discovery makes one for every file at every start
    # that has something to do.
    migration = object.__new__(Migration)
    migration.__dict__.update(
        version=version, name=match["name"], kind=kind, location=where, resource=entry, package=package, stat=stat
    )
    return migration
