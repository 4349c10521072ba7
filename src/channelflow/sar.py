"""Subject access: everything channelflow holds about the person behind one referral.

A coordinator answers a Subject Access Request with one folder: ``sar.json`` (complete, as
stored) and ``sar.pdf`` (to read or print). The person's referrals are the one asked about
and every referral linked to it by re-referral, either way, since they are the same person.
Emails are listed by what they were and who (by role) received them, never by their bodies:
an agenda lists other people's cases too. Each export is written to the access log and the
audit trail (with the SHA-256 of its ``sar.json``) in the transaction that reads the data.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlmodel import Session, col

from channelflow import clock, retention
from channelflow.audit import chain
from channelflow.audit.canonical import parse_time
from channelflow.audit.chain import EventDraft
from channelflow.folders import new_output, publish, staging_beside
from channelflow.store.db import write_session
from channelflow.store.models import (
    AccessLog,
    OutboxMessage,
    Person,
    PostExitReview,
    Referral,
    User,
)
from channelflow.workflow import policy, views
from channelflow.workflow.engine import Workflow, log_access

if TYPE_CHECKING:
    from channelflow.pdf import Document

FORMAT = "channelflow-subject-access/1"
SAR_ENTITY = "sar"
SAR_EVENT = "subject_access_export"
ACTION = "referral.sar"
JSON_NAME = "sar.json"
PDF_NAME = "sar.pdf"
# Every column of the referral but its internal links (the person and the earlier referral
# are shown in their own right).
REFERRAL_FIELDS = tuple(
    column.name
    for column in Referral.__table__.columns  # type: ignore[attr-defined]
    if column.name not in {"id", "person_id", "linked_from_id"}
)
AGENDA_KINDS = {
    "panel_agenda": "listed on the agenda of the panel on {day}",
    "agenda_addendum": "added to the agenda of the panel on {day}",
}
DESCRIPTIONS = {
    "case_assigned": "the case lead was told they lead the case",
    "review_reminder": "the case lead was reminded of a review",
    "review_escalation": "the chair was told a review is overdue",
}
_DTSTART = re.compile(r"^DTSTART[^:\n]*:(\d{4})(\d{2})(\d{2})", re.MULTILINE)
_UID_DAY = re.compile(r"(\d{4}-\d{2}-\d{2})@")


@dataclass(frozen=True)
class SarExport:
    reference: str
    folder: Path
    sha256: str
    # The person's referrals: the one asked about and those linked to it.
    references: tuple[str, ...]
    events: int
    messages: int
    accesses: int
    seq: int


def export(workflow: Workflow, reference: str, out: Path, *, by: str | None) -> SarExport:
    """Write the subject access export of ``reference`` into the new folder ``out``.

    ``out`` must not exist, or be an empty folder; the files are written into a hidden
    sibling folder that is renamed to ``out`` just before the transaction commits, so a
    failure leaves neither a folder nor a record of it.
    """
    out = new_output(out)
    staging: Path | None = None
    published = False
    try:
        with (
            workflow.denials_logged(by, ACTION, reference),
            write_session(workflow.engine) as session,
        ):
            actor = workflow.actor(
                session, by, action=ACTION, allowed=policy.SUBJECT_ACCESS_EXPORTERS
            )
            referral = views.load_referral(session, reference)
            now = clock.now()
            report = gather(session, referral, actor=actor, now=now)
            staging = staging_beside(out)
            document = (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode()
            (staging / JSON_NAME).write_bytes(document)
            (staging / PDF_NAME).write_bytes(render_pdf(report))
            digest = hashlib.sha256(document).hexdigest()
            log_access(session, actor.name, ACTION, reference, allowed=True, role=actor.role)
            session.flush()
            draft = EventDraft(
                SAR_ENTITY,
                reference,
                SAR_EVENT,
                None,
                None,
                actor.name,
                actor.role,
                now,
                # Not the folder's name: someone might name it after the person.
                data={"sha256": digest},
            )
            rows = chain.append(session.connection(), [draft], key=workflow.key)
            publish(staging, out)
            published = True
    except BaseException:
        if published:
            shutil.rmtree(out, ignore_errors=True)
        elif staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    records = report["referrals"]
    return SarExport(
        reference=reference,
        folder=out,
        sha256=digest,
        references=tuple(record["reference"] for record in records),
        events=sum(len(record["history"]) for record in records),
        messages=len(report["messages"]),
        accesses=len(report["access_log"]),
        seq=rows[0]["seq"],
    )


# Gathering ------------------------------------------------------------------------------


def gather(session: Session, referral: Referral, *, actor: User, now: datetime) -> dict[str, Any]:
    """Everything held about the person behind ``referral``, as JSON-ready values."""
    family = _family(session, referral)
    references = [row.reference for row in family]
    by_id = {row.id: row.reference for row in family}
    removed = retention.removals(session.connection(), references)
    return {
        "format": FORMAT,
        "reference": referral.reference,
        "generated_at": now.isoformat(),
        "generated_by": {"name": actor.name, "role": actor.role},
        "references": references,
        "referrals": [_record(session, row, by_id, family, removed) for row in family],
        "messages": _messages(session, references),
        "access_log": _access_log(session, references),
    }


def _family(session: Session, referral: Referral) -> list[Referral]:
    """The referral and every referral linked to it by re-referral, in either direction."""
    found: dict[int | None, Referral] = {referral.id: referral}
    frontier = [referral]
    while frontier:
        parents = [row.linked_from_id for row in frontier if row.linked_from_id not in found]
        children = [row.id for row in frontier]
        rows = session.execute(
            select(Referral).where(
                or_(col(Referral.id).in_(parents), col(Referral.linked_from_id).in_(children))
            )
        ).scalars()
        frontier = [row for row in rows if row.id not in found]
        found.update((row.id, row) for row in frontier)
    return sorted(found.values(), key=lambda row: row.id or 0)


def _record(
    session: Session,
    referral: Referral,
    by_id: dict[int | None, str],
    family: list[Referral],
    removed: dict[str, retention.Removal],
) -> dict[str, Any]:
    reference = referral.reference
    person = session.get(Person, referral.person_id) if referral.person_id is not None else None
    removal = removed.get(reference)
    statement = None
    if person is None:
        statement = (
            f"The personal details held with {reference} were removed on "
            f"{removal.on.isoformat()} under the retention policy ({removal.years} years "
            "after the case closed)."
            if removal is not None
            else f"No personal details are held with {reference}."
        )
    return {
        "reference": reference,
        "linked_from": by_id.get(referral.linked_from_id) if referral.linked_from_id else None,
        "linked_to": [row.reference for row in family if row.linked_from_id == referral.id],
        "personal": _personal(person),
        "personal_removed": (
            {"on": removal.on.isoformat(), "years": removal.years, "audit_seq": removal.seq}
            if person is None and removal is not None
            else None
        ),
        "personal_statement": statement,
        "referral": {name: _value(getattr(referral, name)) for name in REFERRAL_FIELDS},
        "post_exit_reviews": [
            {
                "months": row.months,
                "due_on": _value(row.due_on),
                "recorded_on": _value(row.recorded_on),
                "outcome": row.outcome,
            }
            for row in session.execute(
                select(PostExitReview)
                .where(col(PostExitReview.referral_id) == referral.id)
                .order_by(col(PostExitReview.months))
            ).scalars()
        ],
        "history": _events(session, chain.REFERRAL_ENTITY, reference),
        "subject_access_exports": _events(session, SAR_ENTITY, reference),
    }


def _personal(person: Person | None) -> dict[str, Any] | None:
    if person is None:
        return None
    return {
        "full_name": person.full_name,
        "date_of_birth": person.date_of_birth.isoformat(),
        "address": person.address,
        "school": person.school,
    }


def _events(session: Session, entity_type: str, reference: str) -> list[dict[str, Any]]:
    return views.entity_history(session, entity_type, reference)


def _messages(session: Session, references: list[str]) -> list[dict[str, Any]]:
    """Emails that name one of ``references`` in their key, subject or text."""
    columns = (
        col(OutboxMessage.idempotency_key),
        col(OutboxMessage.subject),
        col(OutboxMessage.body_text),
    )
    rows = session.execute(
        select(OutboxMessage)
        .where(
            or_(
                *(
                    column.contains(reference, autoescape=True)
                    for reference in references
                    for column in columns
                )
            )
        )
        .order_by(col(OutboxMessage.created_at), col(OutboxMessage.id))
    ).scalars()
    roles = {
        email.lower(): role
        for email, role in session.execute(
            select(col(User.email), col(User.role)).where(col(User.email).is_not(None))
        )
        if email
    }
    found = []
    for row in rows:
        named = _named(references, (row.idempotency_key, row.subject, row.body_text))
        if not named:
            continue
        found.append(
            {
                "references": named,
                "kind": row.kind,
                "recipient_role": roles.get(row.recipient.lower()),
                "status": row.status,
                "created_at": _value(row.created_at),
                "sent_at": _value(row.sent_at),
                "subject": row.subject,
                "description": _description(row),
            }
        )
    return found


def _named(references: list[str], texts: Iterable[str]) -> list[str]:
    """The references named in ``texts`` as whole references (not CF-2026-00012 for -0001)."""
    joined = "\n".join(texts)
    return [
        reference
        for reference in references
        if re.search(rf"(?<![A-Za-z0-9]){re.escape(reference)}(?![0-9])", joined)
    ]


def _description(row: OutboxMessage) -> str:
    if row.kind in AGENDA_KINDS:
        day = _meeting_day(row)
        return AGENDA_KINDS[row.kind].format(day=day.isoformat() if day else "(date unknown)")
    return DESCRIPTIONS.get(row.kind, row.subject)


def _meeting_day(row: OutboxMessage) -> date | None:
    """The day of the meeting an agenda was for, from its calendar invitation as sent."""
    try:
        for attachment in json.loads(row.attachments):
            content = base64.b64decode(attachment.get("content", "")).decode("utf-8", "replace")
            event = content.replace("\r\n", "\n").partition("BEGIN:VEVENT")[2]
            found = _DTSTART.search(event)
            if found:
                return date.fromisoformat("-".join(found.groups()))
    except (ValueError, TypeError, AttributeError):
        pass
    from_uid = _UID_DAY.search(row.idempotency_key)
    return date.fromisoformat(from_uid.group(1)) if from_uid else None


def _access_log(session: Session, references: list[str]) -> list[dict[str, Any]]:
    rows = session.execute(
        select(AccessLog)
        .where(
            col(AccessLog.entity_type) == chain.REFERRAL_ENTITY,
            col(AccessLog.entity_id).in_(references),
        )
        .order_by(col(AccessLog.at), col(AccessLog.id))
    ).scalars()
    return [
        {
            "reference": row.entity_id,
            "at": _value(row.at),
            "actor": row.actor,
            "role": row.role,
            "action": row.action,
            "allowed": row.allowed,
        }
        for row in rows
    ]


def _value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


# The PDF --------------------------------------------------------------------------------


def render_pdf(report: dict[str, Any]) -> bytes:
    """``report`` (from `gather`) as a document a person can read."""
    reference = report["reference"]
    generated = datetime.fromisoformat(report["generated_at"])
    # fpdf is loaded only when a PDF is written: it costs 0.2 s and 45 MB otherwise.
    from channelflow.pdf import Document

    doc = Document(
        f"Subject access request: {reference}",
        footer=f"{reference}: subject access export of {_local(generated)}",
        created=generated,
    )
    others = [r for r in report["references"] if r != reference]
    linked = f", and the linked referrals {', '.join(others)}" if others else ""
    generated_by = report["generated_by"]
    doc.paragraph(
        f"Everything channelflow holds about the person behind referral {reference}{linked}, "
        f"as at {_local(generated)} (Europe/London), prepared by {generated_by['name']} "
        f"({generated_by['role']}). The file {JSON_NAME} next to this one holds the same "
        "information in full, exactly as stored."
    )
    for record in report["referrals"]:
        _render_referral(doc, record)
    doc.heading("Emails sent about the case")
    doc.paragraph(
        "Emails go to staff and name a case only by its reference; they never carry a name, "
        "date of birth, address or school."
    )
    doc.table(
        ["queued", "kind", "to (role)", "status", "sent", "what"],
        [
            [
                _local_iso(m["created_at"]),
                m["kind"],
                m["recipient_role"] or "staff",
                m["status"],
                _local_iso(m["sent_at"]),
                m["description"],
            ]
            for m in report["messages"]
        ],
        widths=(2.6, 2.6, 1.8, 1.4, 2.6, 5),
    )
    doc.heading("Who has looked at the case")
    doc.table(
        ["when", "who", "role", "action", "case", "allowed"],
        [
            [
                _local_iso(a["at"]),
                a["actor"],
                a["role"],
                a["action"],
                a["reference"],
                "yes" if a["allowed"] else "no (refused)",
            ]
            for a in report["access_log"]
        ],
        widths=(2.6, 2, 2, 3.2, 2.6, 1.6),
    )
    return doc.output()


def _render_referral(doc: Document, record: dict[str, Any]) -> None:
    doc.heading(f"Referral {record['reference']}")
    links = [
        ("Re-referred from", record["linked_from"]),
        ("Re-referred as", ", ".join(record["linked_to"]) or None),
    ]
    doc.heading("Personal details", level=2)
    personal = record["personal"]
    if personal is not None:
        doc.key_values((_label(name), value) for name, value in personal.items())
    else:
        doc.paragraph(record["personal_statement"])
    doc.heading("The referral", level=2)
    fields = [
        (_label(name), _local_iso(value) if name.endswith("_at") else value)
        for name, value in record["referral"].items()
    ]
    doc.key_values([*fields, *links])
    doc.heading("History", level=2)
    doc.table(
        ["date", "event", "from", "to", "who", "reason and details"],
        [
            [
                _local(parse_time(event["occurred_at"])),
                event["event"],
                event["from"],
                event["to"],
                f"{event['actor']} ({event['role']})",
                _details(event),
            ]
            for event in record["history"]
        ],
        widths=(2.4, 3.7, 2.2, 2.2, 2.8, 4.2),
    )
    if record["post_exit_reviews"]:
        doc.heading("Post-exit reviews", level=2)
        doc.table(
            ["review", "due on", "recorded on", "outcome"],
            [
                [f"{r['months']} months", r["due_on"], r["recorded_on"], r["outcome"]]
                for r in record["post_exit_reviews"]
            ],
        )
    if record["subject_access_exports"]:
        doc.heading("Earlier subject access exports", level=2)
        doc.table(
            ["date", "by", "sar.json SHA-256"],
            [
                [
                    _local(parse_time(event["occurred_at"])),
                    f"{event['actor']} ({event['role']})",
                    str(event["data"].get("sha256", ""))[:16],
                ]
                for event in record["subject_access_exports"]
            ],
        )


def _details(event: dict[str, Any]) -> str:
    """The event's reason, then its plain values (the keyed hashes of personal details and
    other nested values are in the JSON)."""
    parts = [event["reason"]] if event["reason"] else []
    values = [
        f"{_label(name)}: {value}"
        for name, value in event["data"].items()
        if isinstance(value, str | int) and not isinstance(value, bool)
    ]
    if values:
        parts.append("; ".join(values))
    return "\n".join(parts)


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _local(instant: datetime) -> str:
    return instant.astimezone(clock.LOCAL_ZONE).strftime("%Y-%m-%d %H:%M")


def _local_iso(value: str | None) -> str:
    return _local(datetime.fromisoformat(value)) if value else ""
