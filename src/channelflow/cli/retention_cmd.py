"""`channelflow retention apply`."""

from __future__ import annotations

import click

from channelflow import retention as purging
from channelflow.cli.app import acting_user, common_options, json_option, runtime
from channelflow.cli.output import print_json


@click.group("retention")
def retention() -> None:
    """Remove personal details once the retention period has run out."""


@retention.command("apply")
@click.option("--dry-run", is_flag=True, help="list what would be removed; change nothing")
@json_option
@common_options
def apply(dry_run: bool, as_json: bool, db: str | None, by: str | None) -> None:
    """Remove the personal details of referrals closed longer ago than the retention period.

    The period is `years` in the [retention] table of channelflow.toml (default 6). The
    name, date of birth, address and school of each such referral are deleted; the referral,
    its history and the audit trail stay, and the purge is recorded in the trail. Admins
    only.
    """
    rt = runtime(db)
    years = rt.config.retention.years
    purge = purging.apply(rt.workflow, years=years, by=acting_user(rt, by), dry_run=dry_run)
    if as_json:
        print_json(
            {
                "purged": purge.count,
                "references": list(purge.references),
                "dry_run": purge.dry_run,
                "closed_before": purge.closed_before.isoformat(),
                "years": purge.years,
            }
        )
        return
    closed = f"closed before {purge.closed_before.isoformat()} ({purge.years}-year retention)"
    if not purge.references:
        click.echo(f"nothing to purge: no referral {closed} still holds personal details")
        return
    cases = f"{purge.count} referral" + ("" if purge.count == 1 else "s")
    if purge.dry_run:
        click.echo(f"would purge the personal details of {cases} {closed}; nothing was changed:")
    else:
        click.echo(
            f"purged the personal details of {cases} {closed}, recorded as audit event {purge.seq}:"
        )
    for reference in purge.references:
        click.echo(f"  {reference}")


def register(group: click.Group) -> None:
    group.add_command(retention)
