"""The referral engine: every change is one transaction holding the new state, the version
bump and the audit event, or nothing at all."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, Row, select, text
from sqlmodel import Session, col

from channelflow import categories, clock
from channelflow.audit import chain
from channelflow.audit.chain import EventDraft, head_of
from channelflow.audit.keys import AuditKey
from channelflow.exceptions import ConcurrentChange, GuardRefused, InvalidInput, PermissionDenied
from channelflow.notifications.notifier import Notifier
from channelflow.states import REFERRAL_LIFECYCLE, Role
from channelflow.states import referral as lc
from channelflow.store.db import (
    driver_transaction,
    read_session,
    write_connection,
    write_session,
)
from channelflow.store.models import AccessLog, Person, Referral, User
from channelflow.workflow import policy, users
from channelflow.workflow.case import FireRequest
from channelflow.workflow.dates import date_not_in_future, next_panel_after, not_in_future
from channelflow.workflow.notices import notices_for_change
from channelflow.workflow.store_mapping import (
    Writer,
    case_of,
    load_for_change,
    role_of,
    save_case,
)
from channelflow.workflow.text import MAX_TEXT, clean_text

DEFAULT_PREFIX = "CF"
_RESERVE_REFERENCES = text(
    "INSERT INTO reference_counter (prefix, year, last) VALUES (:prefix, :year, :count) "
    "ON CONFLICT (prefix, year) DO UPDATE SET last = reference_counter.last + :count "
    "RETURNING last"
)
MAX_NAME = 200


@dataclass(frozen=True)
class NewReferral:
    received_on: date
    sector: str
    concern: str
    subject_name: str
    date_of_birth: date
    referrer_org: str | None = None
    address: str | None = None
    school: str | None = None


@dataclass(frozen=True)
class FireResult:
    reference: str
    event: str
    from_state: str
    to_state: str
    version: int
    seq: int
    data: dict[str, Any]
    opened: str | None = None
    emails_queued: int = 0
    # Users the change should have emailed who have no email address.
    no_email: tuple[str, ...] = ()


def _roles_of(connection: Writer, name: str | None) -> dict[str, Role]:
    """The role of the user a value names (the case lead), for the guard to check."""
    if name is None or not name.strip():
        return {}
    role = role_of(connection, name.strip())
    return {name.strip(): role} if role is not None else {}


def _start_of(day: date) -> datetime:
    """When a referral received on ``day`` is taken to have arrived: that day's first moment."""
    return datetime.combine(day, datetime.min.time(), clock.LOCAL_ZONE)


def _optional_text(value: str | None, what: str, max_length: int = MAX_NAME) -> str | None:
    if value is None or not value.strip():
        return None
    return clean_text(value, what=what, max_length=max_length)


class Workflow:
    """The operations on referrals and users, each checked against the actor's role."""

    def __init__(
        self,
        *,
        engine: Engine,
        key: AuditKey,
        reference_prefix: str = DEFAULT_PREFIX,
        notifier: Notifier | None = None,
        next_panel: Callable[[Writer, date], date] | None = None,
    ) -> None:
        if not reference_prefix.isalnum() or not reference_prefix.isascii():
            raise InvalidInput("the reference prefix must be letters and digits only")
        self.engine = engine
        self.key = key
        self.notifier = notifier or Notifier()
        # The first panel meeting after a day, read in the change's own transaction.
        self.next_panel = next_panel or (lambda _connection, day: next_panel_after(day))
        self.reference_prefix = reference_prefix.upper()

    # Users ---------------------------------------------------------------------------

    def add_user(self, name: str, role: Role, *, email: str | None, by: str | None) -> User:
        with self.denials_logged(by, "user.add"), write_session(self.engine) as session:
            actor = self.actor(session, by, action="user.add", allowed=policy.USER_MANAGERS)
            user = users.insert_user(session, name=name, role=role, email=email)
            self.record_user_added(session, user, actor)
            return user

    def add_first_admin(self, name: str) -> User | None:
        """Create the first admin of a new database; a database with users is left alone."""
        with write_session(self.engine) as session:
            if session.execute(select(col(User.id)).limit(1)).first():
                return None
            user = users.insert_user(session, name=name, role=Role.ADMIN, email=None)
            self.record_user_added(session, user, user)
            return user

    def list_users(self) -> list[User]:
        with read_session(self.engine) as session:
            return list(session.execute(select(User).order_by(col(User.name))).scalars())

    def record_user_added(self, session: Session, user: User, actor: User) -> None:
        data: dict[str, Any] = {"role": user.role}
        if user.email:
            data["email"] = self.key.personal_hash("email", user.email)
        draft = EventDraft(
            "user",
            user.name,
            "add_user",
            None,
            None,
            actor.name,
            actor.role,
            clock.now(),
            data=data,
        )
        chain.append(session.connection(), [draft], key=self.key)

    # Referrals -----------------------------------------------------------------------

    def open_referral(self, details: NewReferral, *, by: str | None) -> str:
        received = date_not_in_future(details.received_on, what="the received date")
        date_not_in_future(details.date_of_birth, what="the date of birth")
        if details.date_of_birth > received:
            raise InvalidInput("the date of birth is after the received date")
        details = replace(
            details,
            sector=categories.validate("sector", details.sector),
            concern=categories.validate("concern", details.concern),
            subject_name=clean_text(
                details.subject_name, what="the subject name", max_length=MAX_NAME
            ),
            referrer_org=_optional_text(details.referrer_org, "the referrer organisation"),
            address=_optional_text(details.address, "the address", MAX_TEXT),
            school=_optional_text(details.school, "the school"),
        )
        with self.denials_logged(by, "referral.add"), write_session(self.engine) as session:
            actor = self.actor(session, by, action="referral.add", allowed=policy.REFERRAL_CREATORS)
            now = clock.now()
            reference, draft = self._insert_referral(session, details, actor=actor, now=now)
            chain.append(session.connection(), [draft], key=self.key)
            return reference

    def _insert_referral(
        self,
        session: Session,
        details: NewReferral,
        *,
        actor: User,
        now: datetime,
        linked_from: Row[Any] | None = None,
    ) -> tuple[str, EventDraft]:
        person = Person(
            full_name=details.subject_name.strip(),
            date_of_birth=details.date_of_birth,
            address=details.address,
            school=details.school,
        )
        session.add(person)
        session.flush()
        reference = self.next_reference(session, details.received_on.year)
        session.add(
            Referral(
                reference=reference,
                state=REFERRAL_LIFECYCLE.initial,
                version=1,
                received_on=details.received_on,
                sector=details.sector,
                concern=details.concern,
                referrer_org=details.referrer_org,
                person_id=person.id,
                linked_from_id=linked_from.id if linked_from else None,
                last_event_at=_start_of(details.received_on),
                created_at=now,
                updated_at=now,
            )
        )
        linked = linked_from.reference if linked_from else None
        draft = self.open_event(
            reference, details, actor=actor.name, role=Role(actor.role), linked_from=linked
        )
        return reference, draft

    def open_event(
        self,
        reference: str,
        details: NewReferral,
        *,
        actor: str,
        role: Role,
        linked_from: str | None = None,
    ) -> EventDraft:
        """The audit event recording a new referral; personal details only as keyed hashes."""
        data: dict[str, Any] = {
            "received_on": details.received_on.isoformat(),
            "sector": details.sector,
            "concern": details.concern,
            "personal": {
                name: self.key.personal_hash(name, value)
                for name, value in (
                    ("full_name", details.subject_name.strip()),
                    ("date_of_birth", details.date_of_birth.isoformat()),
                    ("address", details.address),
                    ("school", details.school),
                )
                if value
            },
        }
        if details.referrer_org:
            data["referrer_org"] = details.referrer_org
        if linked_from is not None:
            data["linked_from"] = linked_from
        return EventDraft(
            chain.REFERRAL_ENTITY,
            reference,
            lc.OPEN,
            None,
            REFERRAL_LIFECYCLE.initial,
            actor,
            role.value,
            _start_of(details.received_on),
            data=data,
        )

    def next_reference(self, session: Session, year: int) -> str:
        return self.reserve_references(session.connection(), year, 1)[0]

    def reserve_references(self, connection: Connection, year: int, count: int) -> list[str]:
        """``count`` consecutive new references for ``year``.

        One atomic statement, so concurrent writers on either backend never share a number.
        """
        last = connection.execute(
            _RESERVE_REFERENCES, {"prefix": self.reference_prefix, "year": year, "count": count}
        ).scalar_one()
        return [
            f"{self.reference_prefix}-{year}-{number:04d}"
            for number in range(last - count + 1, last + 1)
        ]

    def fire(
        self,
        reference: str,
        event: str,
        *,
        by: str | None,
        reason: str | None = None,
        at: datetime | None = None,
        values: Mapping[str, str] | None = None,
        expected_version: int | None = None,
    ) -> FireResult:
        spec = REFERRAL_LIFECYCLE.event(event)
        if spec is None:
            raise InvalidInput(f"unknown event {event!r}; see `channelflow lifecycle`")
        now = clock.now()
        if at is not None and at.tzinfo is None:
            raise InvalidInput("the event time (--at) must carry a timezone")
        occurred_at = not_in_future(at, what="the event time (--at)") if at else now
        reason = clean_text(reason, what="the reason") if reason and reason.strip() else None
        if not by:
            raise InvalidInput("say who you are with --by USER (or set CHANNELFLOW_USER)")
        action = f"referral.fire:{event}"
        # Only a re-referral needs the ORM (it opens a new referral); every other change runs
        # on the driver's connection, which is most of what makes a change fast.
        transaction = (
            write_connection if event == lc.RECORD_POST_EXIT_REVIEW else driver_transaction
        )
        with self.denials_logged(by, action, reference), transaction(self.engine) as connection:
            referral, role = load_for_change(connection, reference, by, allowed=spec.roles)
            if role not in spec.roles:
                raise PermissionDenied(
                    f"{by} ({role}) may not {event}; only {' or '.join(sorted(spec.roles))} may"
                )
            if expected_version is not None and expected_version != referral.version:
                raise ConcurrentChange(
                    f"{reference} is at version {referral.version}, not {expected_version}: it "
                    "was changed by someone else; reload it and try again"
                )
            if clock.local_date(occurred_at) < clock.local_date(referral.last_event_at):
                raise InvalidInput(f"the event time is before {reference}'s previous event")
            case = case_of(connection, referral, date_of_birth=referral.date_of_birth)
            values = dict(values or {})
            request = FireRequest(
                event=event,
                actor=by,
                role=role,
                occurred_at=occurred_at,
                reason=reason,
                values=values,
                user_roles=_roles_of(connection, values.get("lead")),
                next_panel=partial(self.next_panel, connection),
            )
            from_state = case.state
            case.fire(request)
            new_version = save_case(
                connection, referral, case, occurred_at=occurred_at, recorded_at=now
            )
            drafts = [
                EventDraft(
                    chain.REFERRAL_ENTITY,
                    reference,
                    event,
                    from_state,
                    case.state,
                    by,
                    role.value,
                    occurred_at,
                    reason=reason,
                    data=request.data,
                )
            ]
            opened = None
            if event == lc.RECORD_POST_EXIT_REVIEW and request.data["outcome"] == "re_refer":
                assert isinstance(connection, Connection)
                with Session(bind=connection, expire_on_commit=False) as session:
                    opened, draft = self._re_refer(
                        session, referral, users.get_user(session, by), occurred_at, now
                    )
                    session.flush()
                request.data["new_referral"] = opened
                drafts.append(draft)
            notices = notices_for_change(
                connection, reference=reference, event=event, version=new_version, data=request.data
            )
            queued = self.notifier.queue(connection, notices.to_queue, now=now)
            rows = chain.append(connection, drafts, key=self.key, head=head_of(referral))
        return FireResult(
            reference,
            event,
            from_state,
            case.state,
            new_version,
            rows[0]["seq"],
            request.data,
            opened,
            emails_queued=queued,
            no_email=tuple(notices.no_email),
        )

    def _re_refer(
        self, session: Session, referral: Row[Any], actor: User, at: datetime, now: datetime
    ) -> tuple[str, EventDraft]:
        if referral.person_id is None:
            raise GuardRefused(
                f"{referral.reference}'s personal details were removed; open a new referral"
            )
        person = session.get(Person, referral.person_id)
        assert person is not None
        details = NewReferral(
            received_on=clock.local_date(at),
            sector=referral.sector,
            concern=referral.concern,
            subject_name=person.full_name,
            date_of_birth=person.date_of_birth,
            referrer_org=referral.referrer_org,
            address=person.address,
            school=person.school,
        )
        return self._insert_referral(
            session,
            details,
            actor=actor,
            now=now,
            linked_from=referral,
        )

    def actor(
        self, session: Session, by: str | None, *, action: str, allowed: frozenset[Role]
    ) -> User:
        """The user named ``by``, if their role is one of ``allowed``."""
        actor = users.get_user(session, by)
        if Role(actor.role) not in allowed:
            raise PermissionDenied(
                f"{actor.name} ({actor.role}) may not do {action}; "
                f"only {' or '.join(sorted(allowed))} may"
            )
        return actor

    @contextmanager
    def denials_logged(
        self, by: str | None, action: str, entity: str | None = None
    ) -> Iterator[None]:
        """Record a permission refusal in the security log once the refused work is undone.

        Wrap it around the write transaction, so that transaction has rolled back (and on
        SQLite released its lock) before the log entry is written in a transaction of its own.
        """
        try:
            yield
        except PermissionDenied:
            with write_session(self.engine) as session:
                log_access(session, by, action, entity, allowed=False)
            raise


def log_access(
    session: Session,
    by: str | None,
    action: str,
    entity: str | None,
    *,
    allowed: bool,
    role: str | None = None,
) -> None:
    """One access-log entry; ``role`` is looked up unless the caller already knows it."""
    if role is None:
        role = session.execute(
            select(col(User.role)).where(col(User.name) == by)
        ).scalar_one_or_none()
    session.add(
        AccessLog(
            at=clock.now(),
            actor=by or "",
            role=role,
            action=action,
            entity_type="referral" if entity else None,
            entity_id=entity,
            allowed=allowed,
        )
    )
