"""The lifecycle table of DOMAIN.md, checked event by event, guard by guard and role by role.

Every test runs on SQLite and on PostgreSQL (the `workflow` fixture). A refusal must leave the
referral exactly as it was (its whole view, history included) and add nothing to the audit
trail; a permission refusal is written to the access log instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import col

from channelflow import clock
from channelflow.audit.verify import verify_chain
from channelflow.cli import EXIT_REFUSED, exit_code_for
from channelflow.exceptions import (
    ChannelflowError,
    GuardRefused,
    InvalidInput,
    PermissionDenied,
    ReferralNotFound,
    TransitionNotAllowed,
    UserNotFound,
)
from channelflow.states import REFERRAL_LIFECYCLE, Role
from channelflow.states import referral as lc
from channelflow.store.models import AccessLog, Referral
from channelflow.workflow.engine import FireResult, Workflow
from channelflow.workflow.views import show_case
from tests.factories import (
    ADMIN,
    AUDITOR,
    CHAIR,
    COORDINATOR,
    LEAD,
    MEMBER,
    NOW,
    PATH_TO,
    POLICE,
    USER_OF_ROLE,
    new_referral,
    open_referral,
    referral_in,
)

LONDON = clock.LOCAL_ZONE
# Late enough that a case which exited the day before NOW has its 6-month review due.
FIRE_AT = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
ALL_EVENTS = [spec.name for spec in REFERRAL_LIFECYCLE.events]

# DOMAIN.md's lifecycle table, copied by hand: event -> (sources, destination, roles).
DOMAIN_TABLE = {
    "screen": ({"received"}, "screened", {"police", "coordinator"}),
    "refer_to_panel": ({"screened"}, "panel_review", {"coordinator"}),
    "adjourn": ({"panel_review"}, "panel_review", {"chair"}),
    "accept": ({"panel_review"}, "accepted", {"chair"}),
    "decline": ({"panel_review"}, "declined", {"chair"}),
    "start_intervention": ({"accepted"}, "intervention", {"coordinator"}),
    "review": ({"intervention"}, "intervention", {"chair"}),
    "exit": ({"intervention"}, "closed", {"chair"}),
    "withdraw_consent": ({"accepted", "intervention"}, "closed", {"coordinator"}),
    "close": ({"received", "screened", "declined"}, "closed", {"coordinator"}),
    "record_post_exit_review": ({"closed"}, "closed", {"coordinator"}),
}

# A close code the guard accepts in each closable state reached through PATH_TO.
CLOSE_CODE_IN = {lc.RECEIVED: "withdrawn", lc.SCREENED: "duplicate", lc.DECLINED: "signposted"}

Step = tuple[str, str, dict[str, str], str | None]


def valid_request(event: str, state: str) -> tuple[dict[str, str], str | None]:
    """Values and reason that satisfy ``event``'s guard on a referral built by PATH_TO."""
    requests: dict[str, tuple[dict[str, str], str | None]] = {
        lc.SCREEN: ({"outcome": "proceed"}, None),
        lc.REFER_TO_PANEL: ({}, None),
        lc.ADJOURN: ({}, "the school's report is not ready"),
        lc.ACCEPT: ({"consent": "given", "lead": LEAD}, None),
        lc.DECLINE: ({"route": "signposted"}, "early help fits better"),
        lc.START_INTERVENTION: ({"support_plan": "SP-7"}, None),
        lc.REVIEW: ({"outcome": "progressing"}, None),
        lc.EXIT: ({"summary": "objectives met"}, None),
        lc.WITHDRAW_CONSENT: ({"route": "no_further_action"}, "the person withdrew"),
        lc.CLOSE: ({"code": CLOSE_CODE_IN.get(state, "duplicate")}, None),
        lc.RECORD_POST_EXIT_REVIEW: ({"outcome": "no_concerns"}, None),
    }
    return requests[event]


def actor_for(event: str) -> str:
    spec = REFERRAL_LIFECYCLE.event(event)
    assert spec is not None
    return USER_OF_ROLE[min(spec.roles)]


def local(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LONDON)


def referral_via(
    workflow: Workflow, steps: list[Step], *, at: datetime = NOW, **overrides: Any
) -> str:
    """Like factories.referral_in, but along any path: one step a day, the last the day before
    ``at``."""
    start = at - timedelta(days=len(steps) + 1)
    with clock.frozen_at(at):
        reference = open_referral(workflow, received_on=clock.local_date(start), **overrides)
        for day, (event, actor, values, reason) in enumerate(steps, start=1):
            workflow.fire(
                reference,
                event,
                by=actor,
                values=values,
                reason=reason,
                at=start + timedelta(days=day),
            )
    return reference


def screened_with(outcome: str) -> list[Step]:
    return [(lc.SCREEN, POLICE, {"outcome": outcome}, None)]


def declined_with(route: str) -> list[Step]:
    return [*PATH_TO[lc.PANEL_REVIEW], (lc.DECLINE, CHAIR, {"route": route}, "not Channel")]


def audit_count(workflow: Workflow) -> int:
    return verify_chain(workflow.engine, workflow.key).count


def snapshot(workflow: Workflow, reference: str) -> tuple[dict[str, Any], int]:
    """The referral as its coordinator sees it (state, version, history...) and the trail size."""
    return show_case(workflow, reference, by=COORDINATOR), audit_count(workflow)


@dataclass(frozen=True)
class Access:
    actor: str
    role: str | None
    action: str
    entity_id: str | None
    allowed: bool


def access_log(engine: Engine) -> list[Access]:
    query = select(
        col(AccessLog.actor),
        col(AccessLog.role),
        col(AccessLog.action),
        col(AccessLog.entity_id),
        col(AccessLog.allowed),
    ).order_by(col(AccessLog.id))
    with engine.connect() as connection:
        return [Access(*row) for row in connection.execute(query)]


def referral_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(Referral)).scalar_one())


def assert_refused(
    workflow: Workflow,
    reference: str,
    event: str,
    error: type[ChannelflowError],
    *,
    by: str,
    values: Mapping[str, str] | None = None,
    reason: str | None = None,
    at: datetime | None = None,
) -> ChannelflowError:
    before = snapshot(workflow, reference)
    with pytest.raises(error) as caught:
        workflow.fire(reference, event, by=by, values=values or {}, reason=reason, at=at)
    assert type(caught.value) is error, caught.value
    assert snapshot(workflow, reference) == before
    return caught.value


def fire_ok(
    workflow: Workflow,
    reference: str,
    event: str,
    *,
    by: str,
    values: Mapping[str, str] | None = None,
    reason: str | None = None,
    at: datetime | None = None,
) -> tuple[FireResult, dict[str, Any]]:
    """Fire ``event`` and check the bookkeeping every successful event shares."""
    before, events_before = snapshot(workflow, reference)
    result = workflow.fire(reference, event, by=by, values=values or {}, reason=reason, at=at)
    view, events_after = snapshot(workflow, reference)
    assert result.from_state == before["state"]
    assert view["state"] == result.to_state
    assert view["version"] == result.version == before["version"] + 1
    assert events_after == events_before + (2 if result.opened else 1)
    last = view["history"][-1]
    assert (last["event"], last["from"], last["to"], last["actor"], last["seq"]) == (
        event,
        before["state"],
        result.to_state,
        by,
        result.seq,
    )
    assert view["history"][:-1] == before["history"]
    return result, view


def attempt(
    workflow: Workflow,
    reference: str,
    event: str,
    *,
    by: str,
    values: Mapping[str, str] | None = None,
    reason: str | None = None,
    at: datetime | None = None,
) -> str:
    """Fire ``event``; return "fired", or the name of the error that refused it.

    A refusal must leave everything as it was; anything but a ChannelflowError (a crash)
    propagates.
    """
    before = snapshot(workflow, reference)
    try:
        fire_ok(workflow, reference, event, by=by, values=values, reason=reason, at=at)
    except ChannelflowError as error:
        assert snapshot(workflow, reference) == before, event
        return type(error).__name__
    return "fired"


@pytest.fixture(autouse=True)
def _clock_at_now() -> None:
    clock.set_now(NOW)  # conftest releases it after each test


# The table itself ---------------------------------------------------------------------------


def test_declared_lifecycle_is_domain_md_table() -> None:
    declared = {
        spec.name: (set(spec.sources), spec.dest, {role.value for role in spec.roles})
        for spec in REFERRAL_LIFECYCLE.events
    }
    assert declared == DOMAIN_TABLE
    assert set(REFERRAL_LIFECYCLE.states) == {
        "received",
        "screened",
        "panel_review",
        "accepted",
        "declined",
        "intervention",
        "closed",
    }
    assert REFERRAL_LIFECYCLE.initial == "received"


def test_transition_not_allowed_is_a_refusal_with_exit_code_4() -> None:
    assert exit_code_for(TransitionNotAllowed("x")) == EXIT_REFUSED == 4


@pytest.mark.parametrize("state", REFERRAL_LIFECYCLE.states)
def test_every_event_from_every_state_does_exactly_what_the_lifecycle_declares(
    workflow: Workflow, state: str
) -> None:
    clock.set_now(FIRE_AT)
    untouched = referral_in(workflow, state)
    expected: dict[str, tuple[str, ...]] = {}
    observed: dict[str, tuple[str, ...]] = {}
    for spec in REFERRAL_LIFECYCLE.events:
        by = actor_for(spec.name)
        values, reason = valid_request(spec.name, state)
        if state in spec.sources:
            expected[spec.name] = ("fired", spec.dest, "version+1")
            reference = referral_in(workflow, state)
            try:
                _, view = fire_ok(
                    workflow, reference, spec.name, by=by, values=values, reason=reason
                )
            except ChannelflowError as error:
                observed[spec.name] = ("raised", type(error).__name__, error.message)
                continue
            observed[spec.name] = ("fired", view["state"], "version+1")
        else:
            expected[spec.name] = ("refused", "TransitionNotAllowed", EXIT_REFUSED)
            before = snapshot(workflow, untouched)
            try:
                workflow.fire(untouched, spec.name, by=by, values=values, reason=reason)
            except ChannelflowError as error:
                observed[spec.name] = ("refused", type(error).__name__, exit_code_for(error))
            else:
                observed[spec.name] = ("fired", "although the lifecycle forbids it")
            assert snapshot(workflow, untouched) == before, spec.name
    assert observed == expected


# Guards, each both ways ----------------------------------------------------------------------


def test_screen_needs_one_of_the_gateway_outcomes(workflow: Workflow) -> None:
    reference = referral_in(workflow, lc.RECEIVED)
    assert_refused(workflow, reference, lc.SCREEN, GuardRefused, by=POLICE)
    assert_refused(
        workflow, reference, lc.SCREEN, GuardRefused, by=POLICE, values={"outcome": "  "}
    )
    assert_refused(
        workflow, reference, lc.SCREEN, InvalidInput, by=POLICE, values={"outcome": "maybe"}
    )
    assert_refused(
        workflow, reference, lc.SCREEN, InvalidInput, by=POLICE, values={"outcome": "Proceed"}
    )
    _, view = fire_ok(workflow, reference, lc.SCREEN, by=POLICE, values={"outcome": "proceed"})
    assert view["gateway_outcome"] == "proceed"
    assert view["history"][-1]["data"] == {"outcome": "proceed"}


def test_screen_records_each_gateway_outcome(workflow: Workflow) -> None:
    for outcome in lc.GATEWAY_OUTCOMES:
        reference = referral_in(workflow, lc.RECEIVED)
        _, view = fire_ok(
            workflow, reference, lc.SCREEN, by=COORDINATOR, values={"outcome": outcome}
        )
        assert (view["state"], view["gateway_outcome"]) == (lc.SCREENED, outcome)


def test_refer_to_panel_only_when_the_gateway_outcome_was_proceed(workflow: Workflow) -> None:
    for outcome in ("no_further_action", "signpost", "police_led"):
        reference = referral_via(workflow, screened_with(outcome))
        assert_refused(workflow, reference, lc.REFER_TO_PANEL, GuardRefused, by=COORDINATOR)
    reference = referral_via(workflow, screened_with("proceed"))
    _, view = fire_ok(workflow, reference, lc.REFER_TO_PANEL, by=COORDINATOR)
    assert view["state"] == lc.PANEL_REVIEW
    assert view["panel_on"] == "2026-12-31"


def test_default_panel_is_the_first_last_thursday_strictly_after_the_event_date(
    workflow: Workflow,
) -> None:
    expected = {
        # Event time (London) -> the panel it goes to.
        local(2026, 11, 26): "2026-12-31",  # the last Thursday itself: the next month's panel
        local(2026, 11, 25): "2026-11-26",
        local(2026, 11, 27): "2026-12-31",
        local(2026, 12, 31, 16): "2027-01-28",  # across the year end
        local(2027, 1, 1): "2027-01-28",
        # 23:30 UTC on 24 June is 00:30 on Thursday 25 June in London: the London date counts.
        datetime(2026, 6, 24, 23, 30, tzinfo=UTC): "2026-07-30",
    }
    clock.set_now(local(2027, 1, 2))
    observed = {}
    for at in expected:
        reference = referral_via(workflow, screened_with("proceed"), at=at - timedelta(days=1))
        result, view = fire_ok(workflow, reference, lc.REFER_TO_PANEL, by=COORDINATOR, at=at)
        observed[at] = view["panel_on"]
        assert result.data["panel"] == view["panel_on"]
    assert observed == expected


def test_refer_to_panel_with_a_chosen_panel_date_after_the_event_date(workflow: Workflow) -> None:
    reference = referral_in(workflow, lc.SCREENED)
    for too_early in ("2026-11-28", "2026-11-01"):
        assert_refused(
            workflow,
            reference,
            lc.REFER_TO_PANEL,
            GuardRefused,
            by=COORDINATOR,
            values={"panel": too_early},
        )
    assert_refused(
        workflow,
        reference,
        lc.REFER_TO_PANEL,
        InvalidInput,
        by=COORDINATOR,
        values={"panel": "31/12/2026"},
    )
    _, view = fire_ok(
        workflow, reference, lc.REFER_TO_PANEL, by=COORDINATOR, values={"panel": "2026-12-10"}
    )
    assert view["panel_on"] == "2026-12-10"


def test_adjourn_needs_a_reason_and_moves_the_case_to_a_later_panel(workflow: Workflow) -> None:
    reference = referral_in(workflow, lc.PANEL_REVIEW)
    panel = show_case(workflow, reference, by=CHAIR)["panel_on"]
    assert panel == "2026-12-31"
    assert_refused(workflow, reference, lc.ADJOURN, GuardRefused, by=CHAIR)
    assert_refused(workflow, reference, lc.ADJOURN, GuardRefused, by=CHAIR, reason="   ")
    assert_refused(
        workflow,
        reference,
        lc.ADJOURN,
        GuardRefused,
        by=CHAIR,
        reason="papers late",
        values={"panel": panel},  # not later than the panel it is already on
    )
    _, view = fire_ok(workflow, reference, lc.ADJOURN, by=CHAIR, reason="papers late")
    assert view["state"] == lc.PANEL_REVIEW
    assert view["panel_on"] == "2027-01-28"
    assert view["history"][-1]["reason"] == "papers late"
    _, view = fire_ok(
        workflow,
        reference,
        lc.ADJOURN,
        by=CHAIR,
        reason="still waiting",
        values={"panel": "2027-03-25"},
    )
    assert view["panel_on"] == "2027-03-25"


def test_adjourn_after_the_panel_date_has_passed_goes_to_the_next_panel(
    workflow: Workflow,
) -> None:
    reference = referral_in(workflow, lc.PANEL_REVIEW)  # on the 2026-12-31 panel
    clock.set_now(local(2027, 2, 1, 12))
    _, view = fire_ok(workflow, reference, lc.ADJOURN, by=CHAIR, reason="missed")
    assert view["panel_on"] == "2027-02-25"


# Accepting on 26 November 2026: the consent needed depends on the age on that date.
ACCEPT_ON = local(2026, 11, 26)
CONSENT_NEEDED = {
    # case: (date of birth, event time, the consent that fits)
    "adult": (date(1990, 3, 4), ACCEPT_ON, "given"),
    "turns 18 on the event date": (date(2008, 11, 26), ACCEPT_ON, "given"),
    "turns 18 the day after": (date(2008, 11, 27), ACCEPT_ON, "parental"),
    "child": (date(2012, 5, 1), ACCEPT_ON, "parental"),
    # 23:30 UTC on 25 June is already 26 June, the 18th birthday, in London.
    "birthday by the London date": (
        date(2008, 6, 26),
        datetime(2026, 6, 25, 23, 30, tzinfo=UTC),
        "given",
    ),
}


def test_accept_needs_the_consent_that_fits_the_age_on_the_event_date(
    workflow: Workflow,
) -> None:
    expected, observed = {}, {}
    clock.set_now(local(2026, 11, 30))
    for case, (date_of_birth, at, needed) in CONSENT_NEEDED.items():
        reference = referral_in(
            workflow, lc.PANEL_REVIEW, at=at - timedelta(days=1), date_of_birth=date_of_birth
        )
        for consent in (*lc.CONSENT_KINDS, "verbal", ""):
            expected[case, consent] = {
                needed: "fired",
                "verbal": "InvalidInput",
                "": "GuardRefused",
            }.get(consent, "GuardRefused")
            if consent != needed:
                observed[case, consent] = attempt(
                    workflow,
                    reference,
                    lc.ACCEPT,
                    by=CHAIR,
                    at=at,
                    values={"consent": consent, "lead": LEAD},
                )
        observed[case, needed] = attempt(
            workflow,
            reference,
            lc.ACCEPT,
            by=CHAIR,
            at=at,
            values={"consent": needed, "lead": LEAD},
        )
        view = show_case(workflow, reference, by=CHAIR)
        assert (view["state"], view["consent"], view["lead"]) == (lc.ACCEPTED, needed, LEAD), case
    assert observed == expected


def test_accept_needs_a_case_lead_who_is_a_user_with_role_lead(workflow: Workflow) -> None:
    reference = referral_in(workflow, lc.PANEL_REVIEW)
    consent = {"consent": "given"}
    assert_refused(workflow, reference, lc.ACCEPT, GuardRefused, by=CHAIR, values=consent)
    assert_refused(
        workflow,
        reference,
        lc.ACCEPT,
        UserNotFound,
        by=CHAIR,
        values={**consent, "lead": "nobody"},
    )
    for not_a_lead in (POLICE, COORDINATOR, CHAIR, MEMBER, AUDITOR, ADMIN):
        assert_refused(
            workflow,
            reference,
            lc.ACCEPT,
            GuardRefused,
            by=CHAIR,
            values={**consent, "lead": not_a_lead},
        )
    _, view = fire_ok(workflow, reference, lc.ACCEPT, by=CHAIR, values={**consent, "lead": LEAD})
    assert view["lead"] == LEAD


def test_accept_trims_the_case_lead_like_every_other_value(workflow: Workflow) -> None:
    reference = referral_in(workflow, lc.PANEL_REVIEW)
    _, view = fire_ok(
        workflow, reference, lc.ACCEPT, by=CHAIR, values={"consent": "given", "lead": f" {LEAD} "}
    )
    assert view["lead"] == LEAD


def test_decline_needs_a_reason_and_an_onward_route(workflow: Workflow) -> None:
    reference = referral_in(workflow, lc.PANEL_REVIEW)
    route = {"route": "police_led"}
    assert_refused(workflow, reference, lc.DECLINE, GuardRefused, by=CHAIR, values=route)
    assert_refused(workflow, reference, lc.DECLINE, GuardRefused, by=CHAIR, reason="no fit")
    assert_refused(
        workflow,
        reference,
        lc.DECLINE,
        InvalidInput,
        by=CHAIR,
        reason="no fit",
        values={"route": "signpost"},  # a gateway outcome, not an onward route
    )
    _, view = fire_ok(workflow, reference, lc.DECLINE, by=CHAIR, reason="no fit", values=route)
    assert (view["state"], view["onward_route"]) == (lc.DECLINED, "police_led")
    assert view["history"][-1]["reason"] == "no fit"


def test_start_intervention_needs_a_support_plan_and_a_first_review_after_the_event(
    workflow: Workflow,
) -> None:
    reference = referral_in(workflow, lc.ACCEPTED)
    event, plan = lc.START_INTERVENTION, {"support_plan": "SP-1"}
    assert_refused(workflow, reference, event, GuardRefused, by=COORDINATOR)
    assert_refused(
        workflow, reference, event, GuardRefused, by=COORDINATOR, values={"support_plan": " "}
    )
    assert_refused(
        workflow,
        reference,
        event,
        InvalidInput,
        by=COORDINATOR,
        values={"support_plan": "x" * 2001},
    )
    for not_after in ("2026-11-28", "2026-11-20"):  # the event is on 2026-11-28
        assert_refused(
            workflow,
            reference,
            event,
            GuardRefused,
            by=COORDINATOR,
            values={**plan, "first_review": not_after},
        )
    assert_refused(
        workflow,
        reference,
        event,
        InvalidInput,
        by=COORDINATOR,
        values={**plan, "first_review": "next month"},
    )
    _, view = fire_ok(workflow, reference, event, by=COORDINATOR, values=plan)
    assert (view["state"], view["support_plan"], view["provider"]) == (
        lc.INTERVENTION,
        "SP-1",
        None,
    )
    assert view["next_review_on"] == "2026-12-31"  # default: the next panel
    assert view["due_reviews"] == [{"kind": "support_plan", "due_on": "2026-12-31"}]

    other = referral_in(workflow, lc.ACCEPTED)
    _, view = fire_ok(
        workflow,
        other,
        event,
        by=COORDINATOR,
        values={**plan, "first_review": "2026-11-29", "provider": "Mentor Ltd"},
    )
    assert (view["next_review_on"], view["provider"]) == ("2026-11-29", "Mentor Ltd")


def test_review_needs_an_outcome_and_a_next_review_after_the_event(workflow: Workflow) -> None:
    reference = referral_in(workflow, lc.INTERVENTION)
    assert_refused(workflow, reference, lc.REVIEW, GuardRefused, by=CHAIR)
    assert_refused(
        workflow, reference, lc.REVIEW, InvalidInput, by=CHAIR, values={"outcome": "fine"}
    )
    for not_after in ("2026-11-28", "2026-11-27"):
        assert_refused(
            workflow,
            reference,
            lc.REVIEW,
            GuardRefused,
            by=CHAIR,
            values={"outcome": "progressing", "next_review": not_after},
        )
    assert_refused(
        workflow,
        reference,
        lc.REVIEW,
        InvalidInput,
        by=CHAIR,
        values={"outcome": "progressing", "next_review": "2026-02-30"},
    )
    _, view = fire_ok(workflow, reference, lc.REVIEW, by=CHAIR, values={"outcome": "no_progress"})
    assert (view["state"], view["next_review_on"]) == (lc.INTERVENTION, "2026-12-31")
    assert view["history"][-1]["data"] == {"outcome": "no_progress", "next_review": "2026-12-31"}
    _, view = fire_ok(
        workflow,
        reference,
        lc.REVIEW,
        by=CHAIR,
        values={"outcome": "progressing", "next_review": "2026-11-29"},
    )
    assert view["next_review_on"] == "2026-11-29"
    assert view["due_reviews"] == [{"kind": "support_plan", "due_on": "2026-11-29"}]


@pytest.mark.parametrize(
    ("exit_at", "six", "twelve"),
    [
        pytest.param(NOW, "2027-05-28", "2027-11-28", id="mid-month"),
        pytest.param(local(2026, 8, 31), "2027-02-28", "2027-08-31", id="month-end"),
    ],
)
def test_exit_needs_a_summary_and_schedules_post_exit_reviews_at_6_and_12_months(
    workflow: Workflow, exit_at: datetime, six: str, twelve: str
) -> None:
    clock.set_now(exit_at)
    reference = referral_in(workflow, lc.INTERVENTION, at=exit_at)
    assert_refused(workflow, reference, lc.EXIT, GuardRefused, by=CHAIR)
    assert_refused(workflow, reference, lc.EXIT, GuardRefused, by=CHAIR, values={"summary": " "})
    _, view = fire_ok(workflow, reference, lc.EXIT, by=CHAIR, values={"summary": "met"})
    exited = clock.local_date(exit_at).isoformat()
    assert (view["state"], view["exited_on"], view["closed_on"]) == (lc.CLOSED, exited, exited)
    assert view["next_review_on"] is None
    assert view["due_reviews"] == [
        {"kind": "post_exit_6m", "due_on": six},
        {"kind": "post_exit_12m", "due_on": twelve},
    ]


@pytest.mark.parametrize("state", [lc.ACCEPTED, lc.INTERVENTION])
def test_withdraw_consent_needs_a_reason_and_an_onward_route(
    workflow: Workflow, state: str
) -> None:
    reference = referral_in(workflow, state)
    event, route = lc.WITHDRAW_CONSENT, {"route": "signposted"}
    assert_refused(workflow, reference, event, GuardRefused, by=COORDINATOR, values=route)
    assert_refused(workflow, reference, event, GuardRefused, by=COORDINATOR, reason="moved")
    assert_refused(
        workflow,
        reference,
        event,
        InvalidInput,
        by=COORDINATOR,
        reason="moved",
        values={"route": "elsewhere"},
    )
    _, view = fire_ok(workflow, reference, event, by=COORDINATOR, reason="moved", values=route)
    assert (view["state"], view["onward_route"], view["closed_on"]) == (
        lc.CLOSED,
        "signposted",
        "2026-11-28",
    )
    assert view["due_reviews"] == []


CLOSABLE = {
    # how the referral got here: (its path, the close codes the guard accepts)
    "received": ([], {"duplicate", "withdrawn"}),
    "screened, proceed": (screened_with("proceed"), {"duplicate", "withdrawn"}),
    "screened, signpost": (screened_with("signpost"), {"duplicate", "withdrawn", "signposted"}),
    "screened, no_further_action": (
        screened_with("no_further_action"),
        {"duplicate", "withdrawn", "no_further_action"},
    ),
    "screened, police_led": (
        screened_with("police_led"),
        {"duplicate", "withdrawn", "police_led"},
    ),
    "declined, signposted": (
        declined_with("signposted"),
        {"duplicate", "withdrawn", "signposted"},
    ),
    "declined, no_further_action": (
        declined_with("no_further_action"),
        {"duplicate", "withdrawn", "no_further_action"},
    ),
    "declined, police_led": (
        declined_with("police_led"),
        {"duplicate", "withdrawn", "police_led"},
    ),
}


def test_close_accepts_only_the_codes_the_referrals_history_supports(workflow: Workflow) -> None:
    expected, observed = {}, {}
    for case, (steps, allowed) in CLOSABLE.items():
        reference = referral_via(workflow, steps)
        for code in (*lc.CLOSE_CODES, "signpost", ""):
            expected[case, code] = "fired" if code in allowed else "GuardRefused"
            if code == "signpost":
                expected[case, code] = "InvalidInput"  # not a close code at all
            if code in allowed:
                closing = referral_via(workflow, steps)
                observed[case, code] = attempt(
                    workflow, closing, lc.CLOSE, by=COORDINATOR, values={"code": code}
                )
                view = show_case(workflow, closing, by=COORDINATOR)
                assert (view["state"], view["close_code"], view["closed_on"]) == (
                    lc.CLOSED,
                    code,
                    "2026-11-28",
                )
            else:
                observed[case, code] = attempt(
                    workflow, reference, lc.CLOSE, by=COORDINATOR, values={"code": code}
                )
    assert observed == expected


def test_post_exit_reviews_are_recorded_only_when_due_and_re_refer_opens_a_linked_referral(
    workflow: Workflow,
) -> None:
    reference = referral_in(workflow, lc.CLOSED)  # exited on 2026-11-27
    event = lc.RECORD_POST_EXIT_REVIEW
    no_concerns, re_refer = {"outcome": "no_concerns"}, {"outcome": "re_refer"}

    clock.set_now(local(2027, 5, 26, 23, 59))
    assert_refused(workflow, reference, event, GuardRefused, by=COORDINATOR, values=no_concerns)

    clock.set_now(local(2027, 5, 27, 9))
    assert_refused(workflow, reference, event, GuardRefused, by=COORDINATOR)
    assert_refused(
        workflow, reference, event, InvalidInput, by=COORDINATOR, values={"outcome": "fine"}
    )
    result, view = fire_ok(workflow, reference, event, by=COORDINATOR, values=no_concerns)
    assert result.opened is None
    assert result.data == {"outcome": "no_concerns", "review_months": 6}
    assert view["due_reviews"] == [{"kind": "post_exit_12m", "due_on": "2027-11-27"}]

    clock.set_now(local(2027, 6, 1))
    assert_refused(workflow, reference, event, GuardRefused, by=COORDINATOR, values=re_refer)

    clock.set_now(local(2027, 11, 27))
    result, view = fire_ok(workflow, reference, event, by=COORDINATOR, values=re_refer)
    assert view["state"] == lc.CLOSED
    assert view["due_reviews"] == []
    assert result.opened is not None
    assert result.data["new_referral"] == result.opened
    opened = show_case(workflow, result.opened, by=COORDINATOR)
    assert (opened["state"], opened["version"], opened["linked_from"]) == (
        lc.RECEIVED,
        1,
        reference,
    )
    assert opened["received_on"] == "2027-11-27"
    assert opened["personal"]["full_name"] == view["personal"]["full_name"]
    assert [(h["event"], h["data"].get("linked_from")) for h in opened["history"]] == [
        (lc.OPEN, reference)
    ]

    clock.set_now(local(2029, 1, 1))
    assert_refused(workflow, reference, event, GuardRefused, by=COORDINATOR, values=no_concerns)


def test_no_post_exit_review_is_due_after_a_close_or_a_withdrawal(workflow: Workflow) -> None:
    closed = referral_via(workflow, [(lc.CLOSE, COORDINATOR, {"code": "duplicate"}, None)])
    withdrawn = referral_via(
        workflow,
        [
            *PATH_TO[lc.ACCEPTED],
            (lc.WITHDRAW_CONSENT, COORDINATOR, {"route": "signposted"}, "moved away"),
        ],
    )
    clock.set_now(local(2028, 1, 1))
    for reference in (closed, withdrawn):
        assert_refused(
            workflow,
            reference,
            lc.RECORD_POST_EXIT_REVIEW,
            GuardRefused,
            by=COORDINATOR,
            values={"outcome": "no_concerns"},
        )


def test_a_set_key_the_event_does_not_take_is_invalid_input(workflow: Workflow) -> None:
    for state, event, values in (
        (lc.RECEIVED, lc.SCREEN, {"outcome": "proceed", "colour": "red"}),
        (lc.SCREENED, lc.REFER_TO_PANEL, {"outcome": "proceed"}),
        (lc.INTERVENTION, lc.EXIT, {"summary": "met", "reason": "done"}),
    ):
        reference = referral_in(workflow, state)
        assert_refused(workflow, reference, event, InvalidInput, by=actor_for(event), values=values)


def test_an_event_time_in_the_future_is_invalid_input(workflow: Workflow) -> None:
    reference = referral_in(workflow, lc.RECEIVED)
    assert_refused(
        workflow,
        reference,
        lc.SCREEN,
        InvalidInput,
        by=POLICE,
        values={"outcome": "proceed"},
        at=NOW + timedelta(minutes=1),
    )
    fire_ok(workflow, reference, lc.SCREEN, by=POLICE, values={"outcome": "proceed"}, at=NOW)


def test_an_event_time_before_the_previous_events_date_is_invalid_input(
    workflow: Workflow,
) -> None:
    reference = referral_in(workflow, lc.SCREENED)  # screened at 12:00 UTC on 2026-11-27
    assert_refused(
        workflow,
        reference,
        lc.REFER_TO_PANEL,
        InvalidInput,
        by=COORDINATOR,
        at=local(2026, 11, 26, 23, 59),
    )
    # Only the date counts: earlier on the same day is fine.
    fire_ok(workflow, reference, lc.REFER_TO_PANEL, by=COORDINATOR, at=local(2026, 11, 27, 8))


def test_an_event_time_before_the_received_date_is_invalid_input(workflow: Workflow) -> None:
    reference = open_referral(workflow, received_on=date(2026, 11, 20))
    assert_refused(
        workflow,
        reference,
        lc.SCREEN,
        InvalidInput,
        by=POLICE,
        values={"outcome": "proceed"},
        at=local(2026, 11, 19, 16),
    )


def test_an_unknown_event_or_referral_is_refused(workflow: Workflow) -> None:
    reference = referral_in(workflow, lc.RECEIVED)
    assert_refused(workflow, reference, "reopen", InvalidInput, by=COORDINATOR)
    events = audit_count(workflow)
    with pytest.raises(ReferralNotFound):
        workflow.fire("CF-2026-9999", lc.SCREEN, by=POLICE, values={"outcome": "proceed"})
    assert audit_count(workflow) == events


def test_a_far_future_panel_date_is_refused_as_invalid_input(workflow: Workflow) -> None:
    reference = referral_in(workflow, lc.SCREENED)
    values = {"panel": "9999-12-31"}
    assert_refused(
        workflow, reference, lc.REFER_TO_PANEL, InvalidInput, by=COORDINATOR, values=values
    )


def test_a_provider_longer_than_its_column_is_refused_as_invalid_input(workflow: Workflow) -> None:
    for length, expected in ((200, "fired"), (201, "InvalidInput"), (2000, "InvalidInput")):
        reference = referral_in(workflow, lc.ACCEPTED)
        provider = "p" * length
        values = {"support_plan": "SP-1", "provider": provider}
        outcome = attempt(workflow, reference, lc.START_INTERVENTION, by=COORDINATOR, values=values)
        assert outcome == expected
        if outcome == "fired":
            assert show_case(workflow, reference, by=COORDINATOR)["provider"] == provider


def test_a_reason_with_a_nul_character_is_refused_as_invalid_input(workflow: Workflow) -> None:
    reference = referral_in(workflow, lc.PANEL_REVIEW)
    assert_refused(workflow, reference, lc.ADJOURN, InvalidInput, by=CHAIR, reason="late\x00papers")


def test_a_reason_that_is_not_valid_unicode_is_invalid_input(workflow: Workflow) -> None:
    reference = referral_in(workflow, lc.PANEL_REVIEW)
    assert_refused(workflow, reference, lc.ADJOURN, InvalidInput, by=CHAIR, reason="late \udcff")


def test_a_refused_event_never_adds_an_audit_event(workflow: Workflow) -> None:
    reference = referral_in(workflow, lc.PANEL_REVIEW)
    events = audit_count(workflow)
    attempts: list[tuple[str, str, dict[str, str], str | None, datetime | None]] = [
        (lc.EXIT, CHAIR, {"summary": "x"}, None, None),  # not allowed from panel_review
        (lc.ACCEPT, POLICE, {"consent": "given", "lead": LEAD}, None, None),  # wrong role
        (lc.ACCEPT, CHAIR, {"consent": "parental", "lead": LEAD}, None, None),  # guard
        (lc.ACCEPT, CHAIR, {"consent": "given", "lead": "nobody"}, None, None),  # no such user
        (lc.ADJOURN, CHAIR, {"panel": "soon"}, "late", None),  # bad value
        (lc.ADJOURN, CHAIR, {}, "late", NOW + timedelta(days=1)),  # future
        (lc.ADJOURN, CHAIR, {}, "late", NOW - timedelta(days=30)),  # before the last event
        (lc.ADJOURN, "nobody", {}, "late", None),  # no such actor
    ]
    for event, by, values, reason, at in attempts:
        with pytest.raises(ChannelflowError):
            workflow.fire(reference, event, by=by, values=values, reason=reason, at=at)
        assert audit_count(workflow) == events, (event, by, values)
    assert show_case(workflow, reference, by=COORDINATOR)["version"] == 3


# Roles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", ALL_EVENTS)
def test_only_the_roles_the_lifecycle_names_may_fire_an_event(
    workflow: Workflow, event: str
) -> None:
    spec = REFERRAL_LIFECYCLE.event(event)
    assert spec is not None
    clock.set_now(FIRE_AT)
    source = spec.sources[0]
    values, reason = valid_request(event, source)
    reference = referral_in(workflow, source)
    for role in Role:
        if role in spec.roles:
            continue
        user = USER_OF_ROLE[role]
        before = snapshot(workflow, reference)
        log_before = access_log(workflow.engine)
        with pytest.raises(PermissionDenied):
            workflow.fire(reference, event, by=user, values=values, reason=reason)
        assert access_log(workflow.engine)[len(log_before) :] == [
            Access(user, role.value, f"referral.fire:{event}", reference, False)
        ], role
        assert snapshot(workflow, reference) == before, role
    for role in sorted(spec.roles):
        user = USER_OF_ROLE[role]
        permitted = referral_in(workflow, source)
        _, view = fire_ok(workflow, permitted, event, by=user, values=values, reason=reason)
        assert view["state"] == spec.dest
        assert view["history"][-1]["role"] == role.value


def test_only_police_and_coordinators_open_referrals(workflow: Workflow) -> None:
    for role in Role:
        user = USER_OF_ROLE[role]
        events, referrals = audit_count(workflow), referral_count(workflow.engine)
        log_before = access_log(workflow.engine)
        if role in {Role.POLICE, Role.COORDINATOR}:
            reference = workflow.open_referral(new_referral(), by=user)
            view = show_case(workflow, reference, by=COORDINATOR)
            assert (view["state"], view["version"]) == (lc.RECEIVED, 1)
            assert [(h["event"], h["actor"], h["role"]) for h in view["history"]] == [
                (lc.OPEN, user, role.value)
            ]
            assert audit_count(workflow) == events + 1
            continue
        with pytest.raises(PermissionDenied):
            workflow.open_referral(new_referral(), by=user)
        assert (audit_count(workflow), referral_count(workflow.engine)) == (events, referrals)
        assert access_log(workflow.engine)[len(log_before) :] == [
            Access(user, role.value, "referral.add", None, False)
        ], role


def test_an_admin_may_not_read_a_case_and_the_refusal_is_logged(workflow: Workflow) -> None:
    reference = referral_in(workflow, lc.INTERVENTION)
    log_before = access_log(workflow.engine)
    with pytest.raises(PermissionDenied):
        show_case(workflow, reference, by=ADMIN)
    assert access_log(workflow.engine)[len(log_before) :] == [
        Access(ADMIN, "admin", "referral.show", reference, False)
    ]


def show_and_log(workflow: Workflow, reference: str, by: str) -> dict[str, Any]:
    """show_case, checking it logged exactly one allowed read."""
    log_before = access_log(workflow.engine)
    view = show_case(workflow, reference, by=by)
    role = next(role.value for role, name in USER_OF_ROLE.items() if name == by)
    assert access_log(workflow.engine)[len(log_before) :] == [
        Access(by, role, "referral.show", reference, True)
    ]
    return view


def assert_may_not_read(workflow: Workflow, reference: str, by: str) -> None:
    log_before = access_log(workflow.engine)
    with pytest.raises(PermissionDenied):
        show_case(workflow, reference, by=by)
    new = access_log(workflow.engine)[len(log_before) :]
    assert [(row.actor, row.action, row.entity_id, row.allowed) for row in new] == [
        (by, "referral.show", reference, False)
    ]


def test_casework_roles_read_every_case_with_personal_details(workflow: Workflow) -> None:
    reference = referral_in(workflow, lc.RECEIVED)
    for reader in (POLICE, COORDINATOR, CHAIR):
        view = show_and_log(workflow, reference, reader)
        assert view["personal"]["full_name"] == "Zebedee Quillfeather"
        assert view["personal"]["date_of_birth"] == "1990-03-04"


def test_an_auditor_sees_the_history_but_no_personal_details(workflow: Workflow) -> None:
    reference = referral_in(workflow, lc.INTERVENTION)
    view = show_and_log(workflow, reference, AUDITOR)
    assert "personal" not in view
    assert [h["event"] for h in view["history"]] == [
        lc.OPEN,
        lc.SCREEN,
        lc.REFER_TO_PANEL,
        lc.ACCEPT,
        lc.START_INTERVENTION,
    ]
    assert view["version"] == len(view["history"])


def test_a_panel_member_sees_only_cases_that_reached_a_panel(workflow: Workflow) -> None:
    never_at_panel = [
        referral_in(workflow, lc.RECEIVED),
        referral_in(workflow, lc.SCREENED),
        referral_via(workflow, [(lc.CLOSE, COORDINATOR, {"code": "duplicate"}, None)]),
    ]
    for reference in never_at_panel:
        assert_may_not_read(workflow, reference, MEMBER)
    for state in (lc.PANEL_REVIEW, lc.ACCEPTED, lc.DECLINED, lc.INTERVENTION, lc.CLOSED):
        reference = referral_in(workflow, state)
        assert show_and_log(workflow, reference, MEMBER)["state"] == state


def test_a_case_lead_sees_only_the_cases_they_lead(workflow: Workflow) -> None:
    workflow.add_user("lena", Role.LEAD, email=None, by=ADMIN)
    led = referral_in(workflow, lc.INTERVENTION)  # led by LEAD
    led_by_lena = referral_via(
        workflow,
        [*PATH_TO[lc.PANEL_REVIEW], (lc.ACCEPT, CHAIR, {"consent": "given", "lead": "lena"}, None)],
    )
    unled = referral_in(workflow, lc.PANEL_REVIEW)
    assert show_and_log(workflow, led, LEAD)["lead"] == LEAD
    assert_may_not_read(workflow, led_by_lena, LEAD)
    assert_may_not_read(workflow, unled, LEAD)
