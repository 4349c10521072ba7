"""A referral as the lifecycle machine sees it: its guards and effects, with no database.

The engine loads a :class:`Case` from the store, asks the shared machine to trigger an event
on it with a :class:`FireRequest`, and writes back what changed. The demo generator drives
the same objects in memory, so both obey exactly the same rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, cast

from transitions import EventData, MachineError

from channelflow import clock
from channelflow.exceptions import GuardRefused, InvalidInput, TransitionNotAllowed, UserNotFound
from channelflow.states import REFERRAL_LIFECYCLE, EventSpec, Role, ValueKind, referral_machine
from channelflow.states import referral as lc
from channelflow.workflow.dates import add_months, age_on, next_panel_after, parse_date
from channelflow.workflow.text import clean_text

ADULT_AGE = 18
# Panels and reviews are planned months ahead, not years: a later date is a typing mistake.
MAX_PLANNING_AHEAD = timedelta(days=2 * 366)


def _request_of(event_data: EventData) -> FireRequest:
    """The :class:`FireRequest` that :meth:`Case.fire` passed to ``trigger``."""
    # transitions stores trigger's positional arguments as a tuple but types them as Iterable.
    args = cast(Sequence[Any], event_data.args)
    return cast(FireRequest, args[0])


@dataclass
class PostExitReviewDue:
    months: int
    due_on: date
    recorded_on: date | None = None
    outcome: str | None = None


@dataclass
class FireRequest:
    event: str
    actor: str
    role: Role
    occurred_at: datetime
    reason: str | None = None
    values: Mapping[str, str] = field(default_factory=dict)
    # Role of each user named in the values (the case lead), looked up by the caller.
    user_roles: Mapping[str, Role] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    # The first panel meeting after a day: the configured calendar, moved meetings included.
    next_panel: Callable[[date], date] = next_panel_after

    @property
    def occurred_on(self) -> date:
        return clock.local_date(self.occurred_at)


@dataclass
class Case:
    """The lifecycle-relevant projection of one referral."""

    reference: str
    state: str
    date_of_birth: date | None
    gateway_outcome: str | None = None
    panel_on: date | None = None
    lead: str | None = None
    consent: str | None = None
    support_plan: str | None = None
    provider: str | None = None
    next_review_on: date | None = None
    onward_route: str | None = None
    close_code: str | None = None
    exited_on: date | None = None
    closed_on: date | None = None
    post_exit_reviews: list[PostExitReviewDue] = field(default_factory=list)

    def fire(self, request: FireRequest) -> None:
        """Apply ``request`` through the shared machine, or raise and leave the case as it was."""
        machine = referral_machine()
        if request.event not in machine.events:
            raise InvalidInput(f"unknown event {request.event!r}; see `channelflow lifecycle`")
        try:
            machine.events[request.event].trigger(self, request)
        except MachineError:
            raise TransitionNotAllowed(
                f"{request.event} is not allowed on {self.reference} in state {self.state}"
            ) from None

    # Callbacks the machine resolves by name (see states.machine).
    def passes_guard(self, event_data: EventData) -> bool:
        request = _request_of(event_data)
        spec = REFERRAL_LIFECYCLE.event(request.event)
        assert spec is not None
        if request.role not in spec.roles:
            raise GuardRefused(f"a {request.role} may not {request.event}")
        unmet = unmet_precondition(self, request.event, request.occurred_on)
        if unmet:
            raise GuardRefused(unmet)
        request.data = _parse_values(spec, request)
        if spec.reason_required and not (request.reason and request.reason.strip()):
            raise GuardRefused(f"{request.event} needs a reason (--reason)")
        _GUARDS.get(request.event, _no_extra_guard)(self, request)
        return True

    def apply_effects(self, event_data: EventData) -> None:
        request = _request_of(event_data)
        _EFFECTS.get(request.event, _no_effect)(self, request)

    def due_post_exit_review(self, on: date) -> PostExitReviewDue | None:
        due = [r for r in self.post_exit_reviews if r.recorded_on is None and r.due_on <= on]
        return min(due, key=lambda review: review.due_on, default=None)


def _parse_values(spec: EventSpec, request: FireRequest) -> dict[str, Any]:
    accepted = {key.name for key in spec.keys}
    unknown = sorted(set(request.values) - accepted)
    if unknown:
        takes = ", ".join(sorted(accepted)) or "no --set values"
        raise InvalidInput(f"{spec.name} does not take --set {unknown[0]}; it takes {takes}")
    parsed: dict[str, Any] = {}
    for key in spec.keys:
        raw = request.values.get(key.name, "").strip()
        if not raw:
            if key.required:
                raise GuardRefused(f"{spec.name} needs --set {key.name}=...")
            continue
        raw = clean_text(raw, what=f"--set {key.name}", max_length=key.max_length)
        if key.kind is ValueKind.CHOICE and raw not in key.choices:
            raise InvalidInput(f"--set {key.name} must be one of: {', '.join(key.choices)}")
        if key.kind is ValueKind.DATE:
            parsed[key.name] = parse_date(raw, what=f"--set {key.name}").isoformat()
            continue
        if key.kind is ValueKind.USER:
            role = request.user_roles.get(raw)
            if role is None:
                raise UserNotFound(f"--set {key.name} does not name a user")
            if role is not Role.LEAD:
                raise GuardRefused(f"the case lead must be a user with role lead, not {role}")
        parsed[key.name] = raw
    return parsed


def _later_date(request: FireRequest, name: str, *, after: date) -> date:
    """A date value that must fall after ``after``, defaulting to the next panel after it."""
    if name not in request.data:
        request.data[name] = request.next_panel(after).isoformat()
    chosen = date.fromisoformat(request.data[name])
    if chosen <= after:
        raise GuardRefused(f"--set {name} must be after {after.isoformat()}")
    if chosen > after + MAX_PLANNING_AHEAD:
        raise InvalidInput(f"--set {name} is more than two years after {after.isoformat()}")
    return chosen


def unmet_precondition(case: Case, event: str, on: date) -> str | None:
    """Why ``event`` cannot happen on ``on`` whatever values it is given, or ``None``."""
    if event == lc.REFER_TO_PANEL and case.gateway_outcome != "proceed":
        return f"{case.reference} can go to panel only when the gateway outcome was proceed"
    if event == lc.RECORD_POST_EXIT_REVIEW and case.due_post_exit_review(on) is None:
        return f"{case.reference} has no post-exit review due on {on.isoformat()}"
    return None


def _guard_refer_to_panel(case: Case, request: FireRequest) -> None:
    _later_date(request, "panel", after=request.occurred_on)


def _guard_adjourn(case: Case, request: FireRequest) -> None:
    after = max(request.occurred_on, case.panel_on or request.occurred_on)
    _later_date(request, "panel", after=after)


def _guard_accept(case: Case, request: FireRequest) -> None:
    if case.date_of_birth is None:
        raise GuardRefused(f"{case.reference} has no date of birth to check consent against")
    child = age_on(case.date_of_birth, request.occurred_on) < ADULT_AGE
    needed = "parental" if child else "given"
    if request.data["consent"] != needed:
        who = "a parent's or guardian's" if child else "the person's own"
        raise GuardRefused(f"{case.reference} needs {who} consent (--set consent={needed})")


def _guard_start_intervention(case: Case, request: FireRequest) -> None:
    _later_date(request, "first_review", after=request.occurred_on)


def _guard_review(case: Case, request: FireRequest) -> None:
    _later_date(request, "next_review", after=request.occurred_on)


def _guard_exit(case: Case, request: FireRequest) -> None:
    request.data["post_exit_reviews"] = {
        str(months): add_months(request.occurred_on, months).isoformat()
        for months in lc.POST_EXIT_REVIEW_MONTHS
    }


def _guard_close(case: Case, request: FireRequest) -> None:
    allowed = ["duplicate", "withdrawn"]
    outcome = case.onward_route if case.state == lc.DECLINED else case.gateway_outcome
    if case.state != lc.RECEIVED and outcome in lc.CLOSE_CODE_FOR_OUTCOME:
        allowed.append(lc.CLOSE_CODE_FOR_OUTCOME[outcome])
    if request.data["code"] not in allowed:
        raise GuardRefused(
            f"{case.reference} in state {case.state} can be closed only as: {', '.join(allowed)}"
        )


def _guard_record_post_exit_review(case: Case, request: FireRequest) -> None:
    review = case.due_post_exit_review(request.occurred_on)
    assert review is not None  # unmet_precondition checked it
    request.data["review_months"] = review.months


def _effect_screen(case: Case, request: FireRequest) -> None:
    case.gateway_outcome = request.data["outcome"]


def _effect_panel(case: Case, request: FireRequest) -> None:
    case.panel_on = date.fromisoformat(request.data["panel"])


def _effect_accept(case: Case, request: FireRequest) -> None:
    case.consent, case.lead = request.data["consent"], request.data["lead"]


def _effect_decline(case: Case, request: FireRequest) -> None:
    case.onward_route = request.data["route"]


def _effect_start_intervention(case: Case, request: FireRequest) -> None:
    case.support_plan = request.data["support_plan"]
    case.provider = request.data.get("provider")
    case.next_review_on = date.fromisoformat(request.data["first_review"])


def _effect_review(case: Case, request: FireRequest) -> None:
    case.next_review_on = date.fromisoformat(request.data["next_review"])


def _effect_exit(case: Case, request: FireRequest) -> None:
    case.exited_on = case.closed_on = request.occurred_on
    case.next_review_on = None
    case.post_exit_reviews = [
        PostExitReviewDue(int(months), date.fromisoformat(due))
        for months, due in request.data["post_exit_reviews"].items()
    ]


def _effect_withdraw_consent(case: Case, request: FireRequest) -> None:
    case.onward_route = request.data["route"]
    case.closed_on, case.next_review_on = request.occurred_on, None


def _effect_close(case: Case, request: FireRequest) -> None:
    case.close_code, case.closed_on = request.data["code"], request.occurred_on


def _effect_record_post_exit_review(case: Case, request: FireRequest) -> None:
    for review in case.post_exit_reviews:
        if review.months == request.data["review_months"]:
            review.recorded_on, review.outcome = request.occurred_on, request.data["outcome"]


def _no_extra_guard(case: Case, request: FireRequest) -> None:
    return None


def _no_effect(case: Case, request: FireRequest) -> None:
    return None


_Step = Callable[[Case, FireRequest], None]
_GUARDS: dict[str, _Step] = {
    lc.REFER_TO_PANEL: _guard_refer_to_panel,
    lc.ADJOURN: _guard_adjourn,
    lc.ACCEPT: _guard_accept,
    lc.START_INTERVENTION: _guard_start_intervention,
    lc.REVIEW: _guard_review,
    lc.EXIT: _guard_exit,
    lc.CLOSE: _guard_close,
    lc.RECORD_POST_EXIT_REVIEW: _guard_record_post_exit_review,
}
_EFFECTS: dict[str, _Step] = {
    lc.SCREEN: _effect_screen,
    lc.REFER_TO_PANEL: _effect_panel,
    lc.ADJOURN: _effect_panel,
    lc.ACCEPT: _effect_accept,
    lc.DECLINE: _effect_decline,
    lc.START_INTERVENTION: _effect_start_intervention,
    lc.REVIEW: _effect_review,
    lc.EXIT: _effect_exit,
    lc.WITHDRAW_CONSENT: _effect_withdraw_consent,
    lc.CLOSE: _effect_close,
    lc.RECORD_POST_EXIT_REVIEW: _effect_record_post_exit_review,
}
