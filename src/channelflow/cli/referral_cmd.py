"""`channelflow referral add|list|show|fire|events`."""

from __future__ import annotations

from typing import Any

import click

from channelflow import categories, clock
from channelflow.audit.canonical import parse_time
from channelflow.cli.app import acting_user, common_options, json_option, runtime
from channelflow.cli.mail_cmd import describe, dispatch
from channelflow.cli.output import print_json, print_table
from channelflow.exceptions import ChannelflowError, InvalidInput
from channelflow.runtime import Runtime
from channelflow.states import REFERRAL_LIFECYCLE
from channelflow.workflow import views
from channelflow.workflow.dates import parse_date, parse_datetime
from channelflow.workflow.engine import NewReferral


@click.group("referral")
def referral() -> None:
    """Record referrals and move them through the lifecycle."""


@referral.command("add")
@click.option("--received", required=True, metavar="DATE", help="date received (YYYY-MM-DD)")
@click.option(
    "--sector",
    required=True,
    metavar="SECTOR",
    help=f"sector of referral: {', '.join(categories.values('sector'))}",
)
@click.option(
    "--concern",
    required=True,
    metavar="CONCERN",
    help=f"type of concern: {', '.join(categories.values('concern'))}",
)
@click.option("--subject-name", required=True, metavar="NAME", help="the referred person's name")
@click.option("--dob", required=True, metavar="DATE", help="their date of birth (YYYY-MM-DD)")
@click.option("--referrer-org", metavar="ORG", help="the referring organisation")
@click.option("--address", metavar="TEXT", help="their address")
@click.option("--school", metavar="TEXT", help="their school or college")
@json_option
@common_options
def add(
    received: str,
    sector: str,
    concern: str,
    subject_name: str,
    dob: str,
    referrer_org: str | None,
    address: str | None,
    school: str | None,
    as_json: bool,
    db: str | None,
    by: str | None,
) -> None:
    """Record a new referral (a coordinator or the police) and print its reference."""
    details = NewReferral(
        received_on=parse_date(received, what="--received"),
        sector=sector,
        concern=concern,
        subject_name=subject_name,
        date_of_birth=parse_date(dob, what="--dob"),
        referrer_org=referrer_org,
        address=address,
        school=school,
    )
    rt = runtime(db)
    reference = rt.workflow.open_referral(details, by=acting_user(rt, by))
    if as_json:
        print_json({"reference": reference})
    else:
        click.echo(reference)


@referral.command("list")
@click.option("--state", metavar="STATE", help="only referrals in this state")
@click.option("--limit", type=int, metavar="N", help="at most N referrals")
@json_option
@common_options
def list_referrals(
    state: str | None, limit: int | None, as_json: bool, db: str | None, by: str | None
) -> None:
    """List the referrals you may see (no personal details)."""
    rt = runtime(db)
    rows = views.list_cases(rt.workflow, by=acting_user(rt, by), state=state, limit=limit)
    if as_json:
        print_json(rows)
        return
    columns = ["reference", "state", "received_on", "sector", "panel_on", "lead", "next_review_on"]
    print_table(
        f"{len(rows)} referral" + ("" if len(rows) == 1 else "s"),
        columns,
        [[r[c] for c in columns] for r in rows],
    )


@referral.command("show")
@click.argument("reference")
@json_option
@common_options
def show(reference: str, as_json: bool, db: str | None, by: str | None) -> None:
    """Show one referral and its history (reading it is logged)."""
    rt = runtime(db)
    view = views.show_case(rt.workflow, reference, by=acting_user(rt, by))
    if as_json:
        print_json(view)
        return
    _print_case(view)


def _print_case(view: dict[str, Any]) -> None:
    click.echo(f"{view['reference']}  {view['state']}  (version {view['version']})")
    for name in (
        "received_on",
        "sector",
        "concern",
        "referrer_org",
        "gateway_outcome",
        "panel_on",
        "lead",
        "consent",
        "support_plan",
        "provider",
        "next_review_on",
        "onward_route",
        "close_code",
        "exited_on",
        "closed_on",
        "linked_from",
    ):
        if view.get(name) is not None:
            click.echo(f"  {name.replace('_', ' ')}: {view[name]}")
    personal = view.get("personal")
    if "personal" in view and personal is None:
        removed = view.get("personal_removed_on")
        click.echo(
            f"  personal details: removed under retention on {removed}"
            if removed
            else "  personal details: none held"
        )
    if personal:
        click.echo("  personal details:")
        for name, value in personal.items():
            if value is not None:
                click.echo(f"    {name.replace('_', ' ')}: {value}")
    for due in view["due_reviews"]:
        click.echo(f"  review due: {due['kind']} on {due['due_on']}")
    print_table(
        "history",
        ["seq", "occurred", "event", "from", "to", "by", "reason"],
        [
            [
                h["seq"],
                _local(h["occurred_at"]),
                h["event"],
                h["from"],
                h["to"],
                f"{h['actor']} ({h['role']})",
                h["reason"],
            ]
            for h in view["history"]
        ],
    )


def _local(audit_time: str) -> str:
    """An audit timestamp (UTC) as Europe/London wall-clock time, to the minute."""
    return parse_time(audit_time).astimezone(clock.LOCAL_ZONE).strftime("%Y-%m-%d %H:%M")


def _parse_set(pairs: tuple[str, ...]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInput("each --set takes KEY=VALUE")
        if key in values:
            raise InvalidInput(f"--set {key} is given twice")
        values[key] = value
    return values


def _events_help() -> str:
    lines = ["\b", "Events (who may fire them; what they need):"]
    for spec in REFERRAL_LIFECYCLE.events:
        needs = [
            f"{key.name}={'|'.join(key.choices) if key.choices else key.kind.value.upper()}"
            + ("" if key.required else " (optional)")
            for key in spec.keys
        ]
        if spec.reason_required:
            needs.append("--reason")
        roles = ", ".join(sorted(spec.roles))
        lines.append(f"  {spec.name} [{roles}]: {'; '.join(needs) or 'nothing'}")
    return "\n".join(lines)


@referral.command("fire", epilog=_events_help())
@click.argument("reference")
@click.argument("event")
@click.option("--reason", metavar="TEXT", help="why (free text; no personal details)")
@click.option(
    "--at",
    "at",
    metavar="DATETIME",
    help="when it happened (default now; Europe/London unless an offset is given)",
)
@click.option(
    "--set",
    "set_values",
    multiple=True,
    metavar="KEY=VALUE",
    help="the event's data, e.g. --set outcome=proceed (repeatable)",
)
@click.option(
    "--if-version",
    "if_version",
    type=int,
    metavar="N",
    help="refuse (exit 5) unless the referral is still at version N",
)
@json_option
@common_options
def fire(
    reference: str,
    event: str,
    reason: str | None,
    at: str | None,
    set_values: tuple[str, ...],
    if_version: int | None,
    as_json: bool,
    db: str | None,
    by: str | None,
) -> None:
    """Fire EVENT on a referral (see `channelflow lifecycle` and `referral events`)."""
    values = _parse_set(set_values)
    occurred = parse_datetime(at, what="--at") if at else None
    rt = runtime(db)
    result = rt.workflow.fire(
        reference,
        event,
        by=acting_user(rt, by),
        reason=reason,
        at=occurred,
        values=values,
        expected_version=if_version,
    )
    if as_json:
        print_json(
            {
                "reference": result.reference,
                "event": result.event,
                "from": result.from_state,
                "to": result.to_state,
                "version": result.version,
                "seq": result.seq,
                "data": result.data,
                "opened": result.opened,
                "emails_queued": result.emails_queued,
                "no_email": list(result.no_email),
            }
        )
        _send_queued(rt, result.emails_queued)
        return
    click.echo(
        f"{result.reference}: {result.event} ({result.from_state} -> {result.to_state}),"
        f" version {result.version}"
    )
    for name in ("panel", "first_review", "next_review"):
        if name in result.data:
            click.echo(f"  {name.replace('_', ' ')}: {result.data[name]}")
    if result.opened:
        click.echo(f"  opened linked referral {result.opened}")
    for name in result.no_email:
        click.echo(
            f"channelflow: warning: {name} has no email address, so was not emailed", err=True
        )
    _send_queued(rt, result.emails_queued)


def _send_queued(rt: Runtime, queued: int) -> None:
    """Send what the change queued now; the change stands whatever happens to the email."""
    if not queued:
        return
    try:
        report = dispatch(rt)
    except Exception as error:
        # The change is committed: whatever went wrong with sending, it must not read as
        # though the change failed.
        why = error.message if isinstance(error, ChannelflowError) else type(error).__name__
        click.echo(
            f"channelflow: warning: email queued but not sent yet ({why}); "
            "`channelflow outbox send` retries it",
            err=True,
        )
        return
    click.echo(f"  email: {describe(report)}", err=True)


@referral.command("events")
@click.argument("reference")
@json_option
@common_options
def events(reference: str, as_json: bool, db: str | None, by: str | None) -> None:
    """List the events you may fire on a referral now, and what each needs."""
    rt = runtime(db)
    rows = views.available_events(rt.workflow, reference, by=acting_user(rt, by))
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo(f"you may fire no event on {reference} now")
        return
    print_table(
        None,
        ["event", "to", "requires", "optional", "what it does"],
        [
            [r["event"], r["dest"], " ".join(r["requires"]), " ".join(r["optional"]), r["summary"]]
            for r in rows
        ],
    )


def register(group: click.Group) -> None:
    group.add_command(referral)
