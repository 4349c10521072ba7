"""Helpers shared by the planning tests: driving referrals at chosen instants, reading the outbox.

Times here are Europe/London wall-clock times (what a council's staff write down); the
planner is always given an explicit ``now`` and the clock is frozen at it as well, so
anything that reads :func:`channelflow.clock.now` agrees with the pass.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from channelflow import clock
from channelflow.config import Config, parse_config
from channelflow.meetings.book import MeetingBook
from channelflow.planning.planner import Planner, PlanReport
from channelflow.runtime import Runtime
from channelflow.states import Role
from channelflow.states import referral as lc
from channelflow.store.db import read_session, write_session
from channelflow.store.models import Meta, OutboxMessage
from channelflow.workflow.engine import NewReferral, Workflow
from tests.factories import CHAIR, COORDINATOR, POLICE

LONDON = ZoneInfo("Europe/London")

# Emails queued by something other than a planning pass: `accept` tells the new case lead.
# Everything else in the outbox was planned, whatever its kind, so a kind nobody expected
# shows up in the lists the tests compare.
NOT_PLANNED = frozenset({"case_assigned", "test_message"})


def local(day: date, hour: int = 8, minute: int = 0) -> datetime:
    """``day`` at ``hour:minute`` London wall-clock time (aware)."""
    return datetime.combine(day, time(hour, minute), LONDON)


def config(data: Mapping[str, Any] | None = None) -> Config:
    """A configuration as `channelflow.toml` would give it (an empty one means the defaults)."""
    return parse_config(dict(data or {}))


def set_meta(engine: Engine, key: str, value: str) -> None:
    with write_session(engine) as session:
        row = session.get(Meta, key)
        if row is None:
            session.add(Meta(key=key, value=value))
        else:
            row.value = value
            session.add(row)


def get_meta(engine: Engine, key: str) -> str | None:
    with read_session(engine) as session:
        row = session.get(Meta, key)
        return row.value if row is not None else None


def set_initialised(engine: Engine, instant: datetime) -> None:
    """Pretend `channelflow init` ran at ``instant``."""
    set_meta(engine, "initialised_at", instant.isoformat())


def add_lead(runtime: Runtime, name: str, *, email: str | None) -> None:
    runtime.workflow.add_user(name, Role.LEAD, email=email, by="admin")


def add_user(runtime: Runtime, name: str, role: Role, *, email: str | None) -> None:
    runtime.workflow.add_user(name, role, email=email, by="admin")


@dataclass
class Cases:
    """Referrals driven through the real workflow, each event at a chosen London time."""

    workflow: Workflow

    def open(self, received_on: date, *, at: datetime, born: date = date(1990, 3, 4)) -> str:
        details = NewReferral(
            received_on=received_on,
            sector="education",
            concern="extreme_right_wing",
            subject_name="Zebedee Quillfeather",
            date_of_birth=born,
            referrer_org="Demo College",
            address="1 Example Street",
        )
        with clock.frozen_at(at):
            return self.workflow.open_referral(details, by=COORDINATOR)

    def fire(
        self,
        reference: str,
        event: str,
        *,
        by: str,
        at: datetime,
        reason: str | None = None,
        recorded: datetime | None = None,
        values: Mapping[str, str] | None = None,
        **more: str,
    ) -> None:
        """``event`` happening at ``at``, recorded at ``recorded`` (default ``at``)."""
        with clock.frozen_at(recorded or at):
            self.workflow.fire(
                reference, event, by=by, at=at, reason=reason, values={**(values or {}), **more}
            )

    def to_panel(self, received_on: date, panel: date, *, at: datetime) -> str:
        """A new referral, screened and put before the panel on ``panel``; all at ``at``."""
        reference = self.open(received_on, at=at)
        self.fire(reference, lc.SCREEN, by=POLICE, at=at, outcome="proceed")
        self.fire(reference, lc.REFER_TO_PANEL, by=COORDINATOR, at=at, panel=panel.isoformat())
        return reference

    def in_intervention(
        self, received_on: date, *, lead: str, first_review: date, at: datetime
    ) -> str:
        """A referral that reached intervention at ``at`` with its first review on a date."""
        reference = self.to_panel(received_on, clock.local_date(at) + timedelta(days=1), at=at)
        self.fire(reference, lc.ACCEPT, by=CHAIR, at=at, consent="given", lead=lead)
        self.fire(
            reference,
            lc.START_INTERVENTION,
            by=COORDINATOR,
            at=at,
            support_plan="SP-1",
            first_review=first_review.isoformat(),
        )
        return reference

    def review(self, reference: str, *, at: datetime, next_review: date) -> None:
        self.fire(
            reference,
            lc.REVIEW,
            by=CHAIR,
            at=at,
            outcome="progressing",
            next_review=next_review.isoformat(),
        )


def plan(planner: Planner, now: datetime) -> PlanReport:
    """One planning pass as if it were ``now`` (the clock frozen there too)."""
    with clock.frozen_at(now):
        return planner.plan(now=now)


def make_planner(runtime: Runtime, cfg: Config) -> Planner:
    return Planner(runtime.engine, cfg, runtime.notifier)


def make_book(runtime: Runtime, cfg: Config) -> MeetingBook:
    return MeetingBook(runtime.workflow, cfg)


_USER_SUFFIX = re.compile(r":user:\d+$")


def occasion(key: str) -> str:
    """What an idempotency key is about, less its kind and recipient (and an addendum's digest).

    ``review_reminder:CF-2026-0001:support_plan:2026-12-17:d7:user:5`` becomes
    ``CF-2026-0001:support_plan:2026-12-17:d7``.
    """
    kind, _, rest = _USER_SUFFIX.sub("", key).partition(":")
    if kind == "agenda_addendum":
        rest = rest.rsplit(":", 1)[0]
    return rest


@dataclass(frozen=True)
class Sent:
    """One planned email as read back from the outbox."""

    key: str
    kind: str
    recipient: str
    created_at: datetime
    subject: str
    body_text: str
    attachments: str

    @property
    def day(self) -> date:
        return clock.local_date(self.created_at)

    @property
    def summary(self) -> tuple[str, str, str, str]:
        """(local date, kind, recipient, occasion): what the expected lists are written in."""
        return (self.day.isoformat(), self.kind, self.recipient, occasion(self.key))


def planned(engine: Engine) -> list[Sent]:
    """Every email a planning pass queued, oldest first."""
    outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
    with read_session(engine) as session:
        rows = session.execute(
            select(
                outbox.c.idempotency_key,
                outbox.c.kind,
                outbox.c.recipient,
                outbox.c.created_at,
                outbox.c.subject,
                outbox.c.body_text,
                outbox.c.attachments,
            ).order_by(outbox.c.id)
        ).all()
    return [Sent(*row) for row in rows if row.kind not in NOT_PLANNED]


def summaries(engine: Engine) -> list[tuple[str, str, str, str]]:
    return sorted(sent.summary for sent in planned(engine))


def outbox_keys(engine: Engine) -> list[str]:
    outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
    with read_session(engine) as session:
        return list(session.execute(select(outbox.c.idempotency_key)).scalars())
