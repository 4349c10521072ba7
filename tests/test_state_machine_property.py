"""Random sequences of opens, events and reads against the real store, on both backends.

Whatever users, events, values and times Hypothesis throws at it, after every step the audit
chain verifies, each referral's state and version are exactly the replay of its audit events
through the declared lifecycle, and a refused step changed nothing at all.

The database is not reset between Hypothesis examples, so the invariants are checked on
everything accumulated so far. Time only moves forward, through the clock.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, func, select
from sqlmodel import col

from channelflow import categories, clock
from channelflow.audit.verify import verify_chain
from channelflow.exceptions import ChannelflowError
from channelflow.runtime import Runtime
from channelflow.states import REFERRAL_LIFECYCLE, EventSpec, Role, SetKey, ValueKind
from channelflow.states import referral as lc
from channelflow.store.models import AuditEvent, PostExitReview, Referral
from channelflow.workflow import views
from channelflow.workflow.engine import NewReferral
from tests.factories import LEAD, USER_OF_ROLE

SECOND_LEAD = "lena"
EVERYONE = [*USER_OF_ROLE.values(), SECOND_LEAD]
NOBODY = "nobody"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
EVENT_NAMES = [spec.name for spec in REFERRAL_LIFECYCLE.events]
ALL_KEYS = sorted({key.name for spec in REFERRAL_LIFECYCLE.events for key in spec.keys})

# Text that every backend stores as typed (the NUL, lone surrogate and over-long cases are
# covered by their own tests in test_lifecycle_table.py).
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), max_size=30)

Snapshot = tuple[dict[str, tuple[str, int]], int]


@dataclass
class Run:
    """What outlives Hypothesis examples: the clock, which never goes back, and the first
    failure, which a replay on the moved-on database could not reproduce."""

    now: datetime = START
    steps: list[str] = field(default_factory=list)
    first_failure: BaseException | None = None

    def today(self) -> date:
        return clock.local_date(self.now)


def referral_rows(engine: Engine) -> dict[str, tuple[str, int]]:
    query = select(col(Referral.reference), col(Referral.state), col(Referral.version))
    with engine.connect() as connection:
        return {
            reference: (state, version) for reference, state, version in connection.execute(query)
        }


def audit_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(AuditEvent)).scalar_one())


def due_post_exit(engine: Engine, today: date) -> list[str]:
    query = (
        select(col(Referral.reference))
        .join(PostExitReview, col(PostExitReview.referral_id) == col(Referral.id))
        .where(col(PostExitReview.recorded_on).is_(None), col(PostExitReview.due_on) <= today)
        .distinct()
    )
    with engine.connect() as connection:
        return sorted(connection.execute(query).scalars())


def referral_trails(engine: Engine) -> dict[str, list[tuple[str, str | None, str | None]]]:
    query = (
        select(
            col(AuditEvent.entity_id),
            col(AuditEvent.event),
            col(AuditEvent.from_state),
            col(AuditEvent.to_state),
        )
        .where(col(AuditEvent.entity_type) == "referral")
        .order_by(col(AuditEvent.seq))
    )
    trails: dict[str, list[tuple[str, str | None, str | None]]] = defaultdict(list)
    with engine.connect() as connection:
        for reference, event, from_state, to_state in connection.execute(query):
            trails[reference].append((event, from_state, to_state))
    return trails


def replay(trail: list[tuple[str, str | None, str | None]]) -> str | None:
    """The state a referral's audit events lead to, checking each step against the lifecycle."""
    state: str | None = None
    for position, (event, from_state, to_state) in enumerate(trail):
        assert from_state == state, (position, event, from_state, state)
        if event == lc.OPEN:
            assert (position, from_state, to_state) == (0, None, REFERRAL_LIFECYCLE.initial)
        else:
            assert to_state is not None
            assert REFERRAL_LIFECYCLE.allows(event, from_state or "", to_state), trail
        state = to_state
    return state


# Hypothesis must draw the same shape of data whatever the database holds, so a step draws
# raw material of a fixed shape and only then maps it onto the referrals and the event at hand.
WRONG_CHOICES = ("", " ", "unknown", "PROCEED", "signpost")
BAD_DATES = ("", "tomorrow", "2026-02-30", "31/12/2026")
LEAD_NAMES = (LEAD, LEAD, SECOND_LEAD, USER_OF_ROLE[Role.CHAIR], NOBODY, "")
PLAIN_TEXT = ("SP-1", "Mentor Ltd", "met its aims", " ")


@dataclass(frozen=True)
class Slot:
    """The raw makings of one --set value, whatever its key turns out to be."""

    include: int
    pick: int
    wrong: bool
    days: int
    text: str

    def render(self, key: SetKey, today: date) -> str:
        if key.kind is ValueKind.CHOICE:
            options = WRONG_CHOICES if self.wrong else key.choices
        elif key.kind is ValueKind.DATE:
            if not self.wrong:
                return (today + timedelta(days=self.days)).isoformat()
            options = BAD_DATES
        elif key.kind is ValueKind.USER:
            options = LEAD_NAMES
        else:
            options = (self.text,) if self.wrong else PLAIN_TEXT
        # The first choice (proceed, given, progressing...) moves a case on: favour it.
        return options[0 if self.pick % 2 else self.pick // 2 % len(options)]


@dataclass(frozen=True)
class RawValues:
    slots: tuple[Slot, ...]
    extra: tuple[tuple[str, str], ...]

    def for_event(self, spec: EventSpec, today: date) -> dict[str, str]:
        """Mostly the keys the event takes with values it accepts; sometimes not."""
        values = {
            key.name: slot.render(key, today)
            for key, slot in zip(spec.keys, self.slots, strict=False)
            if slot.include != 5 and (key.required or slot.include % 2)
        }
        for name, text in self.extra:
            values.setdefault(name, text)
        return values


SLOT = st.builds(
    Slot,
    include=st.integers(0, 9),
    pick=st.integers(0, 99),
    wrong=st.integers(0, 9).map(lambda n: n == 5),
    days=st.integers(-10, 400),
    text=TEXT,
)
RAW_VALUES = st.builds(
    RawValues,
    slots=st.tuples(SLOT, SLOT, SLOT),
    extra=st.tuples(
        st.integers(0, 9), st.sampled_from([*ALL_KEYS, "colour"]), st.sampled_from(PLAIN_TEXT)
    ).map(lambda extra: (extra[1:],) if extra[0] == 5 else ()),
)
PICK = st.integers(0, 10_000)
LATE_STATES = {lc.PANEL_REVIEW, lc.ACCEPTED, lc.INTERVENTION}
# The event that takes a case on towards support and closure, favoured to get deep.
FORWARD = {
    state: REFERRAL_LIFECYCLE.event(event)
    for state, event in (
        (lc.RECEIVED, lc.SCREEN),
        (lc.SCREENED, lc.REFER_TO_PANEL),
        (lc.PANEL_REVIEW, lc.ACCEPT),
        (lc.ACCEPTED, lc.START_INTERVENTION),
        (lc.INTERVENTION, lc.EXIT),
        (lc.DECLINED, lc.CLOSE),
        (lc.CLOSED, lc.RECORD_POST_EXIT_REVIEW),
    )
}
REASON = st.one_of(st.just("discussed at panel"), st.none(), TEXT)


@dataclass(frozen=True)
class When:
    """When a step says its event happened: mostly "now", sometimes earlier, rarely later."""

    kind: int
    hours: int

    def at(self, now: datetime) -> datetime | None:
        # Hypothesis favours the ends of a range, so the rare cases sit in the middle.
        if self.kind == 4:
            return now - timedelta(hours=self.hours)
        if self.kind == 5:
            return now + timedelta(hours=1 + self.hours % 48)
        return None


WHEN = st.builds(When, kind=st.integers(0, 9), hours=st.integers(0, 24 * 40))


@dataclass(frozen=True)
class Attempt:
    """One try at moving a referral on: a while later, which event, by whom, with what."""

    hours_later: int
    event_pick: int
    by_a_permitted_role: bool
    by_pick: int
    raw: RawValues
    reason: str | None
    when: When


ATTEMPT = st.builds(
    Attempt,
    hours_later=st.integers(0, 72),
    event_pick=PICK,
    by_a_permitted_role=st.integers(0, 9).map(lambda n: n not in {4, 5}),
    by_pick=PICK,
    raw=RAW_VALUES,
    reason=REASON,
    when=WHEN,
)


def machine_for(runtime: Runtime, run: Run) -> type[RuleBasedStateMachine]:
    workflow, engine, key = runtime.workflow, runtime.engine, runtime.key

    def keep_first_failure(error: BaseException) -> None:
        if run.first_failure is None:
            error.add_note("steps of the failing example:\n  " + "\n  ".join(run.steps))
            run.first_failure = error

    def recorded(step: Callable[..., None]) -> Callable[..., None]:
        """A rule whose call is logged, and whose failure is kept with the steps before it."""

        @functools.wraps(step)
        def logged_step(self: RuleBasedStateMachine, **arguments: Any) -> None:
            run.steps.append(step.__name__)
            try:
                step(self, **arguments)
            except BaseException as error:
                keep_first_failure(error)
                raise

        return logged_step

    def checked(check: Callable[[Any], None]) -> Callable[[Any], None]:
        """An invariant whose failure is kept with the steps before it."""

        @functools.wraps(check)
        def kept_check(self: RuleBasedStateMachine) -> None:
            try:
                check(self)
            except BaseException as error:
                keep_first_failure(error)
                raise

        return kept_check

    class ReferralLifecycle(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            run.steps = []
            clock.set_now(run.now)

        def snapshot(self) -> Snapshot:
            return referral_rows(engine), audit_rows(engine)

        def assert_refusal_changed_nothing(self, before: Snapshot) -> None:
            assert self.snapshot() == before

        # Time ---------------------------------------------------------------------------

        def pass_time(self, hours: int) -> None:
            run.now += timedelta(hours=hours)
            clock.set_now(run.now)
            run.steps.append(f"  now {run.now.isoformat()}")

        @rule(days=st.integers(1, 200))
        @recorded
        def let_months_pass(self, days: int) -> None:
            """Long enough, now and then, for post-exit reviews to fall due."""
            self.pass_time(24 * days)

        # Opening referrals --------------------------------------------------------------

        @rule(
            by=st.one_of(
                st.sampled_from([USER_OF_ROLE[Role.COORDINATOR], USER_OF_ROLE[Role.POLICE]]),
                st.sampled_from([*EVERYONE, NOBODY]),
            ),
            received_days_ago=st.integers(-2, 60),
            age_days=st.one_of(
                st.integers(10 * 365, 70 * 365), st.integers(18 * 365 - 10, 18 * 365 + 10)
            ),
            sector=st.sampled_from([*categories.values("sector"), "space"]),
            concern=st.sampled_from(categories.values("concern")),
        )
        @recorded
        def open_referral(
            self, by: str, received_days_ago: int, age_days: int, sector: str, concern: str
        ) -> None:
            received = run.today() - timedelta(days=received_days_ago)
            details = NewReferral(
                received_on=received,
                sector=sector,
                concern=concern,
                subject_name="Zebedee Quillfeather",
                date_of_birth=received - timedelta(days=age_days),
                referrer_org="Demo College",
            )
            before = self.snapshot()
            try:
                reference = workflow.open_referral(details, by=by)
            except ChannelflowError as error:
                run.steps.append(f"  open by {by!r} -> {type(error).__name__}")
                self.assert_refusal_changed_nothing(before)
                return
            run.steps.append(f"  open by {by!r} -> {reference}")
            rows, events = self.snapshot()
            assert rows == {**before[0], reference: (REFERRAL_LIFECYCLE.initial, 1)}
            assert events == before[1] + 1

        # Firing events ------------------------------------------------------------------

        def fire_and_check(
            self,
            reference: str,
            event: str,
            by: str,
            values: dict[str, str],
            reason: str | None,
            at: datetime | None,
        ) -> None:
            before = self.snapshot()
            call = f"fire({reference}, {event}, by={by!r}, {values}, reason={reason!r}, at={at})"
            try:
                result = workflow.fire(reference, event, by=by, values=values, reason=reason, at=at)
            except ChannelflowError as error:
                run.steps.append(f"  {call} -> {type(error).__name__}")
                self.assert_refusal_changed_nothing(before)
                return
            run.steps.append(f"  {call} -> {result.to_state} v{result.version}")
            spec = REFERRAL_LIFECYCLE.event(event)
            assert spec is not None
            state, version = before[0][reference]
            assert state in spec.sources
            rows, events = self.snapshot()
            expected = {**before[0], reference: (spec.dest, version + 1)}
            if result.opened is not None:
                assert event == lc.RECORD_POST_EXIT_REVIEW
                expected[result.opened] = (REFERRAL_LIFECYCLE.initial, 1)
            assert rows == expected
            assert events == before[1] + (2 if result.opened else 1)
            assert (result.from_state, result.to_state, result.version) == (
                state,
                spec.dest,
                version + 1,
            )

        @rule(reference_pick=PICK, attempts=st.lists(ATTEMPT, min_size=1, max_size=4))
        @recorded
        def work_on_a_case(self, reference_pick: int, attempts: list[Attempt]) -> None:
            """Events the referral's state allows, mostly by a role that may fire them."""
            rows = referral_rows(engine)
            if not rows:
                return
            # Mostly a case still in progress (one adopted or at panel, to get deep) or with a
            # post-exit review due; now and then any case at all.
            in_progress = sorted(ref for ref, (state, _) in rows.items() if state != lc.CLOSED)
            at_panel_or_later = [ref for ref in in_progress if rows[ref][0] in LATE_STATES]
            due = due_post_exit(engine, run.today())
            pool = [sorted(rows), due, in_progress, at_panel_or_later][reference_pick % 4]
            pool = pool or in_progress or sorted(rows)
            reference = pool[reference_pick // 4 % len(pool)]
            for attempt in attempts:
                self.pass_time(attempt.hours_later)
                state = referral_rows(engine)[reference][0]
                # Half the time the event that moves the case on; otherwise one its state
                # allows, or (one time in four) any event at all.
                possible = [spec for spec in REFERRAL_LIFECYCLE.events if state in spec.sources]
                if attempt.event_pick % 4 == 2:
                    possible = list(REFERRAL_LIFECYCLE.events)
                spec = possible[attempt.event_pick // 4 % len(possible)]
                if attempt.event_pick % 2:
                    spec = FORWARD[state]
                users = EVERYONE
                if attempt.by_a_permitted_role:
                    users = [USER_OF_ROLE[role] for role in sorted(spec.roles)]
                self.fire_and_check(
                    reference,
                    spec.name,
                    users[attempt.by_pick % len(users)],
                    attempt.raw.for_event(spec, run.today()),
                    attempt.reason,
                    attempt.when.at(run.now),
                )

        @rule(
            reference_pick=PICK,
            unknown_reference=st.integers(0, 9).map(lambda n: n == 5),
            event=st.sampled_from([*EVENT_NAMES, lc.OPEN, "reopen"]),
            by=st.sampled_from([*EVERYONE, NOBODY, ""]),
            values_of=st.sampled_from(EVENT_NAMES),
            raw=RAW_VALUES,
            reason=REASON,
            when=WHEN,
        )
        @recorded
        def fire_anything(
            self,
            reference_pick: int,
            unknown_reference: bool,
            event: str,
            by: str,
            values_of: str,
            raw: RawValues,
            reason: str | None,
            when: When,
        ) -> None:
            """Any event name, by anyone, with values shaped for some event, on any reference."""
            rows = referral_rows(engine)
            if not rows:
                return
            reference = sorted(rows)[reference_pick % len(rows)]
            if unknown_reference:
                reference = "CF-2026-9999"
            spec = REFERRAL_LIFECYCLE.event(event) or REFERRAL_LIFECYCLE.event(values_of)
            assert spec is not None
            values = raw.for_event(spec, run.today())
            if reference not in rows or REFERRAL_LIFECYCLE.event(event) is None:
                before = self.snapshot()
                with pytest.raises(ChannelflowError):
                    workflow.fire(reference, event, by=by, values=values, reason=reason)
                self.assert_refusal_changed_nothing(before)
                return
            self.fire_and_check(reference, event, by, values, reason, when.at(run.now))

        # Reading ------------------------------------------------------------------------

        @rule(reference_pick=PICK, by=st.sampled_from(EVERYONE))
        @recorded
        def read_a_case(self, reference_pick: int, by: str) -> None:
            before = self.snapshot()
            if not before[0]:
                return
            reference = sorted(before[0])[reference_pick % len(before[0])]
            try:
                view: dict[str, Any] = views.show_case(workflow, reference, by=by)
            except ChannelflowError:
                pass
            else:
                assert (view["state"], view["version"]) == before[0][reference]
                assert view["version"] == len(view["history"])
            assert self.snapshot() == before

        # Invariants ---------------------------------------------------------------------

        @invariant()
        @checked
        def audit_chain_verifies(self) -> None:
            verification = verify_chain(engine, key)
            assert verification.count == audit_rows(engine)

        @invariant()
        @checked
        def every_referral_is_the_replay_of_its_audit_trail(self) -> None:
            trails = referral_trails(engine)
            rows = referral_rows(engine)
            assert set(trails) == set(rows)
            for reference, (state, version) in rows.items():
                trail = trails[reference]
                assert replay(trail) == state, reference
                assert version == len(trail), reference

    return ReferralLifecycle


@pytest.mark.slow
def test_random_event_sequences_keep_referrals_equal_to_the_replay_of_their_audit_trail(
    runtime: Runtime,
) -> None:
    runtime.workflow.add_user(SECOND_LEAD, Role.LEAD, email=None, by=USER_OF_ROLE[Role.ADMIN])
    run = Run()
    try:
        run_state_machine_as_test(
            machine_for(runtime, run),
            settings=settings(
                max_examples=15,
                stateful_step_count=40,
                deadline=None,
                database=None,
                # Shrinking replays steps on a database that has moved on, so it cannot help.
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
            ),
        )
    except BaseException:
        if run.first_failure is not None:
            raise run.first_failure from None
        raise
