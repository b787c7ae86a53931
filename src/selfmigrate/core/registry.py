"""Finding migration files: :class:`MigrationRegistry`, pure and strict.

Holds discovery: list the locations, check every name against the naming rule, refuse
duplicate versions, all before a database is touched. Must not know databases; it imports
no migration module and reads no file (a checksum is read on first use).
"""

from __future__ import annotations

import os
import re

from ..errors import DiscoveryError
from .fingerprint import Files
from .locations import Location as Location
from .locations import examine_folder, is_candidate, list_folder
from .locations import resolve_location as resolve_location
from .migration import Migration

TYPE_CHECKING = False  # not typing's: see backends/base.py
if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from .locations import LocationSpec as LocationSpec
    from .locations import LocationsSpec as LocationsSpec
    from .locations import Seen, Stat
    from .migration import Kind


#: ``NNNN_slug.sql`` or ``NNNN_slug.py``: a decimal version, an underscore, a slug.
NAME_PATTERN = re.compile(r"(?P<version>[0-9]+)_(?P<name>[A-Za-z0-9_]+)\.(?P<kind>sql|py)")

#: The naming rule for a listing's names joined by newlines, one match per line (see :func:`_fast`).
_NAME_LINES = re.compile(r"^([0-9]+)_([A-Za-z0-9_]+)\.(sql|py)$", re.MULTILINE)

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


def versions_of(filenames: list[str]) -> list[int | None]:
    """The version of each file named by the naming rule (``0002_x.sql`` → ``2``), ``None`` for the others.

    All names at once when every one follows the rule (see :func:`_fast`), else one by one.
    """
    joined = "\n".join(filenames)
    parts = _NAME_LINES.findall(joined)
    if len(parts) == len(filenames) and joined.count("\n") == max(len(filenames) - 1, 0):
        return [int(version) for version, _, _ in parts]
    matches = [NAME_PATTERN.fullmatch(name) for name in filenames]
    return [None if match is None else int(match["version"]) for match in matches]


class MigrationRegistry:
    """The migrations found in one or more locations, merged and checked.

    The registry is a plain object built by its caller; nothing is registered
    globally. Discovery runs on first use of :attr:`migrations` and its result
    is kept for the life of the object.

    :param locations: a package name, a directory path, or a sequence of them.
    :param seen: what the quick check examined of these locations' folders (each
        folder's absolute path, candidate names, sizes and times, and every name in
        it; ``selfmigrate.migrate`` passes it). Discovery takes it as its
        own listing when it is of exactly the folders the locations resolve to, in
        order, instead of listing them again: the migrations, the fingerprint and the
        certificate are then all made of that one listing.
    """

    def __init__(self, locations: LocationsSpec, *, seen: Seen | None = None) -> None:
        if isinstance(locations, (str, os.PathLike)):
            locations = [locations]
        if not locations:
            raise DiscoveryError("No migrations location was given. Name a package or a directory.")
        self._specs: tuple[LocationSpec, ...] = tuple(locations)
        self._seen = seen
        self._locations: tuple[Location, ...] | None = None
        self._migrations: tuple[Migration, ...] | None = None
        # What discovery listed, per folder on disk (None: a location inside a zip file):
        # the fingerprint is made of exactly the listing the migrations came from.
        self._files: Files | None = None

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
        files = self.files()
        return None if files is None else files.text()

    def files(self) -> Files | None:
        """The listing :meth:`fingerprint` is made of, as the runner takes it (no text), or ``None``.

        :raises DiscoveryError: as :attr:`migrations`.
        """
        self.migrations  # noqa: B018 - discovery fills the listing
        return self._files

    @property
    def head(self) -> int | None:
        """The highest version, or ``None`` when there are no migrations."""
        return self.migrations[-1].version if self.migrations else None

    def _discover(self) -> tuple[Migration, ...]:
        seen = self._seen
        self._seen = None
        if seen is not None and (
            len(seen) != len(self.locations)
            or any(
                location.folder is None or os.path.abspath(location.folder) != folder
                for location, (folder, _) in zip(self.locations, seen, strict=False)
            )
        ):
            seen = None  # not of these very folders: list them here
        found: list[Migration] = []
        bad_names: list[str] = []
        listings: list[tuple[str, list[str], list[str]]] = []
        folders: list[tuple[str, list[str], list[int]]] | None = []
        for index, location in enumerate(self.locations):
            package = location.name if location.kind == "package" else None
            if location.folder is None:
                # Inside a zip file (or a namespace package): read through importlib.resources;
                # no modification times, so no fingerprint.
                folders = None
                found.extend(_from_resources(location.root, package, bad_names))
                continue
            folder = location.folder
            examined = seen[index][1] if seen is not None else examine_folder(folder)
            if examined is None:
                # Something examine_folder refuses: list_folder says what (or, if it was
                # fleeting, gives the listing).
                listed = list_folder(folder)
                examined = (
                    [name for name, _, _ in listed],
                    [number for _, _, stat in listed for number in stat],
                    _names_in(folder),
                )
            names, numbers, everything = examined
            found.extend(_from_folder(folder, names, numbers, package, bad_names))
            listings.append((folder, everything, names))
            if folders is not None:
                folders.append((os.path.abspath(folder), names, numbers))
        for folder, everything, names in listings:
            _warn_nested(folder, everything, names)
        _refuse_bad_names(bad_names)
        versions = [m.version for m in found]
        if versions != sorted(set(versions)):
            # Out of order across locations, or a version twice: sort, and say which files.
            found.sort(key=lambda m: (m.version, m.location))
            _refuse_duplicates(found)
        self._files = None if folders is None else Files(folders)
        return tuple(found)


def _names_in(folder: str) -> list[str]:
    """Every name in ``folder`` (none if it cannot be listed: :func:`list_folder` said so)."""
    try:
        return os.listdir(folder)
    except OSError:
        return []


def _from_folder(
    folder: str, names: list[str], numbers: list[int], package: str | None, bad_names: list[str]
) -> list[Migration]:
    """The migrations of a folder's candidate files (sorted names, with their sizes and times);
    the paths of those that break the naming rule are added to ``bad_names``.

    :raises DiscoveryError: a file has version 0 or one the tracker cannot store.
    """
    found = _fast(folder, names, numbers, package)
    if found is not None:
        return found
    # File by file, as the rule reads one name.
    migrations = []
    each = iter(numbers)
    for name, stat in zip(names, zip(each, each, each, strict=True), strict=True):
        where = os.path.join(folder, name)
        match = NAME_PATTERN.fullmatch(name)
        if match is None:
            bad_names.append(where)
            continue
        migrations.append(_migration(None, stat, where, match, package))
    return migrations


def _fast(folder: str, names: list[str], numbers: list[int], package: str | None) -> list[Migration] | None:
    """:func:`_from_folder` when every name follows the rule with a version from 1 to
    :data:`MAX_VERSION`, checked for all names at once; ``None`` for anything else.

    The names joined by newlines are matched line by line in one call (a name holding a
    newline counts the lines wrong, and takes the file-by-file way), and each migration
    is filled as :func:`_migration` fills it.
    """
    joined = "\n".join(names)
    parts = _NAME_LINES.findall(joined)
    if len(parts) != len(names) or joined.count("\n") != max(len(names) - 1, 0):
        return None
    versions = [int(version) for version, _, _ in parts]
    if versions and (min(versions) < 1 or max(versions) > MAX_VERSION):
        return None
    prefix = os.path.join(folder, "")
    new = object.__new__
    each = iter(numbers)
    found = []
    for version, (_, slug, kind), name, stat in zip(
        versions, parts, names, zip(each, each, each, strict=True), strict=True
    ):
        migration = new(Migration)
        migration.__dict__.update(
            version=version,
            name=slug,
            kind=kind,
            location=prefix + name,
            resource=None,
            package=package,
            stat=stat,
        )
        found.append(migration)
    return found


def _from_resources(root: Traversable, package: str | None, bad_names: list[str]) -> list[Migration]:
    """The migrations of a location read through :mod:`importlib.resources` (a zip file), as
    :func:`_from_folder` gives a folder's."""
    found = []
    for entry in root.iterdir():
        if not (is_candidate(entry.name) and entry.is_file()):
            continue
        where = str(entry)
        match = NAME_PATTERN.fullmatch(entry.name)
        if match is None:
            bad_names.append(where)
            continue
        found.append(_migration(entry, None, where, match, package))
    return found


def _refuse_bad_names(bad_names: list[str]) -> None:
    """Raise the error naming the files of a location that break the naming rule, if any."""
    if not bad_names:
        return
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


def _refuse_duplicates(found: list[Migration]) -> None:
    """Raise the error naming the files that share a version, if any (``found`` sorted by version)."""
    by_version: dict[int, list[Migration]] = {}
    for migration in found:
        by_version.setdefault(migration.version, []).append(migration)
    duplicates = [group for group in by_version.values() if len(group) > 1]
    if not duplicates:
        return
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


def _warn_nested(folder: str, everything: list[str], candidates: list[str]) -> None:
    """Warn about files named like migrations in ``folder``'s subfolders, which are not migrations.

    Discovery reads the top level of a migrations folder only (a subfolder may hold
    anything: fixtures, an archive). A file there named like a migration was most
    likely meant to be one, and would otherwise never be applied, silently. Only the
    full run looks (a no-op start never gets here); subfolders whose name starts with
    ``_`` or ``.`` (``__pycache__``) are not looked into.

    :param everything: every name in the folder, as discovery listed it.
    :param candidates: those of them that are migration files (plain files: no subfolder).
    """
    others = set(everything).difference(candidates)
    subfolders = sorted(
        path
        for path in (os.path.join(folder, name) for name in others if not name.startswith(("_", ".")))
        if os.path.isdir(path)
    )
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
    import logging  # only for this warning

    logging.getLogger("selfmigrate.registry").warning(
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
    kind: Kind = "py" if match["kind"] == "py" else "sql"
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
