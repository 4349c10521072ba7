"""`channelflow templates`: list, check and preview the email templates."""

from __future__ import annotations

from typing import Any

import click

from channelflow.cli.app import json_option, runtime
from channelflow.cli.output import print_json, print_table
from channelflow.exceptions import InvalidInput
from channelflow.notifications.kinds import DESCRIPTIONS, Kind, sample
from channelflow.notifications.templates import PARTS, template_name


@click.group("templates")
def templates() -> None:
    """The email templates (override any of them in CHANNELFLOW_TEMPLATES_DIR)."""


@templates.command("list")
@json_option
def list_templates(as_json: bool) -> None:
    """List every kind of email and where each of its templates comes from."""
    found = runtime(None).templates
    rows: list[dict[str, Any]] = [
        {
            "kind": kind.value,
            "description": DESCRIPTIONS[kind],
            "files": {template_name(kind, part): found.source_of(kind, part) for part in PARTS},
        }
        for kind in Kind
    ]
    if as_json:
        print_json(rows)
        return
    print_table(
        "Email templates",
        ("kind", "description", "source"),
        [
            (
                row["kind"],
                row["description"],
                "override" if "override" in row["files"].values() else "built-in",
            )
            for row in rows
        ],
    )


@templates.command("check")
def check() -> None:
    """Render every template with sample data; exit 2 naming the first broken one."""
    found = runtime(None).templates
    found.check()
    overridden = sum(found.source_of(kind, part) == "override" for kind in Kind for part in PARTS)
    click.echo(f"all {len(Kind)} kinds of email render ({overridden} files overridden)")


@templates.command("preview")
@click.argument("kind")
@click.option("--html", "as_html", is_flag=True, help="show the HTML part instead of the text")
def preview(kind: str, as_html: bool) -> None:
    """Render KIND with sample data (see `templates list` for the kinds)."""
    try:
        chosen = Kind(kind)
    except ValueError:
        raise InvalidInput(
            f"unknown kind {kind!r}; use one of: {', '.join(item.value for item in Kind)}"
        ) from None
    rendered = runtime(None).templates.render(sample(chosen))
    click.echo(f"Subject: {rendered.subject}\n")
    click.echo(rendered.html if as_html else rendered.text, nl=False)


def register(group: click.Group) -> None:
    group.add_command(templates)
