"""Every kind of email channelflow sends, each with the typed context its templates receive.

Data minimisation by construction: a context can hold case references, dates, counts, role
names, identifiers from the category lists and meeting details from configuration. There is no
field for a name, date of birth, address, school or concern type, and the constructors refuse
values that do not look like what a field is for, so no template can leak personal details.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from channelflow.exceptions import InvalidInput

# ASCII only and the whole value (fullmatch: "$" would let a trailing newline through).
_REFERENCE = re.compile(r"[A-Z0-9]{1,16}-[0-9]{4}-[0-9]{4,}")
_LABEL = re.compile(r"[a-z0-9][a-z0-9_]{0,63}")
MAX_DETAIL = 200


class Kind(StrEnum):
    PANEL_AGENDA = "panel_agenda"
    AGENDA_ADDENDUM = "agenda_addendum"
    REVIEW_REMINDER = "review_reminder"
    REVIEW_ESCALATION = "review_escalation"
    PROCESS_REVIEW_REMINDER = "process_review_reminder"
    BOARD_REMINDER = "board_reminder"
    MEETING_MOVED = "meeting_moved"
    MEETING_CANCELLED = "meeting_cancelled"
    CASE_ASSIGNED = "case_assigned"
    TEST_MESSAGE = "test_message"


def _reference(value: str) -> str:
    if not isinstance(value, str) or not _REFERENCE.fullmatch(value):
        raise InvalidInput("an email may only name a case by its reference")
    return value


def _label(value: str) -> str:
    if not isinstance(value, str) or not _LABEL.fullmatch(value):
        raise InvalidInput("an email label must be an identifier such as a state or role name")
    return value


def _detail(value: str | None) -> str | None:
    """Meeting details and toolkit text come from configuration, never from a case."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_DETAIL or not value.isprintable():
        raise InvalidInput(f"an email detail must be one printable line of {MAX_DETAIL} or fewer")
    return value


def _counts(pairs: Mapping[str, int] | Iterable[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return tuple((_label(name), int(count)) for name, count in items)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise InvalidInput("an email's times must carry a timezone")
    return value


@dataclass(frozen=True)
class Meeting:
    """A panel or board meeting: ``uid`` stays the same when it moves, ``sequence`` goes up."""

    body: str  # "panel" or "board"
    uid: str
    starts_at: datetime
    minutes: int = 120
    sequence: int = 0
    location: str | None = None
    link: str | None = None
    cancelled: bool = False

    def __post_init__(self) -> None:
        _label(self.body)
        _detail(self.uid)
        _aware(self.starts_at)
        _detail(self.location)
        _detail(self.link)


@dataclass(frozen=True)
class ReviewDue:
    """A review falling due: ``review`` is ``support_plan``, ``post_exit_6`` or ``post_exit_12``."""

    reference: str
    review: str
    due_on: date

    def __post_init__(self) -> None:
        _reference(self.reference)
        _label(self.review)


@dataclass(frozen=True)
class PanelAgenda:
    meeting: Meeting
    new_cases: tuple[str, ...] = ()
    adjourned: tuple[str, ...] = ()
    reviews_due: tuple[ReviewDue, ...] = ()
    post_exit_reviews: tuple[ReviewDue, ...] = ()
    counts_by_state: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        for reference in (*self.new_cases, *self.adjourned):
            _reference(reference)
        object.__setattr__(self, "counts_by_state", _counts(self.counts_by_state))


@dataclass(frozen=True)
class AgendaAddendum:
    meeting: Meeting
    added: tuple[str, ...]

    def __post_init__(self) -> None:
        for reference in self.added:
            _reference(reference)


@dataclass(frozen=True)
class ReviewReminder:
    review: ReviewDue
    days_before: int  # 0 on the day itself


@dataclass(frozen=True)
class ReviewEscalation:
    review: ReviewDue
    working_days_overdue: int
    lead_role: str = "lead"

    def __post_init__(self) -> None:
        _label(self.lead_role)


@dataclass(frozen=True)
class ProcessReviewReminder:
    benchmark: str
    action: str
    due_on: date

    def __post_init__(self) -> None:
        _detail(self.benchmark)
        _detail(self.action)


@dataclass(frozen=True)
class BoardReminder:
    meeting: Meeting
    period_from: date
    period_to: date
    referrals_by_sector: tuple[tuple[str, int], ...] = ()
    referrals_by_outcome: tuple[tuple[str, int], ...] = ()
    cases_by_state: tuple[tuple[str, int], ...] = ()
    overdue_reviews: int = 0
    ratings_by_colour: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        for name in (
            "referrals_by_sector",
            "referrals_by_outcome",
            "cases_by_state",
            "ratings_by_colour",
        ):
            object.__setattr__(self, name, _counts(getattr(self, name)))


@dataclass(frozen=True)
class MeetingMoved:
    """A meeting whose agenda or reminder already went out has a new time."""

    meeting: Meeting

    def __post_init__(self) -> None:
        if self.meeting.cancelled or self.meeting.sequence < 1:
            raise InvalidInput("a notice of a move needs a meeting that was changed")


@dataclass(frozen=True)
class MeetingCancelled:
    meeting: Meeting

    def __post_init__(self) -> None:
        if not self.meeting.cancelled:
            raise InvalidInput("a cancellation notice needs a cancelled meeting")


@dataclass(frozen=True)
class CaseAssigned:
    reference: str
    role: str = "lead"
    first_review_on: date | None = None

    def __post_init__(self) -> None:
        _reference(self.reference)
        _label(self.role)


@dataclass(frozen=True)
class TestMessage:
    sent_at: datetime
    transport: str = field(default="file")

    def __post_init__(self) -> None:
        _aware(self.sent_at)
        _label(self.transport)


Context = (
    PanelAgenda
    | AgendaAddendum
    | ReviewReminder
    | ReviewEscalation
    | ProcessReviewReminder
    | BoardReminder
    | MeetingMoved
    | MeetingCancelled
    | CaseAssigned
    | TestMessage
)

CONTEXTS: dict[Kind, type[Any]] = {
    Kind.PANEL_AGENDA: PanelAgenda,
    Kind.AGENDA_ADDENDUM: AgendaAddendum,
    Kind.REVIEW_REMINDER: ReviewReminder,
    Kind.REVIEW_ESCALATION: ReviewEscalation,
    Kind.PROCESS_REVIEW_REMINDER: ProcessReviewReminder,
    Kind.BOARD_REMINDER: BoardReminder,
    Kind.MEETING_MOVED: MeetingMoved,
    Kind.MEETING_CANCELLED: MeetingCancelled,
    Kind.CASE_ASSIGNED: CaseAssigned,
    Kind.TEST_MESSAGE: TestMessage,
}

DESCRIPTIONS: dict[Kind, str] = {
    Kind.PANEL_AGENDA: "the agenda for a panel, to every panel member, with an invitation",
    Kind.AGENDA_ADDENDUM: "cases added to a panel after its agenda went out",
    Kind.REVIEW_REMINDER: "a review falls due soon or today, to the case lead",
    Kind.REVIEW_ESCALATION: "a review is overdue, to the chair",
    Kind.PROCESS_REVIEW_REMINDER: "a toolkit action's process review falls due, to its owner",
    Kind.BOARD_REMINDER: "a Strategic Prevent Board meeting, with an aggregate summary",
    Kind.MEETING_MOVED: "a panel or board meeting whose agenda or reminder went out has moved",
    Kind.MEETING_CANCELLED: "a panel or board meeting whose agenda or reminder went out is off",
    Kind.CASE_ASSIGNED: "a case was adopted and you are its lead",
    Kind.TEST_MESSAGE: "a test that mail is delivered (`channelflow mail test`)",
}


BODY_NAMES = {"panel": "Channel panel", "board": "Strategic Prevent Board"}


def body_name(body: str) -> str:
    """What a meeting body is called in emails and calendar entries."""
    return BODY_NAMES.get(body, body)


def kind_of(context: Context) -> Kind:
    return next(kind for kind, cls in CONTEXTS.items() if isinstance(context, cls))


def variables(context: Context) -> dict[str, Any]:
    """The names a template sees: the context's fields, one level deep."""
    return {item.name: getattr(context, item.name) for item in fields(context)}


def sample(kind: Kind) -> Context:
    """A realistic context for previews and for checking templates before any send."""
    meeting = Meeting(
        body="panel",
        uid="panel-2026-11-26@channelflow",
        starts_at=datetime(2026, 11, 26, 10, 0, tzinfo=UTC),
        location="Committee Room 2, Town Hall",
        link="https://meet.example.gov.uk/channel-panel",
    )
    review = ReviewDue("CF-2026-0007", "support_plan", date(2026, 12, 3))
    samples: dict[Kind, Context] = {
        Kind.PANEL_AGENDA: PanelAgenda(
            meeting=meeting,
            new_cases=("CF-2026-0012", "CF-2026-0015"),
            adjourned=("CF-2026-0009",),
            reviews_due=(review,),
            post_exit_reviews=(ReviewDue("CF-2025-0031", "post_exit_6", date(2026, 11, 20)),),
            counts_by_state=(("panel_review", 3), ("intervention", 4)),
        ),
        Kind.AGENDA_ADDENDUM: AgendaAddendum(meeting=meeting, added=("CF-2026-0018",)),
        Kind.REVIEW_REMINDER: ReviewReminder(review=review, days_before=7),
        Kind.REVIEW_ESCALATION: ReviewEscalation(review=review, working_days_overdue=2),
        Kind.PROCESS_REVIEW_REMINDER: ProcessReviewReminder(
            benchmark="Channel Panel",
            action="6 month review of process",
            due_on=date(2026, 12, 1),
        ),
        Kind.BOARD_REMINDER: BoardReminder(
            meeting=Meeting(
                body="board",
                uid="board-2027-01-13@channelflow",
                starts_at=datetime(2027, 1, 13, 14, 0, tzinfo=UTC),
                location="Council Chamber",
            ),
            period_from=date(2026, 10, 1),
            period_to=date(2026, 12, 31),
            referrals_by_sector=(("education", 5), ("police", 2)),
            referrals_by_outcome=(("no_further_action", 3), ("discussed_at_panel", 4)),
            cases_by_state=(("intervention", 4), ("closed", 9)),
            overdue_reviews=1,
            ratings_by_colour=(("green", 6), ("amber", 3), ("red", 1)),
        ),
        Kind.MEETING_MOVED: MeetingMoved(meeting=replace(meeting, sequence=1)),
        Kind.MEETING_CANCELLED: MeetingCancelled(
            meeting=replace(meeting, sequence=2, cancelled=True)
        ),
        Kind.CASE_ASSIGNED: CaseAssigned(reference="CF-2026-0012", first_review_on=None),
        Kind.TEST_MESSAGE: TestMessage(sent_at=datetime(2026, 11, 28, 9, 0, tzinfo=UTC)),
    }
    return samples[kind]
