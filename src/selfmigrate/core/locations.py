"""Where migrations are: what is a package, a folder, a migration file — the one place that says.

Holds the rules that discovery, the quick check, ``create``, the Flask defaults and the
pytest plugin share (:func:`is_candidate`, :func:`classify`, :func:`resolve_location`…).
Must not know databases or the faces; it is on the no-op start, so it imports only :mod:`os`.
"""

from __future__ import annotations

import os
import sys
from stat import S_ISDIR, S_ISREG

TYPE_CHECKING = False
if TYPE_CHECKING:
    import typing as t
    from importlib.machinery import ModuleSpec
    from importlib.resources.abc import Traversable
    from pathlib import Path

    #: ``(size, mtime_ns, ctime_ns)`` of a file.
    Stat = tuple[int, int, int]
    #: What a caller may pass as a migrations location: a package name or a directory.
    LocationSpec: t.TypeAlias = "str | os.PathLike[str]"
    #: One location or a sequence of them.
    LocationsSpec: t.TypeAlias = "LocationSpec | t.Sequence[LocationSpec]"
    #: A folder as :func:`examine_folder` saw it: its candidate names (sorted), the size,
    #: mtime and ctime of each one after another, and every name the folder held.
    Examined = tuple[list[str], list[int], list[str]]
    #: Folders examined, each as ``(absolute path, examination)``: what the quick check
    #: saw, which discovery may take as its own listing (see :class:`~.registry.MigrationRegistry`).
    Seen = list[tuple[str, Examined]]


def is_candidate(filename: str) -> bool:
    """Whether a file in a migrations location is meant to be a migration.

    ``.sql`` and ``.py`` files are, except those whose name starts with ``_``
    (templates, helpers, ``__init__.py``) or ``.`` (editor and system files).
    The extension is compared without case, so that ``0003_x.SQL`` is reported
    as a bad name rather than silently skipped.
    """
    return filename.lower().endswith((".sql", ".py")) and not filename.startswith(("_", "."))


def candidate_names(names: t.Iterable[str]) -> list[str]:
    """The names among ``names`` that :func:`is_candidate` accepts, in their order.

    The same test, written for a listing of thousands of names: most end in
    ``.sql`` or ``.py`` already, and only the others are lowered to compare.
    """
    ends = (".sql", ".py")
    return [name for name in names if (name.endswith(ends) or name.lower().endswith(ends)) and name[:1] not in "_."]


def looks_like_path(spec: str) -> bool:
    """Whether a location string is written as a path (a separator, or a leading ``.``)."""
    return "/" in spec or os.sep in spec or spec.startswith(".")


def classify(spec: str | os.PathLike[str]) -> tuple[str, str]:
    """Say how a migrations location is read: ``("package", name)``,
    ``("directory", path)``, or ``("unknown", spec)``.

    A :class:`os.PathLike` is a directory. A string is a package if it is a
    dotted name that imports as one, a directory if it contains a path separator
    or names an existing folder; a folder in the working directory is read as
    that folder even where it also imports as a namespace package (which would
    merge every same-named folder on :data:`sys.path`) or as a module elsewhere
    (a folder ``dbm`` is not the standard library's :mod:`dbm`).
    """
    if isinstance(spec, os.PathLike):
        return "directory", os.fspath(spec)
    path_like = looks_like_path(spec)
    if not path_like and spec and all(part.isidentifier() for part in spec.split(".")):
        try:
            found = find_spec(spec)
        except (ImportError, ValueError):
            found = None
        namespace_in_cwd = found is not None and found.origin is None and os.path.isdir(spec)
        # A folder here named like a module found elsewhere (the standard library's dbm or
        # test, an installed package) is that folder: the module is not the user's migrations.
        elsewhere = found is not None and os.path.isdir(spec) and not _holds(found, spec)
        if found is not None and not namespace_in_cwd and not elsewhere:
            return "package", spec
    if path_like or (spec and os.path.isdir(spec)):
        return "directory", spec
    return "unknown", spec


def _holds(found: ModuleSpec, folder: str) -> bool:
    """Whether the package ``found`` is the folder ``folder`` (one of its search locations)."""
    here = os.path.realpath(folder)
    return any(os.path.realpath(path) == here for path in found.submodule_search_locations or ())


def find_spec(name: str) -> ModuleSpec | None:
    """:func:`importlib.util.find_spec` for an absolute name, without importing :mod:`importlib.util`.

    That module imports :mod:`contextlib` and :mod:`functools`, a tenth of a
    no-op start. The same steps: a module already imported gives its spec;
    else the parent package is imported and each finder of :data:`sys.meta_path`
    asked in turn with the parent's ``__path__``.

    :raises ImportError: the parent cannot be imported or is not a package.
    :raises ValueError: the name is empty or relative.
    """
    import sys

    if not name or name.startswith("."):
        raise ValueError(f"Not an absolute module name: {name!r}")
    module = sys.modules.get(name)
    if module is not None:
        found: ModuleSpec | None = getattr(module, "__spec__", None)
        return found
    parent, _, _ = name.rpartition(".")
    path = None
    if parent:
        __import__(parent)
        path = getattr(sys.modules[parent], "__path__", None)
        if path is None:
            raise ModuleNotFoundError(f"{parent!r} is not a package", name=name)
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        spec: ModuleSpec | None = None if find is None else find(name, path)
        if spec is not None:
            return spec
    return None


def package_folder(name: str) -> str | None:
    """The one folder on disk of a package, or ``None`` (a zip file, a namespace package of several folders).

    A folder without ``__init__.py`` (as ``create`` makes it) imports as a
    namespace package; with a single folder it is read as that folder, as a
    regular package is, so that it gets the fingerprint and the quick check.
    """
    try:
        spec = find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folders = list(spec.submodule_search_locations)
    if len(folders) != 1 or not os.path.isdir(folders[0]):
        return None
    return folders[0]


def is_package(name: str) -> bool:
    """Whether ``name`` imports as a package (anywhere: on disk, in a zip file, namespace)."""
    try:
        spec = find_spec(name)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.submodule_search_locations is not None


def list_folder(folder: str) -> list[tuple[str, str, Stat]]:
    """The candidate files of a folder (see :func:`is_candidate`), sorted by name.

    Each as ``(name, path, (size, mtime_ns, ctime_ns))``, from one
    :func:`os.scandir` and no object per file. A symbolic link counts as the
    file it points to.

    :raises DiscoveryError: the folder cannot be listed, or a candidate is not a
        regular file (a dangling or looping symbolic link, a directory, a file
        that cannot be examined). The registry lists folders with this function
        too, so the quick check and the full run never disagree on the files.
    """
    found = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if not is_candidate(entry.name):
                    continue
                try:
                    st = entry.stat()
                except OSError as e:
                    raise _unusable(entry.path, e) from e
                if not S_ISREG(st.st_mode):
                    raise _not_a_file(entry.path, st.st_mode)
                found.append((entry.name, entry.path, (st.st_size, st.st_mtime_ns, st.st_ctime_ns)))
    except OSError as e:
        from ..errors import DiscoveryError

        raise DiscoveryError(
            f"Migrations folder {folder} cannot be listed: {e.strerror or e}. Let the app's user"
            " read and enter it (chmod u+rx, or a+rx), or point the migrations setting at the"
            " right place.",
            paths=[folder],
        ) from e
    found.sort()
    return found


def examine_folder(folder: str) -> Examined | None:
    """A folder's candidate names (sorted), the size, mtime and ctime of each, and every name it holds.

    The listing :func:`list_folder` gives, made with no object per file: the folder
    is listed by name and each candidate examined with one :func:`os.stat` relative
    to the open folder (``dir_fd``: no path to build or resolve per file), following
    a symbolic link as :func:`list_folder` does. ``None`` if the folder cannot be
    listed or a candidate is not a plain file that can be examined: then
    :func:`list_folder` says what is wrong.
    """
    names: list[str]
    numbers: list[int] = []
    add = numbers.extend
    stat = os.stat
    if os.listdir in os.supports_fd and stat in os.supports_dir_fd:
        try:
            fd = os.open(folder, _DIRECTORY)
        except OSError:
            return None
        try:
            everything = os.listdir(fd)
            names = candidate_names(everything)
            names.sort()
            for name in names:
                st = stat(name, dir_fd=fd)
                if st.st_mode & 0o170000 != 0o100000:  # not S_ISREG
                    return None
                add((st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        except OSError:
            return None
        finally:
            os.close(fd)
        return names, numbers, everything
    # Where a folder cannot be opened to list and examine relative to it (Windows).
    found = []
    everything = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                everything.append(entry.name)
                if not is_candidate(entry.name):
                    continue
                st = entry.stat()
                if not S_ISREG(st.st_mode):
                    return None
                found.append((entry.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    except OSError:
        return None
    found.sort()
    names = [name for name, _, _, _ in found]
    for _, size, mtime, ctime in found:
        add((size, mtime, ctime))
    return names, numbers, everything


#: How :func:`examine_folder` opens a folder to list it and examine its files.
_DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def _unusable(path: str, error: OSError) -> Exception:
    """The error for a candidate whose :func:`os.stat` fails."""
    from ..errors import DiscoveryError

    if os.path.islink(path):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        if isinstance(error, FileNotFoundError):
            problem = f"is a symbolic link to {target}, which does not exist"
        elif error.errno == 40:  # ELOOP
            problem = f"is a symbolic link to {target} that loops back on itself"
        else:
            problem = f"is a symbolic link to {target}, which cannot be examined ({error.strerror or error})"
        fix = "Point the link at the migration file, or remove it"
    elif isinstance(error, PermissionError):
        problem = "cannot be examined: entering its folder is not allowed"
        fix = f"Let the app's user enter the folder (chmod a+x {os.path.dirname(path) or '.'})"
    else:
        problem = f"cannot be examined ({error.strerror or error})"
        fix = "Check the file and the disk"
    return DiscoveryError(
        f"Migration file {path} {problem}. {fix}; start its name with '_' if it is not a migration.",
        paths=[path],
    )


def _not_a_file(path: str, mode: int) -> Exception:
    """The error for a candidate that is a directory, a FIFO, a device or a socket."""
    from ..errors import DiscoveryError

    what = "a directory" if S_ISDIR(mode) else "not a regular file (a FIFO, socket or device)"
    return DiscoveryError(
        f"{path} is named like a migration but is {what}. Rename or remove it; start its name"
        " with '_' if it is not a migration.",
        paths=[path],
    )


def split_locations(text: str) -> tuple[str, ...]:
    """The locations of a ``SELFMIGRATE_MIGRATIONS`` value: separated by spaces, unless the
    whole value is one directory that exists (``/srv/My App/migrations``), which is taken whole."""
    text = text.strip()
    if any(c.isspace() for c in text) and os.path.isdir(text):
        return (text,)
    return tuple(text.split())


def folders_of(locations: t.Sequence[str | os.PathLike[str]]) -> list[str] | None:
    """The folder on disk of each location, or ``None`` if one is not a plain folder."""
    folders = []
    for spec in locations:
        kind, name = classify(spec)
        folder = package_folder(name) if kind == "package" else name if kind == "directory" else None
        if folder is None or not os.path.isdir(folder):
            return None
        folders.append(folder)
    return folders


def from_base(spec: LocationSpec, base: str | os.PathLike[str], *, bare_folders: bool = False) -> LocationSpec:
    """A location written relative to ``base`` (an app's root, an ini file's folder).

    A :class:`os.PathLike` or a string written as a path is taken from ``base``
    (a :class:`~pathlib.Path`); other strings are package names, as given. With ``bare_folders``, a bare name
    of a folder in ``base`` that is not a package (no ``__init__.py``) is that
    folder: Python could import it as a namespace package, but one that merges
    every same-named folder on :data:`sys.path`.
    """
    from pathlib import Path

    if isinstance(spec, str) and not looks_like_path(spec):
        folder = Path(base) / spec
        if bare_folders and folder.is_dir() and not (folder / "__init__.py").exists():
            return str(folder)
        return spec
    path = Path(spec)
    return path if path.is_absolute() else Path(base) / path


def default_location(package: str, folder: str | os.PathLike[str]) -> LocationSpec | None:
    """``package`` if it imports, else ``folder`` if it exists, else ``None``."""
    from pathlib import Path

    try:
        if find_spec(package) is not None:
            return package
    except (ImportError, ValueError):
        pass
    path = Path(folder)
    return path if path.is_dir() else None


class Location:
    """One place migrations are read from: a package or a directory."""

    __slots__ = ("kind", "name", "folder", "_root")

    #: ``"package"`` or ``"directory"``.
    kind: t.Literal["package", "directory"]
    #: The package name, or the directory's path.
    name: str
    #: The folder on disk as text, or ``None`` (a package inside a zip file, a namespace package).
    folder: str | None
    #: :attr:`root`, once given or made (a :class:`~pathlib.Path` is made only when asked for).
    _root: Traversable | None

    def __init__(
        self,
        kind: t.Literal["package", "directory"],
        name: str,
        root: Traversable | None = None,
        *,
        folder: str | None = None,
    ) -> None:
        if root is None and folder is None:
            raise TypeError("A Location needs its root or its folder.")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "name", name)
        if folder is None and _is_path(root):
            folder = str(root)
        object.__setattr__(self, "folder", folder)
        object.__setattr__(self, "_root", root)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Location is immutable: cannot set {name!r}")

    @property
    def root(self) -> Traversable:
        """The package's or directory's contents (a :class:`~pathlib.Path` for a folder on disk)."""
        if self._root is not None:
            return self._root
        from pathlib import Path

        assert self.folder is not None  # __init__ has one of the two
        made = Path(self.folder)
        object.__setattr__(self, "_root", made)
        return made

    def _key(self) -> tuple[str, str, object]:
        return (self.kind, self.name, self.folder if self.folder is not None else self._root)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Location)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Location(kind={self.kind!r}, name={self.name!r}, root={self.root!r})"

    def __str__(self) -> str:
        return f"package {self.name}" if self.kind == "package" else f"directory {self.name}"

    @property
    def path(self) -> Path | None:
        """The location's folder on disk, or ``None`` (a package inside a zip file)."""
        if self.folder is None:
            return None
        from pathlib import Path

        root = self.root
        return root if isinstance(root, Path) else Path(self.folder)


def _is_path(root: object) -> bool:
    """Whether ``root`` is a :class:`~pathlib.Path` (without importing :mod:`pathlib` to ask)."""
    pathlib = sys.modules.get("pathlib")
    return pathlib is not None and isinstance(root, pathlib.Path)


def resolve_location(spec: LocationSpec) -> Location:
    """Turn a package name or directory path into a :class:`Location`.

    A :class:`os.PathLike` is always a directory. A string is a directory if it
    contains a path separator or names an existing directory and no importable
    package; a dotted name of an importable package is a package. Anything else
    is an error naming what was tried.
    """
    from ..errors import DiscoveryError

    if not isinstance(spec, (str, os.PathLike)) or not spec:
        raise DiscoveryError(f"A migrations location must be a package name or a directory, not {spec!r}.")
    kind, name = classify(spec)
    if kind == "package":
        return _package(name)
    if kind == "directory":
        return _directory(name)
    raise DiscoveryError(
        f"Migrations location {spec!r} is neither an importable package nor a directory."
        ' Give a package name ("myapp.migrations") or a directory path that exists.',
        paths=[name],
    )


def _directory(path: str) -> Location:
    from ..errors import DiscoveryError
    from ..paths import path_text  # the full run's: the no-op start never resolves a location

    if not os.path.isdir(path):
        what = "is not a directory" if os.path.exists(path) else "does not exist"
        raise DiscoveryError(
            f"Migrations directory {path} {what}. Create it (python -m selfmigrate create"
            " does) or point the migrations setting at the right place.",
            paths=[path],
        )
    folder = path_text(path)
    return Location("directory", folder, folder=folder)


def _package(name: str) -> Location:
    from ..errors import DiscoveryError
    from ..paths import path_text

    folder = package_folder(name)
    if folder is not None:
        return Location("package", name, folder=path_text(folder))
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


def folder_to_write(location: LocationSpec) -> Path:
    """The directory ``create`` writes into: a path as given, or a package's folder on disk.

    A plain name without dots (``"migrations"``) is a directory, created if
    missing; a dotted name must be an importable package.

    :raises ConfigError: the package is inside a zip file or wheel.
    """
    from pathlib import Path

    if not isinstance(location, str) or os.path.isdir(location) or "." not in location:
        return Path(location)
    if "/" in location or os.sep in location:
        return Path(location)
    resolved = resolve_location(location)
    if resolved.path is None:
        from ..errors import ConfigError

        raise ConfigError(
            f"Migrations {resolved} is inside a zip file or wheel; create new migrations in the"
            " project's source tree (give its directory)."
        )
    return resolved.path


def watched_files(locations: t.Sequence[Location]) -> tuple[list[str], list[str]]:
    """The folders and candidate files on disk of ``locations``, to watch for changes.

    Files inside a zip file cannot change while a process runs and are left out.
    """
    from pathlib import Path

    folders: list[str] = []
    files: list[str] = []
    for location in locations:
        root = location.root
        if location.folder is not None:
            folders.append(location.folder)
            with os.scandir(location.folder) as entries:
                files.extend(entry.path for entry in entries if is_candidate(entry.name))
        else:  # a namespace package's folders, or a zip file
            items = [item for item in root.iterdir() if isinstance(item, Path)]
            folders.extend(sorted({str(item.parent) for item in items}))
            files.extend(str(item) for item in items if is_candidate(item.name))
    return folders, files
