"""A deterministic synthetic case register for trying channelflow out and for scale work.

No real people: every subject is "Demo Subject NNNNNN". Referrals are driven through the real
lifecycle machine (guards included) in memory, then written in batches, each batch one
transaction that also appends its events to the audit chain.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select
from sqlmodel import col

from channelflow import clock
from channelflow.audit import chain
from channelflow.audit.chain import EventDraft
from channelflow.exceptions import InvalidInput
from channelflow.meetings.rules import PANEL_RULE
from channelflow.notifications import Notice
from channelflow.states import REFERRAL_LIFECYCLE, Role
from channelflow.states import referral as lc
from channelflow.store.db import reserve_ids, write_connection, write_session
from channelflow.store.models import Person, PostExitReview, Referral, User
from channelflow.workflow.case import Case, FireRequest
from channelflow.workflow.dates import add_months, age_on, next_panel_after
from channelflow.workflow.engine import NewReferral, Workflow
from channelflow.workflow.notices import notices_for_change
from channelflow.workflow.store_mapping import CASE_FIELDS
from channelflow.workflow.users import insert_user

BATCH = 2000
DEMO_USERS = (
    ("pat.police", Role.POLICE),
    ("cora.coordinator", Role.COORDINATOR),
    ("chris.chair", Role.CHAIR),
    ("mel.member", Role.MEMBER),
    ("sam.member", Role.MEMBER),
    ("lee.lead", Role.LEAD),
    ("lou.lead", Role.LEAD),
    ("ada.auditor", Role.AUDITOR),
)
POLICE, COORDINATOR, CHAIR = "pat.police", "cora.coordinator", "chris.chair"
LEADS = ("lee.lead", "lou.lead")
SECTORS = (
    ("education", 38),
    ("police", 14),
    ("local_authority", 13),
    ("health", 10),
    ("community", 8),
    ("friends_family", 5),
    ("prison_probation", 4),
    ("other", 8),
)
CONCERNS = (
    ("extreme_right_wing", 22),
    ("islamist", 12),
    ("extreme_violence", 21),
    ("no_clear_ideology", 39),
    ("left_wing", 2),
    ("other", 4),
)
# Gateway outcomes weighted so ~13% reach a panel and ~7% are adopted (Home Office 2023/24).
GATEWAY = (("proceed", 14), ("no_further_action", 40), ("signpost", 34), ("police_led", 12))


@dataclass
class DemoSummary:
    referrals: int
    events: int
    by_state: dict[str, int]
    next_actions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "referrals": self.referrals,
            "events": self.events,
            "by_state": self.by_state,
            "next_actions": self.next_actions,
        }

    def render(self) -> str:
        lines = [
            f"demo loaded: {self.referrals} referrals, {self.events} audit events",
            "",
            "referrals by state:",
        ]
        lines += [f"  {state:<13} {count:>7}" for state, count in self.by_state.items()]
        lines += ["", "next actions:"] + [f"  - {action}" for action in self.next_actions]
        return "\n".join(lines)


@dataclass
class _Simulated:
    details: dict[str, Any]
    person: dict[str, Any]
    case: Case
    drafts: list[EventDraft]
    last_event_at: datetime


class _Simulator:
    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng, self.now = rng, now
        self.today = clock.local_date(now)
        self.roles = {name: role for name, role in DEMO_USERS}

    def _pick(self, weighted: tuple[tuple[str, int], ...]) -> str:
        names = [name for name, _ in weighted]
        weights = [weight for _, weight in weighted]
        return self.rng.choices(names, weights)[0]

    def _at(self, day: date, hour: int | None = None) -> datetime:
        hour = self.rng.randint(9, 16) if hour is None else hour
        minute = self.rng.randint(0, 59)
        return datetime.combine(day, time(hour, minute), clock.LOCAL_ZONE)

    def person(self, index: int, received: date) -> dict[str, Any]:
        age = self.rng.choices(range(10, 60), weights=[8] * 8 + [3] * 10 + [1] * 32)[0]
        dob = received - timedelta(days=age * 365 + self.rng.randint(10, 350))
        person = {
            "full_name": f"Demo Subject {index:06d}",
            "date_of_birth": dob,
            "address": f"{index % 200 + 1} Example Street, Demotown",
            "school": f"Demo Academy {index % 12 + 1}" if age < 18 else None,
        }
        return person

    def referral(self, index: int, received: date, plan: str | None = None) -> _Simulated:
        person = self.person(index, received)
        details = {
            "received_on": received,
            "sector": self._pick(SECTORS),
            "concern": self._pick(CONCERNS),
            "referrer_org": None,
        }
        case = Case(reference="", state=lc.RECEIVED, date_of_birth=person["date_of_birth"])
        sim = _Simulated(
            details, person, case, [], datetime.combine(received, time(), clock.LOCAL_ZONE)
        )
        steps = self._forced_plan(plan, received, person) if plan else self._plan(received, person)
        for step in steps:
            if not self._fire(sim, *step):
                break
        return sim

    def _fire(
        self,
        sim: _Simulated,
        event: str,
        actor: str,
        at: datetime,
        values: dict[str, str],
        reason: str | None = None,
    ) -> bool:
        if at > self.now:
            return False
        request = FireRequest(
            event=event,
            actor=actor,
            role=self.roles[actor],
            occurred_at=at,
            reason=reason,
            values=values,
            user_roles=self.roles,
        )
        from_state = sim.case.state
        sim.case.fire(request)
        sim.drafts.append(
            EventDraft(
                chain.REFERRAL_ENTITY,
                "",
                event,
                from_state,
                sim.case.state,
                actor,
                self.roles[actor],
                at,
                reason=reason,
                data=request.data,
            )
        )
        sim.last_event_at = max(sim.last_event_at, at)
        return True

    def _plan(self, received: date, person: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
        rng = self.rng
        if rng.random() < 0.03:
            yield (
                lc.CLOSE,
                COORDINATOR,
                self._at(received + timedelta(days=1)),
                {"code": "duplicate"},
            )
            return
        screened = received + timedelta(days=rng.randint(1, 5))
        outcome = self._pick(GATEWAY)
        yield lc.SCREEN, rng.choice((POLICE, COORDINATOR)), self._at(screened), {"outcome": outcome}
        if outcome != "proceed":
            code = lc.CLOSE_CODE_FOR_OUTCOME[outcome]
            yield (
                lc.CLOSE,
                COORDINATOR,
                self._at(screened + timedelta(days=rng.randint(1, 10))),
                {"code": code},
            )
            return
        referred = screened + timedelta(days=rng.randint(1, 7))
        yield lc.REFER_TO_PANEL, COORDINATOR, self._at(referred), {}
        panel = next_panel_after(referred)
        if rng.random() < 0.1:
            yield lc.ADJOURN, CHAIR, self._at(panel, 10), {}, "more information needed from school"
            panel = next_panel_after(panel)
        if rng.random() < 0.45:
            route = rng.choice(lc.ONWARD_ROUTES)
            yield (
                lc.DECLINE,
                CHAIR,
                self._at(panel, 11),
                {"route": route},
                "needs better met elsewhere",
            )
            yield (
                lc.CLOSE,
                COORDINATOR,
                self._at(panel + timedelta(days=rng.randint(1, 14))),
                {"code": route},
            )
            return
        child = age_on(person["date_of_birth"], panel) < 18
        consent = "parental" if child else "given"
        yield lc.ACCEPT, CHAIR, self._at(panel, 11), {"consent": consent, "lead": rng.choice(LEADS)}
        started = panel + timedelta(days=rng.randint(7, 21))
        if rng.random() < 0.05:
            yield (
                lc.WITHDRAW_CONSENT,
                COORDINATOR,
                self._at(started),
                {"route": "signposted"},
                "consent withdrawn",
            )
            return
        yield (
            lc.START_INTERVENTION,
            COORDINATOR,
            self._at(started),
            {"support_plan": "SP-standard", "provider": "Intervention Provider A"},
        )
        review = next_panel_after(started)
        for _ in range(rng.randint(3, 9)):
            if rng.random() < 0.03:
                yield (
                    lc.WITHDRAW_CONSENT,
                    COORDINATOR,
                    self._at(review),
                    {"route": "no_further_action"},
                    "consent withdrawn",
                )
                return
            yield lc.REVIEW, CHAIR, self._at(review, 10), {"outcome": "progressing"}
            review = next_panel_after(review)
        yield lc.EXIT, CHAIR, self._at(review, 10), {"summary": "support plan objectives met"}
        for months in lc.POST_EXIT_REVIEW_MONTHS:
            due = add_months(review, months)
            yield (
                lc.RECORD_POST_EXIT_REVIEW,
                COORDINATOR,
                self._at(due + timedelta(days=rng.randint(0, 10))),
                {"outcome": "no_concerns"},
            )

    def _forced_plan(
        self, state: str, received: date, person: dict[str, Any]
    ) -> Iterator[tuple[Any, ...]]:
        """Short recent histories that end in ``state``, so every state has a case."""
        last_panel = _previous_panel(self.today)
        yesterday = self.today - timedelta(days=1)
        if state == lc.SCREENED:
            yield lc.SCREEN, POLICE, self._at(yesterday, 9), {"outcome": "proceed"}
        elif state == lc.PANEL_REVIEW:
            yield lc.SCREEN, POLICE, self._at(received + timedelta(days=1)), {"outcome": "proceed"}
            yield lc.REFER_TO_PANEL, COORDINATOR, self._at(yesterday, 9), {}
        elif state == lc.CLOSED:
            yield lc.SCREEN, POLICE, self._at(received + timedelta(days=1)), {"outcome": "signpost"}
            yield lc.CLOSE, COORDINATOR, self._at(yesterday, 9), {"code": "signposted"}
        elif state in (lc.ACCEPTED, lc.DECLINED, lc.INTERVENTION):
            yield lc.SCREEN, POLICE, self._at(received + timedelta(days=1)), {"outcome": "proceed"}
            yield (
                lc.REFER_TO_PANEL,
                COORDINATOR,
                self._at(received + timedelta(days=3)),
                {"panel": last_panel.isoformat()},
            )
            if state == lc.DECLINED:
                yield (
                    lc.DECLINE,
                    CHAIR,
                    self._at(last_panel, 11),
                    {"route": "signposted"},
                    "early help is the right support",
                )
                return
            child = age_on(person["date_of_birth"], last_panel) < 18
            yield (
                lc.ACCEPT,
                CHAIR,
                self._at(last_panel, 11),
                {"consent": "parental" if child else "given", "lead": LEADS[0]},
            )
            if state == lc.INTERVENTION:
                yield (
                    lc.START_INTERVENTION,
                    COORDINATOR,
                    self._at(last_panel, 15),
                    {"support_plan": "SP-standard"},
                )


def _previous_panel(today: date) -> date:
    return PANEL_RULE.last_before(today)


def _ensure_users(workflow: Workflow) -> None:
    with write_session(workflow.engine) as session:
        existing = set(session.execute(select(col(User.name))).scalars())
        admin = (
            session.execute(select(User).where(col(User.role) == Role.ADMIN.value))
            .scalars()
            .first()
        )
        assert admin is not None
        for name, role in DEMO_USERS:
            if name not in existing:
                user = insert_user(session, name=name, role=role, email=f"{name}@example.org")
                workflow.record_user_added(session, user, admin)


def load(
    workflow: Workflow, *, referrals: int, seed: int, progress: Callable[[int], None] | None = None
) -> DemoSummary:
    if referrals < len(REFERRAL_LIFECYCLE.states):
        raise InvalidInput(f"the demo needs at least {len(REFERRAL_LIFECYCLE.states)} referrals")
    with write_session(workflow.engine) as session:
        if session.execute(select(func.count()).select_from(Referral)).scalar_one():
            raise InvalidInput(
                "the demo loads into an empty case register; this database already has "
                "referrals (use a new database file with --db)"
            )
    _ensure_users(workflow)
    now = clock.now()
    rng = random.Random(seed)
    simulator = _Simulator(rng, now)
    span_days = int(365 * min(10, max(1, referrals / 10_000)))
    start = simulator.today - timedelta(days=span_days)
    forced = _forced_cases(simulator)
    ordinary = referrals - len(forced)
    received_days = sorted(
        start + timedelta(days=rng.randint(0, span_days - 30)) for _ in range(ordinary)
    )
    total_events = 0
    plan: list[tuple[date, str | None]] = [(day, None) for day in received_days] + forced
    for offset in range(0, len(plan), BATCH):
        batch = plan[offset : offset + BATCH]
        simulated = []
        for index, (received, state) in enumerate(batch, start=offset + 1):
            simulated.append(simulator.referral(index, received, plan=state))
        total_events += _write_batch(workflow, simulated, now)
        if progress is not None:
            progress(min(offset + BATCH, len(plan)))
    return _summary(workflow, referrals, total_events)


def _forced_cases(simulator: _Simulator) -> list[tuple[date, str | None]]:
    today = simulator.today
    last_panel = _previous_panel(today)
    return [
        (today - timedelta(days=1), lc.RECEIVED),
        (today - timedelta(days=4), lc.SCREENED),
        (today - timedelta(days=10), lc.PANEL_REVIEW),
        (last_panel - timedelta(days=20), lc.ACCEPTED),
        (last_panel - timedelta(days=20), lc.DECLINED),
        (last_panel - timedelta(days=25), lc.INTERVENTION),
        (today - timedelta(days=12), lc.CLOSED),
    ]


# Core inserts: one executemany per table (ORM bulk inserts split on every pattern of nulls).
_PERSON_INSERT = insert(Person.__table__)  # type: ignore[attr-defined]
_REFERRAL_INSERT = insert(Referral.__table__)  # type: ignore[attr-defined]
_REVIEW_INSERT = insert(PostExitReview.__table__)  # type: ignore[attr-defined]


def _references(workflow: Workflow, connection: Connection, batch: list[_Simulated]) -> list[str]:
    """References in received order, reserved in one block per year."""
    years = [sim.details["received_on"].year for sim in batch]
    blocks = {
        year: iter(workflow.reserve_references(connection, year, years.count(year)))
        for year in sorted(set(years))
    }
    return [next(blocks[year]) for year in years]


def _write_batch(workflow: Workflow, simulated: list[_Simulated], now: datetime) -> int:
    with write_connection(workflow.engine) as connection:
        person_ids = reserve_ids(connection, "person", len(simulated))
        connection.execute(
            _PERSON_INSERT,
            [{"id": id_, **sim.person} for id_, sim in zip(person_ids, simulated, strict=True)],
        )
        references = _references(workflow, connection, simulated)
        referral_ids = reserve_ids(connection, "referral", len(simulated))
        referral_rows = []
        for sim, referral_id, person_id, reference in zip(
            simulated, referral_ids, person_ids, references, strict=True
        ):
            sim.case.reference = reference
            row = {name: getattr(sim.case, name) for name in CASE_FIELDS}
            row.update(
                sim.details,
                id=referral_id,
                reference=reference,
                person_id=person_id,
                version=len(sim.drafts) + 1,
                last_event_at=sim.last_event_at,
                created_at=now,
                updated_at=now,
            )
            referral_rows.append(row)
        connection.execute(_REFERRAL_INSERT, referral_rows)
        reviews = [
            {
                "referral_id": referral_id,
                "months": r.months,
                "due_on": r.due_on,
                "recorded_on": r.recorded_on,
                "outcome": r.outcome,
            }
            for sim, referral_id in zip(simulated, referral_ids, strict=True)
            for r in sim.case.post_exit_reviews
        ]
        if reviews:
            connection.execute(_REVIEW_INSERT, reviews)
        drafts: list[EventDraft] = []
        for sim, reference in zip(simulated, references, strict=True):
            details = NewReferral(
                subject_name=sim.person["full_name"],
                date_of_birth=sim.person["date_of_birth"],
                address=sim.person["address"],
                school=sim.person["school"],
                **sim.details,
            )
            drafts.append(
                workflow.open_event(reference, details, actor=COORDINATOR, role=Role.COORDINATOR)
            )
            drafts += [
                EventDraft(
                    d.entity_type,
                    reference,
                    d.event,
                    d.from_state,
                    d.to_state,
                    d.actor,
                    d.role,
                    d.occurred_at,
                    d.reason,
                    d.data,
                )
                for d in sim.drafts
            ]
        chain.append(connection, drafts, key=workflow.key)
        workflow.notifier.queue(connection, _pending_notices(connection, simulated, now), now=now)
        return len(drafts)


def _pending_notices(
    connection: Connection, simulated: list[_Simulated], now: datetime
) -> list[Notice]:
    """The emails this month's panel decisions sent, as if still waiting in the outbox.

    Older decisions are history: their emails went long ago and are not queued again.
    """
    since = _previous_panel(clock.local_date(now))
    notices: list[Notice] = []
    for sim in simulated:
        for position, draft in enumerate(sim.drafts):
            if draft.event == lc.ACCEPT and clock.local_date(draft.occurred_at) >= since:
                notices += notices_for_change(
                    connection,
                    reference=sim.case.reference,
                    event=draft.event,
                    # Version 1 is the referral's opening; each event adds one.
                    version=position + 2,
                    data=draft.data,
                ).to_queue
    return notices


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _summary(workflow: Workflow, referrals: int, events: int) -> DemoSummary:
    with write_session(workflow.engine) as session:
        counts: Counter[str] = Counter(
            dict(
                session.execute(
                    select(col(Referral.state), func.count()).group_by(col(Referral.state))
                ).all()
            )
        )
        today = clock.today()
        soon = today + timedelta(days=14)
        next_panel = session.execute(
            select(col(Referral.panel_on), func.count())
            .where(col(Referral.state) == lc.PANEL_REVIEW)
            .group_by(col(Referral.panel_on))
            .order_by(col(Referral.panel_on))
            .limit(1)
        ).first()
        reviews_due = session.execute(
            select(func.count())
            .select_from(Referral)
            .where(col(Referral.state) == lc.INTERVENTION, col(Referral.next_review_on) <= soon)
        ).scalar_one()
        post_exit_due = session.execute(
            select(func.count())
            .select_from(PostExitReview)
            .where(col(PostExitReview.recorded_on).is_(None), col(PostExitReview.due_on) <= soon)
        ).scalar_one()
    actions = [
        f"{_count(counts[lc.RECEIVED], 'referral')} awaiting the police gateway assessment "
        "(screen)",
        f"{_count(counts[lc.SCREENED], 'screened referral')} awaiting a decision "
        "(refer_to_panel or close)",
    ]
    if next_panel:
        actions.append(
            f"{_count(next_panel[1], 'case')} on the agenda of the panel on "
            f"{next_panel[0].isoformat()}"
        )
    actions += [
        f"{_count(counts[lc.ACCEPTED], 'adopted case')} awaiting the start of support "
        "(start_intervention)",
        f"{_count(counts[lc.DECLINED], 'declined referral')} awaiting closing with the onward "
        "route (close)",
        f"{_count(reviews_due, 'support-plan review')} and "
        f"{_count(post_exit_due, 'post-exit review')} due by {soon.isoformat()}",
        "try: channelflow referral list --by cora.coordinator",
        "see six weeks of agendas and reminders: channelflow run --once --now +6w",
    ]
    by_state = {state: counts.get(state, 0) for state in REFERRAL_LIFECYCLE.states}
    return DemoSummary(referrals, events, by_state, actions)
