"""The tables. Personal details live in `person` only, so they can be minimised or deleted
without touching a referral's history; the audit trail holds keyed hashes of them, never
the values."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlmodel import Field, SQLModel

from channelflow.store.types import UTCDateTime

# Audit times are fixed-width UTC text so the hashed form is identical on every backend.
AUDIT_TIME_WIDTH = 27


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    email: str | None = Field(default=None, sa_column=Column(String(254), nullable=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Person(SQLModel, table=True):
    """The subject of a referral: the only table holding personal details."""

    __tablename__ = "person"

    id: int | None = Field(default=None, primary_key=True)
    full_name: str = Field(sa_column=Column(String(200), nullable=False))
    date_of_birth: date
    address: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    school: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))


class Referral(SQLModel, table=True):
    __tablename__ = "referral"
    __table_args__ = (Index("ix_referral_state", "state"),)

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(sa_column=Column(String(32), nullable=False, unique=True))
    state: str = Field(sa_column=Column(String(32), nullable=False))
    version: int = Field(sa_column=Column(Integer, nullable=False))
    received_on: date
    sector: str = Field(sa_column=Column(String(64), nullable=False))
    concern: str = Field(sa_column=Column(String(64), nullable=False))
    referrer_org: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    person_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("person.id", ondelete="SET NULL"), nullable=True),
    )
    linked_from_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("referral.id"), nullable=True)
    )
    gateway_outcome: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    panel_on: date | None = None
    lead: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    consent: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    support_plan: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    provider: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    next_review_on: date | None = None
    onward_route: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    close_code: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    exited_on: date | None = None
    closed_on: date | None = None
    last_event_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class PostExitReview(SQLModel, table=True):
    __tablename__ = "post_exit_review"
    __table_args__ = (
        UniqueConstraint("referral_id", "months"),
        # The reviews still to be held, by date: what planning and agendas look for; the
        # recorded ones (nearly all of them, after a few years) stay out of the index.
        Index(
            "ix_post_exit_review_open_due",
            "due_on",
            sqlite_where=text("recorded_on IS NULL"),
            postgresql_where=text("recorded_on IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    referral_id: int = Field(
        sa_column=Column(Integer, ForeignKey("referral.id"), nullable=False, index=True)
    )
    months: int
    due_on: date
    recorded_on: date | None = None
    outcome: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))


class ReferenceCounter(SQLModel, table=True):
    __tablename__ = "reference_counter"

    prefix: str = Field(sa_column=Column(String(16), primary_key=True))
    year: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    last: int


class AuditEvent(SQLModel, table=True):
    """One link of the hash chain. Append-only: triggers refuse UPDATE and DELETE."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_entity", "entity_type", "entity_id", "seq"),)

    seq: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    entity_type: str = Field(sa_column=Column(String(32), nullable=False))
    entity_id: str = Field(sa_column=Column(String(64), nullable=False))
    event: str = Field(sa_column=Column(String(64), nullable=False))
    from_state: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    to_state: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    actor: str = Field(sa_column=Column(String(64), nullable=False))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    occurred_at: str = Field(sa_column=Column(String(AUDIT_TIME_WIDTH), nullable=False))
    recorded_at: str = Field(sa_column=Column(String(AUDIT_TIME_WIDTH), nullable=False))
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    data: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    mac: str = Field(sa_column=Column(String(64), nullable=False))


class AccessLog(SQLModel, table=True):
    """Security log: who viewed what, and who tried something their role does not allow."""

    __tablename__ = "access_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    actor: str = Field(sa_column=Column(String(64), nullable=False))
    role: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    action: str = Field(sa_column=Column(String(64), nullable=False))
    entity_type: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    entity_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    allowed: bool


class Meta(SQLModel, table=True):
    """Facts about this database, such as which audit key anchors its chain."""

    __tablename__ = "channelflow_meta"

    key: str = Field(sa_column=Column(String(64), primary_key=True))
    value: str = Field(sa_column=Column(Text, nullable=False))


class OutboxMessage(SQLModel, table=True):
    """An email waiting to go, going or gone: queued in the same transaction as its cause.

    Holds the rendered message (which by construction carries no subject's personal data),
    so a template changed after queueing never alters what was decided to be sent.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(sa_column=Column(String(255), nullable=False, unique=True))
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    recipient: str = Field(sa_column=Column(String(254), nullable=False))
    subject: str = Field(sa_column=Column(Text, nullable=False))
    body_text: str = Field(sa_column=Column(Text, nullable=False))
    body_html: str = Field(sa_column=Column(Text, nullable=False))
    # JSON list of {"filename", "content_type", "content" (base64)}.
    attachments: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    attempts: int = Field(sa_column=Column(Integer, nullable=False))
    # When a dispatcher may next take the message: queued and failed ones when due, a
    # sending one when its claim's lease runs out; none once sent or dead. One indexed
    # column, so finding due mail stays one index range however much history there is.
    next_attempt_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    claim_token: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    # An attempt may have reached the provider without us hearing back.
    outcome_unknown: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    provider_id: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class MeetingRow(SQLModel, table=True):
    """A panel or board meeting changed by hand: moved, cancelled, or added off the rule.

    Meetings that follow the rule have no row; the calendar is the rule plus these rows, so a
    changed rule in the configuration needs no rewriting of stored dates. ``uid`` stays the
    same when a meeting moves (calendar programs match on it); ``sequence`` goes up.
    """

    __tablename__ = "meeting"
    __table_args__ = (UniqueConstraint("body", "rule_day"),)

    id: int | None = Field(default=None, primary_key=True)
    body: str = Field(sa_column=Column(String(16), nullable=False))
    uid: str = Field(sa_column=Column(String(128), nullable=False, unique=True))
    # The rule's day this meeting replaces; none for a meeting added by hand.
    rule_day: date | None = None
    starts_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    cancelled: bool = Field(sa_column=Column(Boolean, nullable=False))
    sequence: int = Field(sa_column=Column(Integer, nullable=False))
    changed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    changed_by: str = Field(sa_column=Column(String(64), nullable=False))


class MeetingNotice(SQLModel, table=True):
    """A meeting's agenda or board reminder was planned for this version (sequence) of it."""

    __tablename__ = "meeting_notice"

    meeting_uid: str = Field(sa_column=Column(String(128), primary_key=True))
    sequence: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    issued_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class AgendaItem(SQLModel, table=True):
    """A case already announced for a meeting, in its agenda or an addendum."""

    __tablename__ = "agenda_item"

    meeting_uid: str = Field(sa_column=Column(String(128), primary_key=True))
    reference: str = Field(sa_column=Column(String(32), primary_key=True))
    announced_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class ToolkitBenchmark(SQLModel, table=True):
    """A benchmark of the Prevent duty toolkit self-assessment and its current rating."""

    __tablename__ = "toolkit_benchmark"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    position: int = Field(sa_column=Column(Integer, nullable=False))
    rating: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class ToolkitAction(SQLModel, table=True):
    """An action against a benchmark, its owner (a user) and its next process review."""

    __tablename__ = "toolkit_action"

    id: int | None = Field(default=None, primary_key=True)
    benchmark_id: int = Field(
        sa_column=Column(Integer, ForeignKey("toolkit_benchmark.id"), nullable=False, index=True)
    )
    text: str = Field(sa_column=Column(String(200), nullable=False))
    owner: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    review_on: date | None = None
    completed_on: date | None = None
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
