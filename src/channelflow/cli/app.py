"""The root command group and the options every command shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from channelflow.runtime import Runtime
from channelflow.settings import VARIABLES, Settings

F = TypeVar("F", bound=Callable[..., Any])

_ENVIRONMENT_HELP = "\n".join(f"  {name:<29} {meaning}" for name, meaning in VARIABLES.items())


def db_option(function: F) -> F:
    """``--db``, for operator commands that act as no user."""
    return click.option(
        "--db",
        "db",
        metavar="URL",
        default=None,
        help="database URL or SQLite file (default: CHANNELFLOW_DATABASE_URL or ./channelflow.db)",
    )(function)


def common_options(function: F) -> F:
    """``--db`` and ``--by``, accepted by every command that acts for a user."""
    function = click.option(
        "--by",
        "by",
        metavar="USER",
        default=None,
        help="who is acting (default: CHANNELFLOW_USER)",
    )(function)
    return db_option(function)


def json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="print JSON")(function)


def runtime(db: str | None) -> Runtime:
    ctx = click.get_current_context()
    rt = Runtime(Settings.from_environment(db=db))
    ctx.call_on_close(rt.close)
    return rt


def acting_user(rt: Runtime, by: str | None) -> str | None:
    return by or rt.settings.user


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="\b\nEnvironment:\n" + _ENVIRONMENT_HELP,
)
@click.version_option(package_name="channelflow")
def root() -> None:
    """channelflow: run the Prevent referral-to-Channel process.

    Referrals move through received, screened, panel_review, accepted or declined,
    intervention and closed; every change is kept in a tamper-evident audit trail.
    Start with `channelflow init`, then `channelflow --help` on each command.
    """


def register() -> None:
    from channelflow.cli import (
        audit_cmd,
        init_cmd,
        lifecycle_cmd,
        mail_cmd,
        meetings_cmd,
        referral_cmd,
        retention_cmd,
        run_cmd,
        sar_cmd,
        templates_cmd,
        toolkit_cmd,
        user_cmd,
    )

    for module in (
        init_cmd,
        user_cmd,
        referral_cmd,
        lifecycle_cmd,
        audit_cmd,
        templates_cmd,
        mail_cmd,
        meetings_cmd,
        run_cmd,
        toolkit_cmd,
        retention_cmd,
        sar_cmd,
    ):
        module.register(root)


register()
