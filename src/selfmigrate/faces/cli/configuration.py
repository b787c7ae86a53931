"""The ``config`` command: each effective setting and where it came from.

Holds how :class:`~selfmigrate.faces.project_settings.ProjectSettings` is shown, as text
or JSON. Must not read settings itself (the group did), nor open a database.
"""

from __future__ import annotations

import json
import os
import typing as t

import click

from ..project_settings import ProjectSettings
from .settings import Settings, pass_settings


@click.command("config", short_help="Show each setting's value and where it came from.")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as one JSON object.")
@pass_settings
def config_command(settings: Settings, as_json: bool) -> None:
    """Show each effective setting, its value and where it came from.

    Precedence: command-line option > environment variable (SELFMIGRATE_*) >
    the [tool.selfmigrate] table of the nearest pyproject.toml (searched from
    the working directory upward) > default. Under 'flask', the values come
    from the app's config instead. Opens no database.
    """
    project = settings.project
    if project is None:  # settings built by hand, without their sources
        raise click.UsageError("These settings do not record where they came from.")
    if as_json:
        click.echo(json.dumps(project.document(), indent=2))
        return
    _echo(project)


def _echo(project: ProjectSettings) -> None:
    if project.label:
        click.echo(project.label)
    click.echo(f"Precedence: {' > '.join(project.precedence_labels)}.")
    short = {str(project.pyproject): "pyproject.toml"} if project.pyproject is not None else {}
    rows = [(name, _shown(v.value), short.get(v.origin, v.origin)) for name, v in project.values.items()]
    name_width = max(len(name) for name, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    for name, value, origin in rows:
        click.echo(f"  {name.ljust(name_width)}  {value.ljust(value_width)}  ({origin})")


def _shown(value: t.Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        # One with a space in quotes: "a b" is one folder, a b two locations.
        shown = (os.fspath(v) for v in value)
        return " ".join(f"'{v}'" if any(c.isspace() for c in v) else v for v in shown) if value else "(none)"
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)
