"""Changing the toolkit: each change checked, audited and made in one transaction."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from channelflow import clock
from channelflow.audit import chain
from channelflow.audit.chain import EventDraft
from channelflow.exceptions import InvalidInput, NotFound, Refused
from channelflow.store.db import read_session, write_session
from channelflow.store.models import ToolkitAction, ToolkitBenchmark, User
from channelflow.toolkit.datafile import MAX_ACTION, ToolkitFile, read_toolkit
from channelflow.toolkit.queries import action_view, benchmark_rows, known_users
from channelflow.toolkit.scale import DEFAULT_SCALE, rating_on, scale_row, stored_scale
from channelflow.workflow import policy
from channelflow.workflow.dates import add_months, date_not_in_future
from channelflow.workflow.engine import Workflow
from channelflow.workflow.text import clean_text

TOOLKIT_ENTITY = "toolkit"
# The audit entity of the toolkit as a whole (its scale); benchmark keys may not take it.
WHOLE_TOOLKIT = "toolkit"
REVIEW_MONTHS = 6


@dataclass(frozen=True)
class Loaded:
    benchmarks: int
    actions: int
    # Actions given to the default owner because the file named nobody who is a user.
    defaulted: int


@dataclass(frozen=True)
class Rated:
    key: str
    rating: str
    previous: str | None


def action_entity(action_id: int | None) -> str:
    return f"action-{action_id}"


def next_review(due: date | None, done_on: date) -> date:
    """When the process review after one done on ``done_on`` falls.

    Six months after the review that was due, so the cadence the board set (October, April,
    October) holds even when a review is done a little early or late; six months after it was
    done if none was due, or if it was so late that the next date has already passed.
    """
    if due is not None:
        following = add_months(due, REVIEW_MONTHS)
        if following > done_on:
            return following
    return add_months(done_on, REVIEW_MONTHS)


class Toolkit:
    """The Prevent duty toolkit self-assessment: benchmarks, their ratings and actions.

    Anyone may read it (it holds no case or personal data); only a coordinator or a chair
    may change it.
    """

    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow

    def list(self) -> list[dict[str, Any]]:
        with read_session(self.workflow.engine) as session:
            return benchmark_rows(session.connection())

    def load(self, path: Path | str, *, default_owner: str | None, by: str | None) -> Loaded:
        """Store the toolkit FILE declares, into a database that has none yet."""
        toolkit = read_toolkit(Path(path))
        with self._changing(by, "toolkit.load") as (session, actor):
            if session.execute(select(col(ToolkitBenchmark.id)).limit(1)).first():
                raise Refused(
                    "the toolkit is already loaded; change it with `channelflow toolkit rate` "
                    "and `channelflow toolkit action`"
                )
            owners, defaulted = _owners(session, toolkit, default_owner)
            session.add(scale_row(toolkit.scale))
            drafts = [
                self._draft(
                    WHOLE_TOOLKIT,
                    "load_toolkit",
                    actor,
                    scale=list(toolkit.scale),
                    source=toolkit.path.name,
                    benchmarks=len(toolkit.benchmarks),
                )
            ]
            drafts += self._insert(session, toolkit, iter(owners), actor)
            self._append(session, drafts)
        return Loaded(len(toolkit.benchmarks), len(owners), defaulted)

    def _insert(
        self, session: Session, toolkit: ToolkitFile, owners: Iterator[str], actor: User
    ) -> Sequence[EventDraft]:
        # (Annotated Sequence because `list` names the method in this class.)
        now = clock.now()
        drafts: list[EventDraft] = []
        for position, spec in enumerate(toolkit.benchmarks, start=1):
            benchmark = ToolkitBenchmark(
                key=spec.key,
                name=spec.name,
                position=position,
                rating=spec.rating,
                comment=spec.comment,
                updated_at=now,
            )
            session.add(benchmark)
            session.flush()
            assert benchmark.id is not None
            drafts.append(
                self._draft(
                    spec.key,
                    "add_benchmark",
                    actor,
                    name=spec.name,
                    position=position,
                    rating=spec.rating,
                    comment=spec.comment,
                )
            )
            for item in spec.actions:
                action = ToolkitAction(
                    benchmark_id=benchmark.id,
                    text=item.text,
                    owner=next(owners),
                    review_on=item.review_on,
                    completed_on=item.completed_on,
                    created_at=now,
                    updated_at=now,
                )
                session.add(action)
                session.flush()
                drafts.append(self._action_draft(action, spec.key, "add_action", actor))
        return drafts

    def rate(self, benchmark: str, rating: str, *, by: str | None, reason: str | None) -> Rated:
        if reason is None or not reason.strip():
            raise InvalidInput("say why the rating changes with --reason TEXT")
        reason = clean_text(reason, what="the reason")
        with self._changing(by, "toolkit.rate") as (session, actor):
            row = _benchmark(session, benchmark)
            scale = stored_scale(session.connection()) or DEFAULT_SCALE
            new = rating_on(scale, rating, where=f"benchmark {row.key!r}")
            previous = row.rating
            if new == previous:
                raise InvalidInput(f"benchmark {row.key!r} is already rated {new}")
            row.rating = new
            row.updated_at = clock.now()
            session.add(row)
            draft = self._draft(
                row.key, "rate", actor, reason=reason, previous=previous, rating=new
            )
            self._append(session, [draft])
            return Rated(row.key, new, previous)

    def add_action(
        self,
        benchmark: str,
        text: str,
        *,
        owner: str | None = None,
        review_on: date | None = None,
        by: str | None,
    ) -> dict[str, Any]:
        """A new action, owned by ``owner`` (default: whoever adds it)."""
        text = clean_text(text, what="the action text", max_length=MAX_ACTION)
        if review_on is not None and review_on < clock.today():
            raise InvalidInput("the review date is in the past")
        with self._changing(by, "toolkit.action.add") as (session, actor):
            row = _benchmark(session, benchmark)
            assert row.id is not None
            owner = owner.strip() if owner and owner.strip() else actor.name
            if owner not in known_users(session.connection(), [owner]):
                raise InvalidInput(f"the owner {owner!r} is not a user")
            now = clock.now()
            action = ToolkitAction(
                benchmark_id=row.id,
                text=text,
                owner=owner,
                review_on=review_on,
                completed_on=None,
                created_at=now,
                updated_at=now,
            )
            session.add(action)
            session.flush()
            self._append(session, [self._action_draft(action, row.key, "add_action", actor)])
            return {"benchmark": row.key, **action_view(action)}

    def action_done(
        self, action_id: int, *, by: str | None, on: date | None = None, complete: bool = False
    ) -> dict[str, Any]:
        """Record the action's process review as done on ``on`` (default today).

        The next review falls as `next_review` says; with ``complete`` the action is finished
        instead, and no review falls again.
        """
        done_on = date_not_in_future(on, what="the review date") if on else clock.today()
        with self._changing(by, "toolkit.action.done") as (session, actor):
            action = session.get(ToolkitAction, action_id)
            if action is None:
                raise NotFound(f"no toolkit action has the id {action_id}")
            if action.completed_on is not None:
                raise InvalidInput(
                    f"action {action_id} was completed on {action.completed_on.isoformat()}"
                )
            benchmark = session.get(ToolkitBenchmark, action.benchmark_id)
            assert benchmark is not None
            due = action.review_on
            if not complete and due is not None and done_on <= add_months(due, -REVIEW_MONTHS):
                # That day belongs to an earlier cycle, whose review is already behind us.
                raise InvalidInput(
                    f"action {action_id}'s review is due on {due.isoformat()}; a review done "
                    f"on {done_on.isoformat()} belongs to an earlier cycle"
                )
            if complete:
                action.completed_on, action.review_on = done_on, None
                event = "complete_action"
            else:
                action.review_on = next_review(due, done_on)
                event = "review_action"
            action.updated_at = clock.now()
            session.add(action)
            draft = self._action_draft(
                action,
                benchmark.key,
                event,
                actor,
                done_on=done_on.isoformat(),
                review_was_due=due.isoformat() if due else None,
            )
            self._append(session, [draft])
            return {"benchmark": benchmark.key, **action_view(action)}

    # Helpers --------------------------------------------------------------------------

    @contextmanager
    def _changing(self, by: str | None, action: str) -> Iterator[tuple[Session, User]]:
        """A toolkit manager's write transaction: refusals logged, nothing kept on error."""
        workflow = self.workflow
        with workflow.denials_logged(by, action), write_session(workflow.engine) as session:
            actor = workflow.actor(session, by, action=action, allowed=policy.TOOLKIT_MANAGERS)
            yield session, actor

    def _draft(
        self, entity: str, event: str, actor: User, *, reason: str | None = None, **data: Any
    ) -> EventDraft:
        return EventDraft(
            TOOLKIT_ENTITY,
            entity,
            event,
            None,
            None,
            actor.name,
            actor.role,
            clock.now(),
            reason=reason,
            data=data,
        )

    def _action_draft(
        self, action: ToolkitAction, benchmark: str, event: str, actor: User, **extra: Any
    ) -> EventDraft:
        return self._draft(
            action_entity(action.id),
            event,
            actor,
            benchmark=benchmark,
            text=action.text,
            owner=action.owner,
            review_on=action.review_on.isoformat() if action.review_on else None,
            completed_on=action.completed_on.isoformat() if action.completed_on else None,
            **extra,
        )

    def _append(self, session: Session, drafts: Sequence[EventDraft]) -> None:
        session.flush()
        chain.append(session.connection(), list(drafts), key=self.workflow.key)


def _benchmark(session: Session, key: str) -> ToolkitBenchmark:
    row: ToolkitBenchmark | None = session.execute(
        select(ToolkitBenchmark).where(col(ToolkitBenchmark.key) == key.strip().lower())
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(
            f"no toolkit benchmark has the key {key!r}; `channelflow toolkit list` shows them"
        )
    return row


def _owners(
    session: Session, toolkit: ToolkitFile, default_owner: str | None
) -> tuple[list[str], int]:
    """The owner of each action in file order, and how many went to ``default_owner``.

    A file often names owners by post ("prevent-lead") rather than by user, so any owner who
    is not a user is replaced by the default owner, which must be a user.
    """
    named = [item.owner for spec in toolkit.benchmarks for item in spec.actions if item.owner]
    candidates = [*named, *([default_owner] if default_owner else [])]
    known = known_users(session.connection(), candidates)
    if default_owner is not None and default_owner not in known:
        raise InvalidInput(
            f"cannot load {toolkit.path}: the default owner {default_owner!r} is not a user"
        )
    owners: list[str] = []
    defaulted = 0
    for spec in toolkit.benchmarks:
        for number, item in enumerate(spec.actions, start=1):
            if item.owner is not None and item.owner in known:
                owners.append(item.owner)
            elif default_owner is not None:
                owners.append(default_owner)
                defaulted += 1
            else:
                who = (
                    f"names owner {item.owner!r}, who is not a user"
                    if item.owner
                    else "has no owner"
                )
                raise InvalidInput(
                    f"{toolkit.path}: benchmark {spec.key!r}: action {number} {who}; "
                    "give a default owner with --default-owner USER"
                )
    return owners, defaulted
