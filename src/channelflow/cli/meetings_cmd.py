"""`channelflow panel|board list|add|move|cancel|agenda`: the two meeting calendars."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any

import click

from channelflow import clock
from channelflow.cli.app import acting_user, common_options, db_option, json_option, runtime
from channelflow.cli.output import print_json, print_table
from channelflow.exceptions import InvalidInput, MeetingNotFound
from channelflow.meetings.calendar import ScheduledMeeting
from channelflow.notifications.kinds import BoardReminder, PanelAgenda, body_name
from channelflow.planning.agenda import build_agenda
from channelflow.planning.summary import board_period, board_summary
from channelflow.runtime import Runtime
from channelflow.store.db import read_session
from channelflow.workflow.dates import parse_date, parse_datetime

DEFAULT_SPAN = timedelta(days=365)


def _row(meeting: ScheduledMeeting) -> list[Any]:
    data = meeting.as_dict()
    return [data["date"], data["starts_at"], data["status"], data["origin"], data["sequence"]]


def _meeting_time(text: str, what: str) -> datetime:
    if len(text.strip()) == 10:
        raise InvalidInput(f"{what} needs a time of day too, such as {text.strip()}T10:00")
    return parse_datetime(text, what=what)


def _report(rt: Runtime, meeting: ScheduledMeeting, what: str, as_json: bool) -> None:
    if as_json:
        print_json(meeting.as_dict())
    else:
        click.echo(_changed(meeting, what))
    if not meeting.cancelled and not rt.planner.workdays.is_working_day(meeting.day):
        click.echo(
            f"channelflow: warning: {meeting.day.isoformat()} is a weekend day or bank holiday",
            err=True,
        )


def _when(meeting: ScheduledMeeting) -> str:
    local = meeting.starts_at.astimezone(clock.LOCAL_ZONE)
    return f"{local:%A} {local.day} {local:%B %Y at %H:%M}"


def _changed(meeting: ScheduledMeeting, what: str) -> str:
    return (
        f"{what} the {body_name(meeting.body)} meeting on {_when(meeting)} "
        f"(invitation sequence {meeting.sequence})"
    )


def _agenda_of(rt: Runtime, body: str, day: date | None) -> tuple[ScheduledMeeting, Any]:
    """The meeting on ``day`` (default: the next one) and its agenda or board summary now."""
    book = rt.meetings
    calendar = book.calendar(body)
    now = clock.now()
    if day is None:
        meeting = calendar.next_after(clock.today() - timedelta(days=1))
        if meeting is None:
            raise MeetingNotFound(f"no {body} meeting is scheduled in the next year")
    else:
        found = calendar.on(day)
        if not found:
            raise MeetingNotFound(f"no {body} meeting is on {day.isoformat()}")
        meeting = found[0]
    settings = book.settings(body)
    with read_session(rt.engine) as session:
        connection = session.connection()
        if body == "panel":
            return meeting, build_agenda(connection, calendar, meeting, now=now)
        period_from, period_to = board_period(
            calendar, meeting, rt.planner.sends_on, rt.planner.sends_on(meeting)
        )
        return meeting, board_summary(
            connection, meeting.context(settings), period_from=period_from, period_to=period_to
        )


# The (name, count) pairs of an agenda or a board summary, shown as JSON objects.
_COUNTS = (
    "counts_by_state",
    "referrals_by_sector",
    "referrals_by_outcome",
    "cases_by_state",
    "ratings_by_colour",
)


def _agenda_json(meeting: ScheduledMeeting, content: PanelAgenda | BoardReminder) -> dict[str, Any]:
    data = asdict(content)
    data["meeting"] = meeting.as_dict()
    for name in _COUNTS:
        if name in data:
            data[name] = dict(data[name])
    return data


def _print_agenda(meeting: ScheduledMeeting, content: PanelAgenda | BoardReminder) -> None:
    click.echo(f"{body_name(meeting.body)}, {_when(meeting)}")
    if isinstance(content, PanelAgenda):
        click.echo(f"new cases: {', '.join(content.new_cases) or 'none'}")
        click.echo(f"adjourned to it: {', '.join(content.adjourned) or 'none'}")
        reviews = [f"{r.reference} ({r.due_on.isoformat()})" for r in content.reviews_due]
        click.echo(f"support plan reviews due: {', '.join(reviews) or 'none'}")
        post_exit = [
            f"{r.reference} ({r.review}, {r.due_on.isoformat()})" for r in content.post_exit_reviews
        ]
        click.echo(f"post-exit reviews due: {', '.join(post_exit) or 'none'}")
        click.echo("cases by state: " + ", ".join(f"{s} {n}" for s, n in content.counts_by_state))
        return
    click.echo(
        f"referrals {content.period_from.isoformat()} to {content.period_to.isoformat()} "
        "by sector: " + (", ".join(f"{s} {n}" for s, n in content.referrals_by_sector) or "none")
    )
    click.echo(
        "by outcome: " + (", ".join(f"{s} {n}" for s, n in content.referrals_by_outcome) or "none")
    )
    click.echo("cases by state: " + ", ".join(f"{s} {n}" for s, n in content.cases_by_state))
    click.echo(f"overdue reviews: {content.overdue_reviews}")
    click.echo(
        "toolkit ratings: "
        + (", ".join(f"{s} {n}" for s, n in content.ratings_by_colour) or "not loaded")
    )


def meeting_group(body: str) -> click.Group:
    title = body_name(body)

    @click.group(
        body,
        help=f"The {title}'s meetings: the rule from the configuration, "
        "with meetings moved, cancelled or added by hand.",
    )
    def group() -> None:
        pass

    @group.command("list")
    @click.option("--from", "first", metavar="DATE", help="first day (default today)")
    @click.option("--to", "last", metavar="DATE", help="last day (default a year after --from)")
    @json_option
    @db_option
    def list_meetings(first: str | None, last: str | None, as_json: bool, db: str | None) -> None:
        """List meetings, cancelled ones included."""
        start = parse_date(first, what="--from") if first else clock.today()
        end = parse_date(last, what="--to") if last else start + DEFAULT_SPAN
        if end < start:
            raise InvalidInput("--to is before --from")
        meetings = runtime(db).meetings.calendar(body).meetings(start, end, include_cancelled=True)
        if as_json:
            print_json([meeting.as_dict() for meeting in meetings])
        else:
            print_table(
                f"{title} meetings",
                ["date", "starts at", "status", "origin", "sequence"],
                [_row(meeting) for meeting in meetings],
            )

    @group.command("add")
    @click.argument("when", metavar="DATETIME")
    @json_option
    @common_options
    def add(when: str, as_json: bool, db: str | None, by: str | None) -> None:
        """Add a meeting at DATETIME (Europe/London unless an offset is given)."""
        rt = runtime(db)
        starts_at = _meeting_time(when, "the meeting time")
        meeting = rt.meetings.add(body, starts_at, by=acting_user(rt, by))
        _report(rt, meeting, "added", as_json)

    @group.command("move")
    @click.argument("day", metavar="DATE")
    @click.argument("when", metavar="NEW_DATETIME")
    @json_option
    @common_options
    def move(day: str, when: str, as_json: bool, db: str | None, by: str | None) -> None:
        """Move the meeting on DATE to NEW_DATETIME; its agenda is planned again."""
        rt = runtime(db)
        meeting = rt.meetings.move(
            body,
            parse_date(day, what="the meeting date"),
            _meeting_time(when, "the new meeting time"),
            by=acting_user(rt, by),
        )
        _report(rt, meeting, "moved", as_json)

    @group.command("cancel")
    @click.argument("day", metavar="DATE")
    @json_option
    @common_options
    def cancel(day: str, as_json: bool, db: str | None, by: str | None) -> None:
        """Cancel the meeting on DATE (members who had its invitation are told)."""
        rt = runtime(db)
        meeting = rt.meetings.cancel(
            body, parse_date(day, what="the meeting date"), by=acting_user(rt, by)
        )
        _report(rt, meeting, "cancelled", as_json)

    @group.command("agenda")
    @click.option("--date", "day", metavar="DATE", help="the meeting's date (default: the next)")
    @json_option
    @common_options
    def agenda(day: str | None, as_json: bool, db: str | None, by: str | None) -> None:
        """Preview what the meeting's email would say now, without sending anything."""
        chosen = parse_date(day, what="--date") if day else None
        rt = runtime(db)
        rt.meetings.agenda_reader(body, by=acting_user(rt, by))
        meeting, content = _agenda_of(rt, body, chosen)
        if as_json:
            print_json(_agenda_json(meeting, content))
        else:
            _print_agenda(meeting, content)

    return group


def register(group: click.Group) -> None:
    group.add_command(meeting_group("panel"))
    group.add_command(meeting_group("board"))
