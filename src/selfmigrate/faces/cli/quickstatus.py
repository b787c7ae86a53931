"""``python -m selfmigrate status`` for an up-to-date database, answered without click or the runner.

Holds :func:`answer`, which ``__main__`` asks first: a health check runs ``status`` every
30 seconds, and importing click costs more than the whole answer. It answers only when the
command line is one it reads exactly (the database, a file or a URL whose engine's quick
module can describe it, and the migrations and table given as options or ``SELFMIGRATE_*``
variables, no ``[tool.selfmigrate]`` in a pyproject.toml above) and the
stored fingerprint certifies the files against the rows; anything else is ``None``, and
the full command runs. Prints what the full command prints; must not import click,
:mod:`logging` or the runner (tests/test_performance_paths.py holds it to the same output).
"""

from __future__ import annotations

import os

from ...config import DEFAULT_LOCK_TIMEOUT, DEFAULT_TABLE
from ...core.fingerprint import digest, fingerprint_key, fingerprint_of
from ...core.locations import folders_of, list_folder, split_locations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import typing as t

#: The options before ``status`` that this reads, by how they are written.
_OPTIONS = {"-d": "database", "--database": "database", "-m": "migrations", "--migrations": "migrations"}
_OPTIONS.update({"--table": "table", "--lock-timeout": "lock_timeout", "--backup-dir": "backup_dir"})
#: The ``SELFMIGRATE_*`` variables this reads (or, ``BACKUP_DIR``, that take any text). Any
#: other one set is checked as the full command checks it (:func:`_other_settings_refused`).
_READ = frozenset(f"SELFMIGRATE_{name}" for name in ("DATABASE", "MIGRATIONS", "TABLE", "LOCK_TIMEOUT", "BACKUP_DIR"))


def answer(argv: t.Sequence[str], environ: t.Mapping[str, str], cwd: str) -> tuple[str, int] | None:
    """The output and exit code of ``status`` (or ``status --json``) if it can be given here, else ``None``."""
    given = _parse(argv)
    if given is None or _other_settings_refused(environ) or _project_settings_above(cwd):
        return None
    settings, as_json = given
    # An option wins over its variable, an empty variable is not set (as click reads them).
    env = {key: environ.get(f"SELFMIGRATE_{key.upper()}") or None for key in ("database", "table", "lock_timeout")}
    database = settings.get("database", env["database"])
    locations = settings.get("migrations", split_locations(environ.get("SELFMIGRATE_MIGRATIONS", "")))
    table = settings.get("table", env["table"] or DEFAULT_TABLE)
    timeout = settings.get("lock_timeout", env["lock_timeout"] or str(DEFAULT_LOCK_TIMEOUT))
    if not isinstance(database, str) or not isinstance(table, str):
        return None
    from ...backends.select import quick_described, quick_status_read

    # A file path as given; a server's URL as its backend shows it (passwords masked).
    shown = database if _plain(database) else quick_described(database)
    if shown is None:
        return None
    if not locations or not (table.isidentifier() and table.isascii()):
        return None
    try:
        lock_timeout = float(timeout if isinstance(timeout, str) else "")
    except ValueError:
        return None
    if not lock_timeout >= 0:
        return None
    folders = folders_of(list(locations))
    if folders is None or not all(_plain(folder) for folder in folders):
        return None
    read = quick_status_read(database, table, lock_timeout)
    if read is None:
        return None
    stored, rows = read
    if stored is None or not rows:
        return None
    from ...errors import DiscoveryError

    try:
        listed = [(folder, list_folder(folder)) for folder in folders]
    except DiscoveryError:
        return None
    files = fingerprint_of((folder, ((name, stat) for name, _, stat in found)) for folder, found in listed)
    if stored != digest(fingerprint_key(files, ((row[0], row[1], row[2]) for row in rows))):
        return None
    entries = _entries(listed, rows)
    if entries is None:
        return None
    return (_json(shown, entries) if as_json else _text(shown, entries)), 0


def _parse(argv: t.Sequence[str]) -> tuple[dict[str, t.Any], bool] | None:
    """``[OPTION VALUE]... status [--json]`` as settings, or ``None`` for anything else."""
    settings: dict[str, t.Any] = {}
    args = list(argv)
    while args and args[0].startswith("-"):
        option, equals, value = args.pop(0).partition("=")
        name = _OPTIONS.get(option)
        if name is None or (option.startswith("-") and not option.startswith("--") and equals):
            return None
        if not equals:
            if not args:
                return None
            value = args.pop(0)
        if name == "migrations":
            settings.setdefault(name, []).append(value)
        elif name in settings:
            return None  # given twice: the full command says what it makes of that
        else:
            settings[name] = value
    if args == ["status"]:
        return settings, False
    if args == ["status", "--json"]:
        return settings, True
    return None


def _other_settings_refused(environ: t.Mapping[str, str]) -> bool:
    """Whether a ``SELFMIGRATE_*`` variable this does not read is set to a value the full command refuses.

    Checked as the full command checks them (:func:`~..project_settings.read_environ`, then
    :meth:`Options.check <selfmigrate.config.Options.check>`), and only when one is set (an
    empty variable is not set, as click reads them): a health check with a typo in
    ``SELFMIGRATE_AHEAD`` is exit 2 whether or not the database is up to date, and one with
    valid settings keeps the quick answer. ``True`` hands over to the full command, which
    says what is wrong.
    """
    if not any(key.startswith("SELFMIGRATE_") and key not in _READ and value.strip() for key, value in environ.items()):
        return False
    from ...errors import ConfigError
    from ..project_settings import options_of, read_environ

    try:
        values = read_environ(environ)
        options_of({name: v.value for name, v in values.items()}).check()
    except (ConfigError, TypeError):
        return True
    return False


def _project_settings_above(cwd: str) -> bool:
    """Whether a pyproject.toml in ``cwd`` or a folder above it may hold settings (a ``[tool.selfmigrate]`` table)."""
    folder = os.path.abspath(cwd)
    while True:
        path = os.path.join(folder, "pyproject.toml")
        if os.path.isfile(path):
            try:
                with open(path, "rb") as f:
                    if b"selfmigrate" in f.read():
                        return True
            except OSError:
                return True
        parent = os.path.dirname(folder)
        if parent == folder:
            return False
        folder = parent


def _plain(path: str) -> bool:
    """Whether ``path`` is a file path written as the full command would print it (no URL, no ``./``)."""
    return bool(path) and not path.startswith(("sqlite", "file:")) and os.path.normpath(path) == path


#: An entry of the output: version, name, file, applied at, duration, compatible, down.
Entry = tuple[int, str, str, str, float, "bool | None", str]


def _entries(
    listed: list[tuple[str, list[tuple[str, str, tuple[int, int, int]]]]],
    rows: list[tuple[t.Any, ...]],
) -> list[Entry] | None:
    """Each migration's entry, all applied; ``None`` if not so (then the full command answers)."""
    by_version = {row[0]: row for row in rows}
    entries: list[Entry] = []
    for _, files in listed:
        for filename, path, _ in files:
            stem, _, _ = filename.rpartition(".")
            number, _, name = stem.partition("_")
            if not number.isdigit() or not name:
                return None
            row = by_version.get(int(number))
            if row is None or row[2] != "applied":
                return None
            _, _, _, applied_at, duration, kind, compatible, down_checksum = row
            # As AppliedMigration.down and .compatible read them (core/tracker.py).
            down = "not stored" if kind is None else "none" if down_checksum is None else "stored"
            entries.append(
                (int(number), name, path, applied_at, duration, None if compatible is None else bool(compatible), down)
            )
    entries.sort()
    if len(entries) != len(by_version) or len({e[0] for e in entries}) != len(entries):
        return None
    return entries


def _text(database: str, entries: list[Entry]) -> str:
    labels = [f"{entry[0]:04d}_{entry[1]}" for entry in entries]
    width = max(len(label) for label in labels)
    lines = [f"Database: {database}"]
    for label, (_, _, _, applied_at, duration, _, _) in zip(labels, entries, strict=True):
        lines.append(f"  {label.ljust(width)}  applied {applied_at} ({duration:g} ms)")
    head = entries[-1][0]
    lines.append(f"Current version: {head}; newest migration file: {head}.")
    lines.append("Up to date.")
    return "\n".join(lines) + "\n"


def _json(database: str, entries: list[Entry]) -> str:
    import json

    head = entries[-1][0]
    document = {
        "database": database,
        "current_version": head,
        "head": head,
        "up_to_date": True,
        "state": "up-to-date",
        "pending": [],
        "ahead": [],
        "migrations": [
            {
                "version": version,
                "name": name,
                "state": "applied",
                "file": path,
                "applied_at": applied_at,
                "duration_ms": duration,
                "compatible": compatible,
                "down": down,
                "cannot_load": None,
            }
            for version, name, path, applied_at, duration, compatible, down in entries
        ],
    }
    return json.dumps(document, indent=2) + "\n"
