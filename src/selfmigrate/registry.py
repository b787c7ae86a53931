"""Finding migration files: :class:`MigrationRegistry`.

Discovery is pure and strict. It lists the configured locations, checks every
file name against the naming rule and refuses duplicate versions — all before
anything touches a database. It imports no migration module and reads no file:
a file's checksum is read when first asked for (:attr:`Migration.checksum`).
"""

from __future__ import annotations

import os
import re
import typing as t
from dataclasses import dataclass
from pathlib import Path

from .errors import DiscoveryError
from .migration import Kind, Migration
from .quickcheck import classify, fingerprint, is_candidate, is_package, list_folder, package_folder

if t.TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from .quickcheck import Stat

#: ``NNNN_slug.sql`` or ``NNNN_slug.py``: a decimal version, an underscore, a slug.
NAME_PATTERN = re.compile(r"(?P<version>[0-9]+)_(?P<name>[A-Za-z0-9_]+)\.(?P<kind>sql|py)")

#: The largest version the tracker can store (a signed 64-bit database integer).
MAX_VERSION = 2**63 - 1

#: What a caller may pass as a migrations location: a package name, a
#: directory, or a list of them.
LocationSpec: t.TypeAlias = "str | os.PathLike[str]"
LocationsSpec: t.TypeAlias = "LocationSpec | t.Sequence[LocationSpec]"


@dataclass(frozen=True)
class Location:
    """One place migrations are read from: a package or a directory."""

    #: ``"package"`` or ``"directory"``.
    kind: t.Literal["package", "directory"]
    #: The package name, or the directory's path.
    name: str
    #: The package's or directory's contents.
    root: Traversable

    def __str__(self) -> str:
        return f"package {self.name}" if self.kind == "package" else f"directory {self.name}"

    @property
    def path(self) -> Path | None:
        """The location's folder on disk, or ``None`` (a package inside a zip file)."""
        return self.root if isinstance(self.root, Path) else None


def resolve_location(spec: LocationSpec) -> Location:
    """Turn a package name or directory path into a :class:`Location`.

    A :class:`os.PathLike` is always a directory. A string is a directory if it
    contains a path separator or names an existing directory and no importable
    package; a dotted name of an importable package is a package. Anything else
    is an error naming what was tried.
    """
    if not isinstance(spec, (str, os.PathLike)) or not spec:
        raise DiscoveryError(f"A migrations location must be a package name or a directory, not {spec!r}.")
    kind, name = classify(spec)
    if kind == "package":
        return _package(name)
    if kind == "directory":
        return _directory(name)
    raise DiscoveryError(
        f"Migrations location {spec!r} is neither an importable package nor a directory."
        " Give a package name (\"myapp.migrations\") or a directory path that exists.",
        paths=[name],
    )


def _directory(path: str) -> Location:
    root = Path(path)
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise DiscoveryError(
            f"Migrations directory {path} {what}. Create it (python -m selfmigrate create"
            " does) or point the migrations setting at the right place.",
            paths=[path],
        )
    return Location("directory", str(root), root)


def _package(name: str) -> Location:
    folder = package_folder(name)
    if folder is not None:
        return Location("package", name, Path(folder))
    if not is_package(name):
        # Said here: from Python 3.12, importlib.resources.files() of a plain module
        # is the folder it sits in, which would list every file beside it.
        raise DiscoveryError(
            f"Migrations location {name} is a module, not a package. Make it a folder"
            " with an __init__.py, or give a directory path.",
            paths=[name],
        )
    # A package inside a zip file (or a namespace package): importlib.resources
    # reads it. Imported here, not at the top: it is slow to import, and a
    # package on disk does not need it.
    import importlib.resources

    try:
        root = importlib.resources.files(name)
    except (ImportError, TypeError) as e:
        raise DiscoveryError(
            f"Migrations package {name} cannot be imported: {e}. Check the name and that"
            " it is a package (a folder with __init__.py).",
            paths=[name],
        ) from e
    if not root.is_dir():
        raise DiscoveryError(
            f"Migrations location {name} is a module, not a package. Make it a folder"
            " with an __init__.py, or give a directory path.",
            paths=[name],
        )
    return Location("package", name, root)


def _candidates(root: Traversable) -> t.Iterator[tuple[str, str, Traversable | None, Stat | None]]:
    """The files of a location meant to be migrations (see :func:`is_candidate`).

    Yields ``(name, location, resource, stat)``. On disk, ``location`` is the
    file's path, ``resource`` is ``None`` (no object per file) and ``stat`` comes
    from :func:`~selfmigrate.quickcheck.list_folder`; inside a zip file,
    ``resource`` is the file and ``stat`` is ``None``.
    """
    if isinstance(root, Path):
        for name, path, stat in list_folder(str(root)):
            yield name, path, None, stat
        return
    for entry in root.iterdir():
        if is_candidate(entry.name) and entry.is_file():
            yield entry.name, str(entry), entry, None


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
        """The files' fingerprint (see :mod:`selfmigrate.quickcheck`), or ``None``.

        ``None`` when a location is inside a zip file (no modification times):
        then every start reads the files.
        """
        folders = [location.path for location in self.locations]
        if any(folder is None for folder in folders):
            return None
        return fingerprint([str(folder) for folder in folders])

    @property
    def head(self) -> int | None:
        """The highest version, or ``None`` when there are no migrations."""
        return self.migrations[-1].version if self.migrations else None

    def _discover(self) -> tuple[Migration, ...]:
        found: list[Migration] = []
        bad_names: list[str] = []
        for location in self.locations:
            package = location.name if location.kind == "package" else None
            for filename, where, entry, stat in _candidates(location.root):
                match = NAME_PATTERN.fullmatch(filename)
                if match is None:
                    bad_names.append(where)
                    continue
                found.append(_migration(entry, stat, where, match, package))
        if bad_names:
            listed = "\n  ".join(sorted(bad_names))
            raise DiscoveryError(
                f"These files in a migrations location do not follow the naming rule"
                f" NNNN_slug.sql / NNNN_slug.py:\n  {listed}\n"
                "Rename them (for example 0007_add_index.sql), or start the name with '_'"
                " if they are helpers, not migrations.",
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
        return tuple(found)


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
    return Migration(
        version=version,
        name=match["name"],
        kind=kind,
        location=where,
        resource=entry,
        package=package,
        stat=stat,
    )
