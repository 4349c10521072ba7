"""`channelflow user add|list`."""

from __future__ import annotations

import click

from channelflow.cli.app import acting_user, common_options, json_option, runtime
from channelflow.cli.output import print_json, print_table
from channelflow.states import Role
from channelflow.workflow.users import parse_role


@click.group("user")
def user() -> None:
    """Manage users and their roles."""


@user.command("add")
@click.argument("name")
@click.option(
    "--role",
    required=True,
    metavar="ROLE",
    help=f"one of: {', '.join(role.value for role in Role)}",
)
@click.option("--email", metavar="ADDRESS", help="where channelflow sends this user's emails")
@json_option
@common_options
def add(
    name: str, role: str, email: str | None, as_json: bool, db: str | None, by: str | None
) -> None:
    """Add a user (needs an admin's --by)."""
    rt = runtime(db)
    created = rt.workflow.add_user(name, parse_role(role), email=email, by=acting_user(rt, by))
    if as_json:
        print_json({"name": created.name, "role": created.role, "email": created.email})
    else:
        click.echo(f"added {created.name} ({created.role})")


@user.command("list")
@json_option
@common_options
def list_users(as_json: bool, db: str | None, by: str | None) -> None:
    """List users and their roles."""
    rt = runtime(db)
    rows = [{"name": u.name, "role": u.role, "email": u.email} for u in rt.workflow.list_users()]
    if as_json:
        print_json(rows)
    else:
        print_table(
            None, ["name", "role", "email"], [[r["name"], r["role"], r["email"]] for r in rows]
        )


def register(group: click.Group) -> None:
    group.add_command(user)
