"""`channelflow run`: the process a council leaves running."""

from __future__ import annotations

import logging
import re
import signal
import sys
from datetime import datetime, timedelta
from types import FrameType

import click

from channelflow import clock
from channelflow.cli.app import db_option, runtime
from channelflow.cli.mail_cmd import describe
from channelflow.exceptions import InvalidInput
from channelflow.scheduler import Scheduler
from channelflow.workflow.dates import parse_datetime

# A few days or weeks ahead of the real clock, for previews: "+10d", "+6w".
_AHEAD = re.compile(r"\+([0-9]{1,4})([dw])")
# How far ahead of the real clock --now may be before it counts as the future (clock skew).
_SLACK = timedelta(minutes=5)


@click.command("run")
@click.option("--once", is_flag=True, help="one planning and sending pass, then exit")
@click.option(
    "--now",
    "now_text",
    metavar="DATETIME",
    help="with --once: act as if it were this instant (Europe/London unless an offset is "
    "given), or this long from now: +10d, +6w",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="with --once: list what would be planned, and plan and send nothing",
)
@db_option
def run(once: bool, now_text: str | None, dry_run: bool, db: str | None) -> None:
    """Plan agendas, reminders and board summaries as they fall due, and send them.

    Runs until stopped (SIGTERM or Ctrl-C finish the email being sent, then exit). With
    --once it plans and sends everything due by now (or --now) and exits: a way to catch
    up or to run from cron. --once --dry-run --now DATE previews what would go by then.
    """
    if now_text is not None and not once:
        raise InvalidInput("--now needs --once: a running process follows the real clock")
    if dry_run and not once:
        raise InvalidInput("--dry-run needs --once")
    rt = runtime(db)
    if now_text is not None:
        instant = _instant(now_text)
        if not dry_run and instant > clock.now() + _SLACK and rt.mail.transport != "file":
            # Planned email is planned once: sent early now, it would not be sent when due.
            raise InvalidInput(
                f"--now is in the future, so this would send real email early through the "
                f"{rt.mail.transport} transport; preview with --dry-run"
            )
        clock.set_now(instant)
    # Checked before anything is planned: a bad template, mail setting or member fails now.
    rt.templates.check()
    rt.transport().close()
    rt.planner.check()
    scheduler = Scheduler(rt.planner, rt.dispatcher, rt.config.schedule)
    if once:
        # Warnings (a member without an address, sending paused) go to stderr as they happen.
        logging.basicConfig(
            stream=sys.stderr, level=logging.WARNING, format="channelflow: warning: %(message)s"
        )
    if dry_run:
        plan = scheduler.plan(dry_run=True)
        click.echo(plan.describe())
        for key in plan.keys:
            click.echo(f"  {key}")
        return
    if once:
        report = scheduler.run_once()
        click.echo(report.plan.describe())
        click.echo(describe(report.dispatch))
        return
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # APScheduler reports every job run at INFO; channelflow logs what each pass did.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)

    def stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("channelflow.scheduler").info(
            "%s received: finishing the current email", signal.Signals(signum).name
        )
        scheduler.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheduler.run_forever()


def _instant(text: str) -> datetime:
    ahead = _AHEAD.fullmatch(text.strip())
    if ahead is None:
        return parse_datetime(text, what="--now")
    count, unit = int(ahead.group(1)), ahead.group(2)
    return clock.now() + timedelta(days=count * (7 if unit == "w" else 1))


def register(group: click.Group) -> None:
    group.add_command(run)
