"""A project's settings: the ``[tool.selfmigrate]`` table of pyproject.toml and ``SELFMIGRATE_*`` variables.

Holds where each setting of the command line and the pytest plugin comes from: the
nearest ``pyproject.toml`` with a ``[tool.selfmigrate]`` table (searched from the
working directory upward, as ruff does), the environment, and, added by the face,
the command line; each value keeps its origin for the ``config`` command. Must not
know click, pytest or an engine; it reads files and variables, nothing else.

Precedence: command-line option > environment variable > pyproject.toml > default.
"""

from __future__ import annotations

import os

from ..backends.base import Value as Frozen
from ..config import (
    DEFAULT_AHEAD,
    DEFAULT_BACKUP_KEEP,
    DEFAULT_LOCK_RETRIES,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_STATEMENT_TIMEOUT,
    DEFAULT_TABLE,
    DEFAULT_TABLE_LOCK_TIMEOUT,
    FLAG_FALSE,
    FLAG_TRUE,
    Options,
    engine_setting_problem,
)
from ..core.locations import split_locations
from ..errors import ConfigError

TYPE_CHECKING = False  # not typing's: see backends/base.py
if TYPE_CHECKING:
    import typing as t
    from pathlib import Path

    #: Where a value came from (``app``: a Flask app's config, for the ``flask`` commands).
    Source = t.Literal["default", "pyproject", "environment", "option", "app"]
    #: What values a setting takes.
    Kind = t.Literal[
        "database", "locations", "text", "seconds", "flag", "folder", "count", "url", "duration", "retries"
    ]

#: The sources of the command line's settings, highest precedence first.
PRECEDENCE: tuple[Source, ...] = ("option", "environment", "pyproject", "default")
#: How ``config`` names each source.
SOURCE_LABELS: dict[Source, str] = {
    "option": "command-line option",
    "environment": "environment variable (SELFMIGRATE_*)",
    "pyproject": "pyproject.toml [tool.selfmigrate]",
    "app": "the app's config",
    "default": "default",
}
#: The file searched for, and its table.
PYPROJECT = "pyproject.toml"
TABLE = "tool.selfmigrate"
#: The prefix of the environment variables (``SELFMIGRATE_LOCK_TIMEOUT``).
ENV_PREFIX = "SELFMIGRATE_"

class Setting(Frozen):
    """One setting: its name in the table, what it takes, its default (a frozen value)."""

    _fields = ("name", "kind", "default", "help")

    #: The key in ``[tool.selfmigrate]`` (``lock_timeout``).
    name: str
    #: What values it takes (how a string from the environment is read).
    kind: Kind
    #: The value when nothing sets it.
    default: object
    #: One line for the docs and ``config``.
    help: str

    def __init__(self, name: str, kind: Kind, default: object, help: str) -> None:
        self.__dict__.update(name=name, kind=kind, default=default, help=help)

    @property
    def env(self) -> str:
        """The environment variable (``SELFMIGRATE_LOCK_TIMEOUT``)."""
        return ENV_PREFIX + self.name.upper()

    @property
    def option(self) -> str:
        """The command-line option (``--lock-timeout``)."""
        return "--" + self.name.replace("_", "-")


#: Every setting, in the order ``config`` shows them.
SETTINGS: tuple[Setting, ...] = (
    Setting("database", "database", None, "The SQLite database file (or a database URL)."),
    Setting("migrations", "locations", (), "Migrations packages or directories, merged."),
    Setting("table", "text", DEFAULT_TABLE, "The tracker table's name."),
    Setting("lock_timeout", "seconds", DEFAULT_LOCK_TIMEOUT, "Seconds to wait for the write lock."),
    Setting("backup", "flag", True, "Snapshot a non-empty database before its first change."),
    Setting("backup_dir", "folder", None, "Where snapshots go (none: the database's folder)."),
    Setting("backup_keep", "count", DEFAULT_BACKUP_KEEP, 'How many snapshots to keep ("all": every one).'),
    Setting("allow_out_of_order", "flag", False, "Apply migrations older than the newest applied one."),
    Setting("ahead", "text", DEFAULT_AHEAD, 'On a database ahead of this code: "warn", "refuse" or "rollback".'),
    Setting("direct_database", "url", None, "PostgreSQL: a direct URL for non-transactional migrations."),
    Setting("table_lock_timeout", "duration", DEFAULT_TABLE_LOCK_TIMEOUT, "PostgreSQL: each migration's lock_timeout."),
    Setting(
        "statement_timeout", "duration", DEFAULT_STATEMENT_TIMEOUT, "PostgreSQL: each migration's statement_timeout."
    ),
    Setting("lock_retries", "retries", DEFAULT_LOCK_RETRIES, "PostgreSQL: retries of a migration after a table lock."),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}

_TRUE = FLAG_TRUE
_FALSE = FLAG_FALSE


class Value(Frozen):
    """An effective value and where it came from (a frozen value)."""

    _fields = ("setting", "value", "source", "origin")

    #: The setting.
    setting: Setting
    #: The value, read (a float for ``lock_timeout``, a tuple for ``migrations``…).
    value: t.Any
    #: Which layer set it.
    source: Source
    #: Where exactly: ``default``, the pyproject.toml's path, the variable, the option.
    origin: str

    def __init__(self, setting: Setting, value: t.Any, source: Source, origin: str) -> None:
        self.__dict__.update(setting=setting, value=value, source=source, origin=origin)


class ProjectSettings(Frozen):
    """The effective settings: each one's value and origin, the pyproject.toml used (a frozen value)."""

    _fields = ("pyproject", "values", "precedence", "label")

    #: The pyproject.toml whose ``[tool.selfmigrate]`` table was read (``None``: none found).
    pyproject: Path | None
    #: Every setting of :data:`SETTINGS` by name.
    values: dict[str, Value]
    #: The sources, highest precedence first.
    precedence: tuple[Source, ...]
    #: Where the settings were looked for, in words (``config`` prints it first).
    label: str

    def __init__(
        self,
        pyproject: Path | None,
        values: dict[str, Value],
        precedence: tuple[Source, ...] = PRECEDENCE,
        label: str = "",
    ) -> None:
        self.__dict__.update(pyproject=pyproject, values=values, precedence=precedence, label=label)

    @property
    def precedence_labels(self) -> list[str]:
        """The sources in words, highest precedence first."""
        return [SOURCE_LABELS[source] for source in self.precedence]

    def __getitem__(self, name: str) -> t.Any:
        return self.values[name].value

    def given(self, name: str, value: t.Any, origin: str | None = None) -> ProjectSettings:
        """A copy in which the command line set ``name`` (``value`` ``None``: not given)."""
        if value is None:
            return self
        setting = BY_NAME[name]
        values = dict(self.values)
        values[name] = Value(setting, value, "option", origin or setting.option)
        return ProjectSettings(self.pyproject, values, self.precedence, self.label)

    def document(self) -> dict[str, t.Any]:
        """What ``config --json`` prints: the pyproject.toml and each value with its origin."""
        return {
            "pyproject": None if self.pyproject is None else str(self.pyproject),
            "precedence": list(self.precedence),
            "settings": {
                name: {"value": _plain(v.value), "source": v.source, "origin": v.origin}
                for name, v in self.values.items()
            },
        }


def load(cwd: str | os.PathLike[str] | None = None, environ: t.Mapping[str, str] | None = None) -> ProjectSettings:
    """The settings of the project around ``cwd`` (default: the working directory).

    Defaults, overridden by the nearest pyproject.toml's ``[tool.selfmigrate]``
    table, overridden by ``SELFMIGRATE_*`` variables of ``environ`` (default:
    :data:`os.environ`). Relative paths in the table are taken from the
    pyproject.toml's folder; in a variable, from ``cwd``, as given.

    :raises ConfigError: a pyproject.toml on the way is not valid TOML, or a value
        is of the wrong kind; the message names the file or variable and the fix.
    """
    from pathlib import Path

    start = Path.cwd() if cwd is None else Path(cwd)
    environ = os.environ if environ is None else environ
    values = {s.name: Value(s, s.default, "default", "default") for s in SETTINGS}
    pyproject = find_pyproject(start)
    if pyproject is not None:
        values.update(read_pyproject(pyproject))
    values.update(read_environ(environ))
    if pyproject is None:
        label = f"pyproject.toml: none with a [{TABLE}] table in {start.absolute()} or above."
    else:
        label = f"pyproject.toml: {pyproject}"
    return ProjectSettings(pyproject=pyproject, values=values, label=label)


def find_pyproject(start: str | os.PathLike[str]) -> Path | None:
    """The nearest pyproject.toml with a ``[tool.selfmigrate]`` table, from ``start`` upward.

    A pyproject.toml without the table is passed over, as ruff passes over one
    without ``[tool.ruff]``: a sub-project that does not configure selfmigrate
    uses the settings of the project around it. Tables are never merged.

    :raises ConfigError: a pyproject.toml on the way is not valid TOML.
    """
    from pathlib import Path

    folder = Path(start).absolute()
    for candidate in (folder, *folder.parents):
        path = candidate / PYPROJECT
        if path.is_file() and _table_of(path) is not None:
            return path
    return None


def read_pyproject(path: str | os.PathLike[str]) -> dict[str, Value]:
    """The values set by the ``[tool.selfmigrate]`` table of ``path`` (empty: no table).

    :raises ConfigError: an unknown key, or a value of the wrong kind.
    """
    from pathlib import Path

    path = Path(path).absolute()
    table = _table_of(path) or {}
    base = path.parent
    values: dict[str, Value] = {}
    for key, raw in table.items():
        setting = BY_NAME.get(key)
        if setting is None:
            hint = f" Did you mean {key.replace('-', '_')!r}?" if key.replace("-", "_") in BY_NAME else ""
            raise ConfigError(
                f"{path}: [{TABLE}] has no setting {key!r}.{hint} The settings are:"
                f" {', '.join(BY_NAME)} (docs: configuration)."
            )
        where = f"{path}: [{TABLE}] {key}"
        values[key] = Value(setting, _from_toml(setting, raw, base, where), "pyproject", str(path))
    return values


def read_environ(environ: t.Mapping[str, str]) -> dict[str, Value]:
    """The values set by ``SELFMIGRATE_*`` variables (an empty variable sets nothing).

    Variables that name no setting of :data:`SETTINGS` are left to whoever reads
    them (``SELFMIGRATE_CLI_GROUP`` is a Flask config key, for example).

    :raises ConfigError: a value of the wrong kind, naming the variable.
    """
    values: dict[str, Value] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env, "").strip()
        if raw:
            values[setting.name] = Value(setting, parse(setting, raw, setting.env), "environment", setting.env)
    return values


def options_of(values: t.Mapping[str, t.Any]) -> Options:
    """The :class:`~selfmigrate.config.Options` of settings ``values`` (name → value; those not
    given keep their defaults): every setting but the database and the migrations, which are
    not options."""
    return Options(**{name: value for name, value in values.items() if name not in _NOT_OPTIONS})


#: The settings that are not fields of :class:`~selfmigrate.config.Options`.
_NOT_OPTIONS = ("database", "migrations")


def parse(setting: Setting, text: str, where: str) -> t.Any:
    """Read ``text`` (an environment variable's or an option's value) as ``setting`` takes it.

    :param where: what to name in an error (``SELFMIGRATE_LOCK_TIMEOUT``).
    :raises ConfigError: ``text`` is not a value of that kind.
    """
    kind = setting.kind
    if kind == "locations":
        return split_locations(text)
    if kind == "flag":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        _wrong(where, text, f"one of {', '.join(_TRUE)} or {', '.join(_FALSE)}")
    if kind == "seconds":
        try:
            number = float(text)
        except ValueError:
            number = -1.0
        return _check_seconds(number, text, where)
    if kind in ("url", "duration", "retries"):
        value: object = int(text) if kind == "retries" and text.isascii() and text.isdigit() else text
        return _check_engine(setting, value, where)
    if kind == "count":
        if text.lower() == "all":
            return None
        try:
            count = int(text)
        except ValueError:
            count = 0
        return _check_count(count, text, where)
    return text


def _table_of(path: Path) -> dict[str, t.Any] | None:
    import tomllib  # only when there is a file to read: apply(app) builds the flask group without it

    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(
            f"{path} is not valid TOML ({e}). Fix it: selfmigrate looks for its [{TABLE}] table in"
            f" the nearest {PYPROJECT} with one."
        ) from None
    except OSError as e:
        raise ConfigError(f"Cannot read {path}: {e.strerror}.") from None
    tool = document.get("tool")
    table = tool.get("selfmigrate") if isinstance(tool, dict) else None
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {TABLE} must be a table ([{TABLE}] followed by key = value lines).")
    return table


def _from_toml(setting: Setting, raw: object, base: Path, where: str) -> t.Any:
    kind = setting.kind
    if kind == "database":
        if not isinstance(raw, str) or not raw:
            _wrong(where, raw, "a file path or a database URL (a string)")
        return _database_from(raw, base)
    if kind == "locations":
        entries = [raw] if isinstance(raw, str) else raw
        if not isinstance(entries, list) or not entries or not all(isinstance(e, str) and e for e in entries):
            _wrong(where, raw, "a package name or a directory, or a list of them")
        return tuple(location_from(e, base) for e in entries)
    if kind == "text":
        if not isinstance(raw, str) or not raw:
            _wrong(where, raw, "a name (a string)")
        return raw
    if kind == "folder":
        if not isinstance(raw, str) or not raw:
            _wrong(where, raw, "a directory path (a string)")
        return str(base / raw)
    if kind == "flag":
        if not isinstance(raw, bool):
            _wrong(where, raw, "true or false")
        return raw
    if kind == "seconds":
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            _wrong(where, raw, "a number of seconds, 0 or more")
        return _check_seconds(float(raw), raw, where)
    if kind in ("url", "duration", "retries"):
        return _check_engine(setting, raw, where)
    if raw == "all":
        return None
    if isinstance(raw, bool) or not isinstance(raw, int):
        _wrong(where, raw, 'a whole number, 1 or more, or "all"')
    return _check_count(raw, raw, where)


def _database_from(value: str, base: Path) -> str:
    """A file path taken from ``base``; a ``sqlite:///`` URL's relative path too; other URLs as given."""
    prefix = "sqlite:///"
    if value.startswith(prefix):
        rest = value[len(prefix) :]
        if rest and rest != ":memory:" and not rest.startswith("/"):
            return str(base / rest)
        return value
    if "://" in value:
        return value
    return str(base / value)


def location_from(entry: str, base: Path) -> str:
    """A migrations location of the table, as the runner reads it.

    A path (with a separator, or a bare name without dots such as
    ``"migrations"``) is taken from ``base``. A dotted name is a package; when its
    folder is in the project (``<base>/a/b`` or ``<base>/src/a/b``, or its parent
    package is), that folder is used, so that ``create`` writes into the source
    tree and no command needs the package to be importable.
    """
    if "/" in entry or os.sep in entry or entry.startswith(".") or "." not in entry:
        return str(base / entry)
    parts = entry.split(".")
    for root in (base, base / "src"):
        folder = root.joinpath(*parts)
        if folder.is_dir() or (folder.parent / "__init__.py").is_file():
            return str(folder)
    return entry


def _check_seconds(number: float, raw: object, where: str) -> float:
    if not number >= 0:  # also refuses NaN
        _wrong(where, raw, "a number of seconds, 0 or more")
    return number


def _check_engine(setting: Setting, value: object, where: str) -> object:
    problem = engine_setting_problem(setting.name, value)
    if problem is not None:
        raise ConfigError(f"{where} {problem}")
    return value.strip() if isinstance(value, str) else value


def _check_count(count: int, raw: object, where: str) -> int:
    if count < 1:
        _wrong(where, raw, 'a whole number, 1 or more, or "all"')
    return count


def _wrong(where: str, raw: object, wanted: str) -> t.NoReturn:
    raise ConfigError(f"{where} is {raw!r}; it takes {wanted}.")


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value
