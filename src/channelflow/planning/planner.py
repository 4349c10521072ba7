"""One planning pass: everything that has fallen due by ``now``, queued once, in one transaction.

Each email has an occasion (a meeting's version, a review's due date and lead time, a toolkit
action's review date) that makes its idempotency key, so planning the same instant twice, or a
pass that overlaps another, queues nothing new. The pass is one transaction: a crash leaves
nothing half-planned, and the next pass plans the same things again.

What falls due is derived from the database, not remembered in a job store: a pass covers
every occasion up to ``now``. The watermark (the instant the last pass completed) bounds how
far back it looks for meetings already held; with none yet, it starts from `channelflow init`.
Upcoming meetings and open reviews are always looked at whatever the watermark says, so a
change committed while a pass ran is planned by the next one.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache, partial
from typing import NamedTuple

from sqlalchemy import Connection, Engine, func, insert, select, update

from channelflow import clock
from channelflow.config import BodySettings, Config
from channelflow.meetings.calendar import MeetingCalendar, ScheduledMeeting
from channelflow.meetings.workdays import WorkingDays
from channelflow.notifications.kinds import (
    AgendaAddendum,
    Context,
    MeetingCancelled,
    MeetingMoved,
    ProcessReviewReminder,
    ReviewDue,
    ReviewEscalation,
    ReviewReminder,
)
from channelflow.notifications.notifier import Notice, Notifier
from channelflow.planning.agenda import AgendaWindow, build_agenda, panel_cases
from channelflow.planning.recipients import Directory, Recipient
from channelflow.planning.summary import board_period, board_summary
from channelflow.states import referral as lc
from channelflow.store.db import write_connection
from channelflow.store.models import (
    AgendaItem,
    MeetingNotice,
    Meta,
    OutboxMessage,
    PostExitReview,
    Referral,
)
from channelflow.toolkit.queries import due_actions

log = logging.getLogger("channelflow.planning")

WATERMARK = "planned_through"
INITIALISED = "initialised_at"
# Any fixed number: the planners of one database take turns on it (PostgreSQL only;
# SQLite's write lock already lets one writer in at a time).
PLANNING_LOCK = 0x63667061  # "cfpa"
_KEY_BATCH = 500

_meta = Meta.__table__  # type: ignore[attr-defined]
_notice = MeetingNotice.__table__  # type: ignore[attr-defined]
_item = AgendaItem.__table__  # type: ignore[attr-defined]
_outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
_referral = Referral.__table__  # type: ignore[attr-defined]
_review = PostExitReview.__table__  # type: ignore[attr-defined]


@dataclass
class PlanReport:
    now: datetime
    since: datetime | None = None
    skipped: bool = False
    queued: Counter[str] = field(default_factory=Counter)
    # Users who should have had an email this pass but have no address.
    no_email: set[str] = field(default_factory=set)
    # Kinds of email that fell due with nobody to send them to (no chair, empty membership).
    nobody: set[str] = field(default_factory=set)
    dry_run: bool = False
    keys: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.queued.values())

    def describe(self) -> str:
        if self.skipped:
            return "another process is planning; this pass planned nothing"
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(self.queued.items()))
        verb = "would plan" if self.dry_run else "planned"
        return f"{verb} {self.total} email(s)" + (f": {kinds}" if kinds else "")


class _DueMeeting(NamedTuple):
    calendar: MeetingCalendar
    members: list[Recipient]
    meeting: ScheduledMeeting
    issued: set[int]  # the versions (sequences) whose agenda or reminder went out
    due: datetime


class _RolledBack(Exception):
    """Ends a dry run's transaction without committing it."""


@dataclass
class _Occasion:
    key: str
    recipient: Recipient
    context: Callable[[], Context]


class Planner:
    def __init__(self, engine: Engine, config: Config, notifier: Notifier) -> None:
        self.engine = engine
        self.config = config
        self.notifier = notifier
        self.workdays = WorkingDays(extra_closures=config.schedule.closed_days)

    def check(self) -> None:
        """Refuse a configuration whose membership names unknown users."""
        with write_connection(self.engine, writers_lock=False) as connection:
            Directory(connection).check(self.config)

    def plan(self, *, now: datetime | None = None, dry_run: bool = False) -> PlanReport:
        """Queue what has fallen due by ``now``; with ``dry_run``, only say what it would be
        (everything is rendered and checked, then the transaction is rolled back)."""
        now = now or clock.now()
        report = PlanReport(now=now, dry_run=dry_run)
        try:
            with write_connection(self.engine, writers_lock=False) as connection:
                if (
                    connection.dialect.name == "postgresql"
                    and not connection.execute(
                        select(func.pg_try_advisory_xact_lock(PLANNING_LOCK))
                    ).scalar_one()
                ):
                    report.skipped = True
                    return report
                _Pass(self, connection, now, report).run()
                if dry_run:
                    raise _RolledBack
        except _RolledBack:
            pass
        return report

    def sends_on(self, meeting: ScheduledMeeting) -> date:
        """The working day a meeting's agenda or reminder goes, its lead time before it."""
        lead = self.config.body(meeting.body).lead_working_days
        return self.workdays.before(meeting.day, lead)

    def sending_at(self, day: date) -> datetime:
        return datetime.combine(day, self.config.schedule.sending_time, clock.LOCAL_ZONE)


class _Pass:
    def __init__(
        self, planner: Planner, connection: Connection, now: datetime, report: PlanReport
    ) -> None:
        self.planner = planner
        self.config = planner.config
        self.connection = connection
        self.now = now
        self.today = clock.local_date(now)
        self.report = report
        self.directory = Directory(connection)
        self.directory.check(self.config)
        meta: dict[str, str] = dict(
            connection.execute(
                select(_meta.c.key, _meta.c.value).where(_meta.c.key.in_([WATERMARK, INITIALISED]))
            ).all()
        )
        self.initialised = _instant(meta.get(INITIALISED)) or now
        self.since = _instant(meta.get(WATERMARK)) or self.initialised
        report.since = self.since
        self.occasions: list[_Occasion] = []

    def run(self) -> None:
        self.plan_panel()
        self.plan_board()
        self.plan_reviews()
        self.plan_toolkit()
        self.queue()
        self.advance_watermark()

    # Meetings ------------------------------------------------------------------------

    def meetings(self, calendar: MeetingCalendar) -> list[ScheduledMeeting]:
        """Meetings whose notices may fall due now, and every upcoming one changed by hand
        (moved far ahead, its members must still hear of the move now)."""
        lead = calendar.settings.lead_working_days
        first = min(clock.local_date(self.since), self.today) - timedelta(days=1)
        last = self.today + timedelta(days=2 * lead + 21)
        found = {m.uid: m for m in calendar.meetings(first, last, include_cancelled=True)}
        for meeting in calendar.changed:
            if meeting.starts_at > self.now:
                found.setdefault(meeting.uid, meeting)
        return sorted(found.values(), key=lambda m: (m.starts_at, m.uid))

    def notice_due(self, meeting: ScheduledMeeting) -> datetime | None:
        """When this version of the meeting's agenda or reminder falls due, if it has."""
        due = self.planner.sending_at(self.planner.sends_on(meeting))
        if meeting.changed_at is not None:
            due = max(due, meeting.changed_at)
        if due > self.now:
            return None
        # Notices for a meeting already held go out only if they fell due since the last pass
        # (the server was down); before `init` they were never channelflow's to send.
        if meeting.starts_at <= self.now and due <= self.since:
            return None
        return due

    def moved(self, meeting: ScheduledMeeting, issued: set[int], members: list[Recipient]) -> None:
        """Members who have an earlier version in their calendars hear of a move at once;
        the agenda or reminder itself still goes its lead time before the new date."""
        if not issued or meeting.sequence in issued or meeting.starts_at <= self.now:
            return
        context = MeetingMoved(meeting.context(self.config.body(meeting.body)))
        self.to_each(members, f"meeting_moved:{meeting.uid}:s{meeting.sequence}", _fixed(context))

    def issued(self, uid: str) -> set[int]:
        return set(
            self.connection.execute(
                select(_notice.c.sequence).where(_notice.c.meeting_uid == uid)
            ).scalars()
        )

    def record_issue(self, meeting: ScheduledMeeting) -> None:
        self.connection.execute(
            insert(_notice).values(
                meeting_uid=meeting.uid, sequence=meeting.sequence, issued_at=self.now
            )
        )

    def cancellation(self, meeting: ScheduledMeeting, members: list[Recipient]) -> None:
        if not self.issued(meeting.uid) or meeting.changed_at is None:
            return
        if meeting.changed_at > self.now or (
            meeting.starts_at <= self.now and meeting.changed_at <= self.since
        ):
            return
        context = MeetingCancelled(meeting.context(self.config.body(meeting.body)))
        key = f"meeting_cancelled:{meeting.uid}:s{meeting.sequence}"
        self.to_each(members, key, _fixed(context))

    def due_meetings(self, settings: BodySettings) -> Iterator[_DueMeeting]:
        """The body's meetings whose agenda or reminder has fallen due; cancellations and
        moves of the others are planned on the way."""
        calendar = MeetingCalendar.load(self.connection, settings)
        members = self.directory.members(settings, self.config)
        for meeting in self.meetings(calendar):
            if meeting.cancelled:
                self.cancellation(meeting, members)
                continue
            issued = self.issued(meeting.uid)
            due = self.notice_due(meeting)
            if due is None:
                self.moved(meeting, issued, members)
                continue
            yield _DueMeeting(calendar, members, meeting, issued, due)

    def plan_panel(self) -> None:
        settings = self.config.panel
        for calendar, members, meeting, issued, _due in self.due_meetings(settings):
            agenda = cache(partial(build_agenda, self.connection, calendar, meeting, now=self.now))
            self.to_each(members, f"panel_agenda:{meeting.uid}:s{meeting.sequence}", agenda)
            announced = set(
                self.connection.execute(
                    select(_item.c.reference).where(_item.c.meeting_uid == meeting.uid)
                ).scalars()
            )
            if meeting.sequence not in issued:
                self.record_issue(meeting)
                current = set(agenda().new_cases) | set(agenda().adjourned)
            elif meeting.starts_at > self.now:
                window = AgendaWindow.of(calendar, meeting, now=self.now)
                new_cases, adjourned = panel_cases(self.connection, window)
                current = set(new_cases) | set(adjourned)
                added = tuple(sorted(current - announced))
                if added:
                    context = AgendaAddendum(meeting.context(settings), added)
                    digest = hashlib.sha256(" ".join(added).encode()).hexdigest()[:16]
                    self.to_each(
                        members, f"agenda_addendum:{meeting.uid}:{digest}", _fixed(context)
                    )
            else:
                continue
            fresh = sorted(current - announced)
            if fresh:
                self.connection.execute(
                    insert(_item),
                    [
                        {"meeting_uid": meeting.uid, "reference": ref, "announced_at": self.now}
                        for ref in fresh
                    ],
                )

    def plan_board(self) -> None:
        settings = self.config.board
        for calendar, members, meeting, issued, due in self.due_meetings(settings):
            period_from, period_to = board_period(
                calendar, meeting, self.planner.sends_on, clock.local_date(due)
            )
            summary = cache(
                partial(
                    board_summary,
                    self.connection,
                    meeting.context(settings),
                    period_from=period_from,
                    period_to=period_to,
                )
            )
            if meeting.sequence not in issued:
                self.record_issue(meeting)
            self.to_each(members, f"board_reminder:{meeting.uid}:s{meeting.sequence}", summary)

    # Reviews -------------------------------------------------------------------------

    def review_range(self, days_before: Iterable[int]) -> tuple[date, date]:
        escalation_span = 2 * self.config.reminders.escalate_after_working_days + 21
        first = min(clock.local_date(self.since), self.today) - timedelta(days=escalation_span)
        # A reminder on a closed day goes on the working day before, so every review due
        # before the next working day plus the longest lead time may have one due today,
        # however long the closure (Christmas).
        next_working_day = self.planner.workdays.after(self.today, 1)
        return first, next_working_day + timedelta(days=max(days_before) - 1)

    def plan_reviews(self) -> None:
        reminders = self.config.reminders
        first, last = self.review_range(reminders.days_before)
        plans = self.connection.execute(
            select(
                _referral.c.reference,
                _referral.c.lead,
                _referral.c.next_review_on.label("due_on"),
                _referral.c.updated_at,
            ).where(
                _referral.c.state == lc.INTERVENTION,
                _referral.c.next_review_on.between(first, last),
            )
        ).all()
        post_exit = self.connection.execute(
            select(
                _referral.c.reference,
                _referral.c.lead,
                _review.c.months,
                _review.c.due_on,
            )
            .join(_referral, _referral.c.id == _review.c.referral_id)
            .where(_review.c.recorded_on.is_(None), _review.c.due_on.between(first, last))
        ).all()
        escalate_to = self.directory.escalation(self.config)
        # A support-plan review's date is set by the case's latest change, so its reminders
        # count only from then; post-exit review dates are fixed at exit, months earlier.
        for row in plans:
            self.review(
                ReviewDue(row.reference, "support_plan", row.due_on),
                row.lead,
                max(self.initialised, row.updated_at),
                escalate_to,
            )
        for row in post_exit:
            review = ReviewDue(row.reference, f"post_exit_{row.months}", row.due_on)
            self.review(review, row.lead, self.initialised, escalate_to)

    def review(
        self,
        review: ReviewDue,
        lead: str | None,
        known_since: datetime,
        escalate_to: list[Recipient],
    ) -> None:
        occasion = f"{review.reference}:{review.review}:{review.due_on.isoformat()}"
        workdays = self.planner.workdays
        lead_user = self.directory.get(lead)
        for days in self.config.reminders.days_before:
            due = self.planner.sending_at(
                workdays.on_or_before(review.due_on - timedelta(days=days))
            )
            if known_since < due <= self.now:
                if lead_user is None:
                    self.report.no_email.add(lead or f"the lead of {review.reference}")
                    continue
                reminder = ReviewReminder(review, days)
                self.to_each([lead_user], f"review_reminder:{occasion}:d{days}", _fixed(reminder))
        overdue_by = self.config.reminders.escalate_after_working_days
        due = self.planner.sending_at(workdays.after(review.due_on, overdue_by))
        if known_since < due <= self.now:
            escalation = ReviewEscalation(review, overdue_by)
            self.to_each(escalate_to, f"review_escalation:{occasion}", _fixed(escalation))

    def plan_toolkit(self) -> None:
        days_before = self.config.reminders.toolkit_days_before
        first, last = self.review_range(days_before)
        workdays = self.planner.workdays
        for action in due_actions(self.connection, first, last):
            owner = self.directory.get(action.owner)
            known_since = max(self.initialised, action.updated_at)
            for days in days_before:
                due = self.planner.sending_at(
                    workdays.on_or_before(action.review_on - timedelta(days=days))
                )
                if not known_since < due <= self.now:
                    continue
                if owner is None:
                    self.report.no_email.add(action.owner)
                    continue
                context = ProcessReviewReminder(action.benchmark, action.text, action.review_on)
                occasion = f"toolkit-{action.id}:{action.review_on.isoformat()}:d{days}"
                key = f"process_review_reminder:{occasion}"
                self.to_each([owner], key, _fixed(context))

    # Queueing ------------------------------------------------------------------------

    def to_each(
        self, recipients: list[Recipient], key: str, context: Callable[[], Context]
    ) -> None:
        if not recipients:
            self.report.nobody.add(key.split(":", 1)[0])
        for recipient in recipients:
            if not recipient.email:
                self.report.no_email.add(recipient.name)
                continue
            self.occasions.append(_Occasion(f"{key}:user:{recipient.user_id}", recipient, context))

    def queue(self) -> None:
        """Render and queue only what is new: known keys are looked up, never re-rendered."""
        keys = [occasion.key for occasion in self.occasions]
        known: set[str] = set()
        for start in range(0, len(keys), _KEY_BATCH):
            chunk = keys[start : start + _KEY_BATCH]
            known.update(
                self.connection.execute(
                    select(_outbox.c.idempotency_key).where(_outbox.c.idempotency_key.in_(chunk))
                ).scalars()
            )
        notices = []
        for occasion in self.occasions:
            if occasion.key in known:
                continue
            known.add(occasion.key)
            assert occasion.recipient.email is not None
            notices.append(Notice(occasion.key, occasion.recipient.email, occasion.context()))
        self.planner.notifier.queue(self.connection, notices, now=self.now)
        for notice in notices:
            kind = notice.key.split(":", 1)[0]
            self.report.queued[kind] += 1
            self.report.keys.append(notice.key)
            if not self.report.dry_run:
                log.info("queued %s", notice.key)
        # The occasions hold closures over this pass; let them go with it, not at the next
        # full garbage collection.
        self.occasions.clear()

    def advance_watermark(self) -> None:
        mark = max(self.since, self.now).isoformat()
        updated = self.connection.execute(
            update(_meta).where(_meta.c.key == WATERMARK).values(value=mark)
        ).rowcount
        if not updated:
            self.connection.execute(insert(_meta).values(key=WATERMARK, value=mark))


def _fixed(context: Context) -> Callable[[], Context]:
    return lambda: context


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
