"""`channelflow init`: create or upgrade the database, the audit key and the first admin."""

from __future__ import annotations

import click

from channelflow.cli.app import common_options, json_option, runtime
from channelflow.cli.mail_cmd import dispatch
from channelflow.cli.output import interactive, print_json, progress_bar
from channelflow.exceptions import ChannelflowError
from channelflow.workflow.users import validate_name


@click.command("init")
@click.option(
    "--admin",
    default="admin",
    show_default=True,
    metavar="NAME",
    help="name of the first admin user (only used on a new database)",
)
@click.option("--demo", is_flag=True, help="load a deterministic synthetic data set")
@click.option(
    "--referrals",
    type=click.IntRange(min=7),
    default=40,
    show_default=True,
    metavar="N",
    help="with --demo: how many referrals",
)
@click.option(
    "--seed",
    type=int,
    default=2026,
    show_default=True,
    metavar="S",
    help="with --demo: random seed",
)
@json_option
@common_options
def init(
    admin: str, demo: bool, referrals: int, seed: int, as_json: bool, db: str | None, by: str | None
) -> None:
    """Create the database schema (or upgrade it) and the audit key; safe to run twice."""
    validate_name(admin)
    rt = runtime(db)
    created_schema, created_key = rt.initialise()
    first_admin = rt.workflow.add_first_admin(admin)
    report: dict[str, object] = {
        "database": rt.settings.database_url,
        "key_file": str(rt.settings.key_file),
        "created": created_schema,
        "created_key": created_key,
        "admin": first_admin.name if first_admin else None,
    }
    if demo:
        from channelflow import demo as demo_data

        show = interactive(as_json)
        with progress_bar("loading demo", referrals, show=show) as advance:
            summary = demo_data.load(rt.workflow, referrals=referrals, seed=seed, progress=advance)
        report["demo"] = summary.as_dict()
        # The emails the demo's latest decisions queued go out as they would in real use;
        # the demo stands whether or not they can go now.
        try:
            sent = len(dispatch(rt).sent)
            mail_problem = None
        except ChannelflowError as error:
            sent, mail_problem = 0, error.message
        report["emails"] = {"sent": sent, "not_sent_because": mail_problem}
    if as_json:
        print_json(report)
        return
    click.echo(("created" if created_schema else "upgraded") + f" {rt.settings.database_url}")
    if created_key:
        click.echo(
            f"created audit key {rt.settings.key_file} (keep it safe and outside backups "
            "of the database)"
        )
    if first_admin:
        click.echo(f"created admin user {first_admin.name}")
    if demo:
        click.echo(summary.render())
        if mail_problem is not None:
            click.echo(
                f"channelflow: warning: the demo's emails are queued but not sent "
                f"({mail_problem}); `channelflow outbox send` sends them",
                err=True,
            )
        else:
            emails = f"{sent} email(s) sent through the {rt.mail.transport} transport"
            if rt.mail.transport == "file":
                emails += f" into {rt.mail.mail_dir}/"
            click.echo(emails)


def register(group: click.Group) -> None:
    group.add_command(init)
