"""`channelflow audit verify`."""

from __future__ import annotations

import click

from channelflow.audit.verify import count_events, verify_chain
from channelflow.cli.app import common_options, json_option, runtime
from channelflow.cli.output import interactive, print_json, progress_bar
from channelflow.exceptions import IntegrityFailure


@click.group("audit")
def audit() -> None:
    """Check the tamper-evident audit trail."""


@audit.command("verify")
@json_option
@common_options
def verify(as_json: bool, db: str | None, by: str | None) -> None:
    """Re-walk the whole audit trail and check every hash, link and signature.

    Exit 0 printing the number of events and the head hash; exit 6 naming the first bad
    sequence number.
    """
    rt = runtime(db)
    show = interactive(as_json)
    total = count_events(rt.engine) if show else 0
    try:
        with progress_bar("verifying", total, show=show) as advance:
            result = verify_chain(rt.engine, rt.key, progress=advance)
    except IntegrityFailure as failure:
        if as_json:
            print_json({"ok": False, "first_bad_seq": failure.sequence, "error": failure.message})
        raise
    if as_json:
        print_json({"ok": True, "count": result.count, "head": result.head})
    else:
        click.echo(f"audit trail verified: {result.count} events, head {result.head}")


def register(group: click.Group) -> None:
    group.add_command(audit)
