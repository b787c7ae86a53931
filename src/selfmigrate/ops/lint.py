"""Linting migration files: :func:`lint`, its :class:`Finding` values and :class:`LintReport`.

Holds what is the same for every engine: reading the files, the ``migrate:accept``
directives, ``since``, levels and the report. The checks are the engine's (its ``lint``
module, loaded through backends.select; SQLite when no database is given). Must not know
an engine nor a face.
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass

from ..errors import ConfigError

if t.TYPE_CHECKING:
    import os

    from ..core.locations import LocationsSpec
    from ..core.migration import Migration
    from ..core.registry import MigrationRegistry

Level = t.Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Rule:
    """One kind of finding: its code, level, title and the fix the linter suggests."""

    code: str
    #: ``"error"``: the migration fails or loses data on a real database;
    #: ``"warning"``: very likely a mistake; ``"info"``: what the linter could not check.
    level: Level
    title: str
    fix: str


#: The rules of the linter itself, whatever the engine.
_OWN_RULES = (
    Rule(
        "SM002",
        "warning",
        "an accept directive names an unknown code",
        "name a code from docs/lint.rst (SM101 … SM109)",
    ),
)
#: The accept directive, by kind of file: a comment line of that language.
_ACCEPT = {
    kind: re.compile(rf"^\s*{marker}\s*migrate:accept\b(?P<rest>.*)$", re.IGNORECASE | re.MULTILINE)
    for kind, marker in (("sql", "--"), ("py", "#"))
}
_CODE = re.compile(r"\bSM\d{3}\b", re.IGNORECASE)
_LEVELS: tuple[Level, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One thing the linter found."""

    code: str
    level: Level
    #: The migration file.
    path: str
    #: The line of the file (``None`` where it cannot be told).
    line: int | None
    message: str
    fix: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.code} {self.message} (fix: {self.fix})"

    def as_dict(self) -> dict[str, object]:
        """The finding as a JSON-ready dict."""
        return {
            "code": self.code,
            "level": self.level,
            "path": self.path,
            "line": self.line,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class LintReport:
    """The result of :func:`lint`."""

    #: The migration files read.
    migrations: tuple[Migration, ...]
    #: What was found and not accepted, in file order.
    findings: tuple[Finding, ...]
    #: What was found and accepted by a ``migrate:accept`` directive.
    accepted: tuple[Finding, ...] = ()

    @property
    def errors(self) -> tuple[Finding, ...]:
        """The findings of level ``error``."""
        return tuple(f for f in self.findings if f.level == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """The findings of level ``warning``."""
        return tuple(f for f in self.findings if f.level == "warning")

    def failing(self, *, strict: bool = False) -> tuple[Finding, ...]:
        """The findings that fail a check: errors, and warnings too when ``strict``."""
        return tuple(f for f in self.findings if f.level == "error" or (strict and f.level == "warning"))


def _engine(database: str | os.PathLike[str] | None) -> t.Any:
    from ..backends.select import job

    return job(database, "lint", what="The linter")


def rules(database: str | os.PathLike[str] | None = None) -> dict[str, Rule]:
    """Every rule of the linter for the engine of ``database`` (SQLite when ``None``), by code.

    :raises ConfigError: the engine has no linter.
    """
    return _rules(_engine(database))


def _rules(engine: t.Any) -> dict[str, Rule]:
    found = {rule.code: rule for rule in _OWN_RULES}
    for code, (level, title, fix) in engine.RULES.items():
        assert level in _LEVELS, (code, level)
        found[code] = Rule(code, level, title, fix)
    return dict(sorted(found.items()))


def lint(
    migrations: MigrationRegistry | LocationsSpec,
    *,
    since: int | None = None,
    database: str | os.PathLike[str] | None = None,
) -> LintReport:
    """Lint every migration of ``migrations``; needs no database and writes nothing.

    :param since: report only on migrations newer than this version (the older
        ones are still replayed, for the schema): for a project whose applied
        migrations cannot be edited to accept a finding.
    :param database: the database the migrations are for, only to choose the
        engine's rules (it is not opened); ``None``: SQLite.
    :raises DiscoveryError: a file breaks the naming rule, two share a version,
        or one cannot be loaded (``verify`` reports those too).
    :raises ConfigError: a bad ``since``, or an engine that has no linter.
    """
    from ..core.registry import MigrationRegistry

    if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
        raise ConfigError(f"since must be a migration version (0 or more), not {since!r}.")
    engine = _engine(database)
    known = _rules(engine)
    registry = migrations if isinstance(migrations, MigrationRegistry) else MigrationRegistry(migrations)
    found = registry.migrations
    loaded = [m.load() for m in found]
    findings: list[Finding] = []
    accepted: list[Finding] = []
    with engine.Linter() as linter:
        for body in loaded:
            migration = body.migration
            text = migration.read_text()
            up = body.up_sql if body.up_sql is not None else body.up_function
            down = body.down_sql if body.down_sql is not None else body.down_function
            hits = linter.check(
                migration.location,
                text,
                up=up,
                down=down,
                transactional=body.transactional,
                compatible=body.compatible,
            )
            if since is not None and migration.version <= since:
                continue
            codes, unknown = _accepted_codes(text, migration, known)
            findings.extend(unknown)
            for code, line, message in hits:
                finding = _finding(known[code], migration.location, line, message)
                (accepted if code in codes else findings).append(finding)
    return LintReport(found, tuple(findings), tuple(accepted))


def _accepted_codes(text: str, migration: Migration, known: dict[str, Rule]) -> tuple[set[str], list[Finding]]:
    codes: set[str] = set()
    unknown: list[Finding] = []
    for match in _ACCEPT[migration.kind].finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        for code in _CODE.findall(match.group("rest")):
            code = code.upper()
            if code in known:
                codes.add(code)
            else:
                message = f"'migrate:accept {code}': no rule has code {code}"
                unknown.append(_finding(known["SM002"], migration.location, line, message))
    return codes, unknown


def _finding(rule: Rule, path: str, line: int | None, message: str) -> Finding:
    return Finding(rule.code, rule.level, path, line, message, rule.fix)
