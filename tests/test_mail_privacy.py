"""No email carries a subject's personal details, whatever is sent and however it goes.

Referrals are made with distinctive names, addresses, schools, dates of birth and concern
types; every kind of email is queued about them and sent through the file transport and over
SMTP to a real server; then every byte that left (files, SMTP messages), every outbox column
and every log record is searched for any form of those details.
"""

from __future__ import annotations

import base64
import dataclasses
import email
import email.policy
import html
import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from channelflow import clock
from channelflow.notifications import Dispatcher, Notice, Status
from channelflow.notifications.kinds import (
    AgendaAddendum,
    BoardReminder,
    CaseAssigned,
    Kind,
    Meeting,
    MeetingCancelled,
    MeetingMoved,
    PanelAgenda,
    ProcessReviewReminder,
    ReviewDue,
    ReviewEscalation,
    ReviewReminder,
    kind_of,
)
from channelflow.notifications.kinds import TestMessage as SendTest
from channelflow.notifications.transports import (
    FileTransport,
    SmtpSettings,
    SmtpTransport,
    TLSMode,
    Transport,
)
from channelflow.runtime import Runtime
from channelflow.states import referral as lc
from channelflow.store.db import write_connection
from tests.factories import CHAIR, LEAD, NOW, referral_in
from tests.mailserver import MailServer
from tests.outbox_factories import SENDER


@dataclass(frozen=True)
class Subject:
    state: str
    subject_name: str
    date_of_birth: date
    address: str
    school: str
    concern: str
    referrer_org: str
    # Further fragments of the details that must not appear on their own either.
    fragments: tuple[str, ...]

    def overrides(self) -> dict[str, Any]:
        return {
            "subject_name": self.subject_name,
            "date_of_birth": self.date_of_birth,
            "address": self.address,
            "school": self.school,
            "concern": self.concern,
            "referrer_org": self.referrer_org,
        }


SUBJECTS = (
    # A child: accepted with a parent's consent, which emails the lead.
    Subject(
        state=lc.ACCEPTED,
        subject_name="Zebedee Quixotic-Marchbanks",
        date_of_birth=date(2009, 2, 13),
        address="17 Xylophone Mews, Quenbury QX9 4ZZ",
        school="Pemberton Vale Academy",
        concern="islamist",
        referrer_org="Thistlewick Youth Trust",
        fragments=(
            "Zebedee",
            "Quixotic",
            "Marchbanks",
            "Xylophone",
            "Quenbury",
            "QX9 4ZZ",
            "QX94ZZ",
            "Pemberton",
            "Thistlewick",
        ),
    ),
    # An adult taken on to intervention (accepted on the way, which emails the lead).
    Subject(
        state=lc.INTERVENTION,
        subject_name="Ottoline Brackenfurze-Vey",
        date_of_birth=date(1994, 8, 21),
        address="Flat 3, Quagmire Lane, Little Snoddington LS7 2QJ",
        school="Harrowgate Fenwick Sixth Form",
        concern="extreme_right_wing",
        referrer_org="Grimsditch Housing Partnership",
        fragments=(
            "Ottoline",
            "Brackenfurze",
            "Quagmire",
            "Snoddington",
            "LS7 2QJ",
            "Harrowgate",
            "Grimsditch",
        ),
    ),
    # An adult waiting for the panel: no email from the engine, but named on the agenda.
    Subject(
        state=lc.PANEL_REVIEW,
        subject_name="Ignatius Pumblechook",
        date_of_birth=date(2000, 5, 30),
        address="9 Wyvernhollow Court, Ambridge",
        school="St Aldhelm's College",
        concern="left_wing",
        referrer_org="Oakenshaw Mosque Trust",
        fragments=("Ignatius", "Pumblechook", "Wyvernhollow", "Aldhelm", "Oakenshaw"),
    ),
)


def date_forms(day: date) -> set[str]:
    """Every way a date of birth might be written."""
    return {
        day.isoformat(),
        f"{day:%Y/%m/%d}",
        f"{day:%Y%m%d}",
        f"{day:%d/%m/%Y}",
        f"{day.day}/{day.month}/{day.year}",
        f"{day:%d-%m-%Y}",
        f"{day:%d.%m.%Y}",
        f"{day:%d%m%Y}",
        f"{day:%m/%d/%Y}",
        f"{day:%d/%m/%y}",
        f"{day.day} {day:%B %Y}",
        f"{day:%d %B %Y}",
        f"{day.day} {day:%b %Y}",
        f"{day:%B} {day.day}, {day.year}",
        f"{day:%A} {day.day} {day:%B %Y}",
        f"{day.day}th {day:%B %Y}",
    }


def concern_forms(concern: str) -> set[str]:
    raw = json.loads(files("channelflow.data").joinpath("categories.json").read_text("utf-8"))
    label = str(raw["concern"][concern]["label"])
    return {concern, concern.replace("_", " "), concern.replace("_", "-"), label}


def personal_details(subject: Subject) -> set[str]:
    return {
        subject.subject_name,
        subject.address,
        subject.school,
        subject.referrer_org,
        *subject.fragments,
        *date_forms(subject.date_of_birth),
    }


def normalised(value: str) -> str:
    return " ".join(value.lower().split())


def leaks(needles: set[str], haystacks: list[tuple[str, str]]) -> list[str]:
    """``where: needle`` for each needle found in a haystack, case and spacing ignored."""
    wanted = {normalised(needle) for needle in needles}
    found = []
    for where, haystack in haystacks:
        plain = haystack.lower()
        spaced = normalised(haystack)
        found += [f"{where}: {n!r}" for n in sorted(wanted) if n in plain or n in spaced]
    return found


def message_texts(where: str, raw: bytes) -> list[tuple[str, str]]:
    """The raw message and every decoded header, part and attachment of it."""
    texts = [
        (f"{where} raw", raw.decode("latin-1")),
        (f"{where} raw", raw.decode("utf-8", "replace")),
    ]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    for number, part in enumerate(message.walk()):
        label = f"{where} part {number} ({part.get_content_type()})"
        texts += [(f"{label} header", f"{name}: {value}") for name, value in part.items()]
        if part.get_filename():
            texts.append((f"{label} filename", str(part.get_filename())))
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        content = payload.decode("utf-8", "replace")
        texts.append((label, content))
        if part.get_content_type() == "text/html":
            texts.append((f"{label} unescaped", html.unescape(content)))
        if part.get_content_type() == "text/calendar":
            unfolded = content.replace("\r\n ", "").replace("\\", "")
            texts.append((f"{label} unfolded", unfolded))
    return texts


def outbox_texts(runtime: Runtime) -> tuple[int, list[tuple[str, str]]]:
    with runtime.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM outbox ORDER BY id")).mappings().all()
    texts = []
    for row in rows:
        for column, value in row.items():
            where = f"outbox {row['id']} {column}"
            texts.append((where, str(value)))
            if column == "body_html":
                texts.append((f"{where} unescaped", html.unescape(str(value))))
            if column == "attachments":
                for item in json.loads(str(value)):
                    content = base64.b64decode(item["content"]).decode("utf-8", "replace")
                    texts.append((f"{where} {item['filename']}", content))
                    texts.append((f"{where} unfolded", content.replace("\r\n ", "")))
    return len(rows), texts


def make_referrals(runtime: Runtime) -> list[str]:
    workflow = runtime.workflow
    references = []
    for subject in SUBJECTS:
        child = subject.date_of_birth > NOW.date().replace(year=NOW.year - 18)
        if subject.state == lc.ACCEPTED and child:
            # A child's case needs a parent's consent, which the factories' path does not give.
            reference = referral_in(workflow, lc.PANEL_REVIEW, **subject.overrides())
            with clock.frozen_at(NOW):
                result = workflow.fire(
                    reference,
                    lc.ACCEPT,
                    by=CHAIR,
                    values={"consent": "parental", "lead": LEAD},
                    at=NOW,
                )
            assert result.emails_queued == 1
        else:
            reference = referral_in(workflow, subject.state, **subject.overrides())
        references.append(reference)
    return references


def every_kind_about(references: list[str], transport: str) -> list[Notice]:
    child, adult, waiting = references
    today = NOW.date()
    panel = Meeting(
        body="panel",
        uid="panel-2026-12-10@channelflow",
        starts_at=datetime(2026, 12, 10, 10, 0, tzinfo=UTC),
        sequence=1,
        location="Committee Room 2, Town Hall",
        link="https://meet.example.gov.uk/channel-panel",
    )
    board = Meeting(
        body="board",
        uid="board-2027-01-13@channelflow",
        starts_at=datetime(2027, 1, 13, 14, 0, tzinfo=UTC),
        location="Council Chamber",
    )
    support_plan = ReviewDue(adult, "support_plan", today + timedelta(days=7))
    post_exit = ReviewDue(child, "post_exit_6", today + timedelta(days=12))
    overdue = ReviewDue(adult, "support_plan", today - timedelta(days=4))
    contexts: list[tuple[str, Any]] = [
        (
            "chris",
            PanelAgenda(
                meeting=panel,
                new_cases=tuple(references),
                adjourned=(waiting,),
                reviews_due=(support_plan,),
                post_exit_reviews=(post_exit,),
                counts_by_state=(("accepted", 1), ("intervention", 1), ("panel_review", 1)),
            ),
        ),
        ("mel", AgendaAddendum(meeting=panel, added=(waiting, child))),
        ("lee", ReviewReminder(review=support_plan, days_before=7)),
        ("lee", ReviewReminder(review=support_plan, days_before=0)),
        ("chris", ReviewEscalation(review=overdue, working_days_overdue=3)),
        (
            "cora",
            ProcessReviewReminder(
                benchmark="Channel Panel",
                action="6 month review of process",
                due_on=today + timedelta(days=3),
            ),
        ),
        (
            "ada",
            BoardReminder(
                meeting=board,
                period_from=date(2026, 10, 1),
                period_to=date(2026, 12, 31),
                referrals_by_sector=(("education", 3),),
                referrals_by_outcome=(("discussed_at_panel", 3),),
                cases_by_state=(("accepted", 1), ("intervention", 1), ("panel_review", 1)),
                overdue_reviews=1,
                ratings_by_colour=(("green", 2), ("amber", 1)),
            ),
        ),
        ("mel", MeetingMoved(meeting=dataclasses.replace(panel, sequence=2))),
        ("mel", MeetingCancelled(meeting=dataclasses.replace(panel, sequence=2, cancelled=True))),
        ("lee", CaseAssigned(reference=waiting, first_review_on=today + timedelta(days=30))),
        ("cora", SendTest(sent_at=NOW, transport=transport)),
    ]
    notices = []
    for number, (user, context) in enumerate(contexts):
        for recipient in dict.fromkeys((user, "mel")):
            notices.append(
                Notice(
                    key=f"privacy:{number}:{recipient}",
                    recipient=f"{recipient}@example.org",
                    context=context,
                )
            )
    return notices


@pytest.mark.parametrize("via", ["file", "smtp"])
def test_no_personal_details_in_any_email_outbox_row_or_log(
    runtime: Runtime,
    via: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    caplog.set_level(logging.DEBUG)
    # SQLAlchemy keeps its own loggers at WARNING unless told otherwise: log every statement.
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    references = make_referrals(runtime)
    notices = every_kind_about(references, via)
    assert {kind_of(notice.context) for notice in notices} == set(Kind)
    with clock.frozen_at(NOW), write_connection(runtime.engine, writers_lock=False) as connection:
        assert runtime.notifier.queue(connection, notices, now=NOW) == len(notices)
    queued, _ = outbox_texts(runtime)
    # The two accepted referrals each emailed their lead when they were accepted.
    assert queued == len(notices) + 2

    mail_dir = tmp_path / "mail"
    server: MailServer | None = None
    transport: Transport
    if via == "file":
        transport = FileTransport(directory=mail_dir)
    else:
        server = request.getfixturevalue("mail_server")
        transport = SmtpTransport(SmtpSettings("127.0.0.1", server.port, TLSMode.NONE, timeout=5))
    with clock.frozen_at(NOW + timedelta(minutes=5)):
        report = Dispatcher(engine=runtime.engine, transport=transport, sender=SENDER).run_once()
    assert report.stopped_because is None
    assert (report.failed, report.dead) == ([], [])
    assert len(report.sent) == queued
    if server is not None:
        # The server accepted each message: a refusal of the message after DATA is no send.
        replies = [str(row.provider_id) for row in _statuses(runtime)]
        assert [reply for reply in replies if not reply.startswith("250 ")] == []

    # Everything that left channelflow.
    sent: list[tuple[str, str]] = []
    if server is None:
        names = sorted(path.name for path in mail_dir.iterdir())
        assert len(names) == queued
        assert all(name.endswith(".eml") for name in names)
        sent += [(f"file name {name}", name) for name in names]
        for path in sorted(mail_dir.iterdir()):
            sent += message_texts(f"file {path.name}", path.read_bytes())
    else:
        received = server.received
        assert len(received) == queued
        for number, message in enumerate(received):
            sent.append((f"smtp {number} envelope", f"{message.mail_from} {message.rcpt_tos}"))
            sent += message_texts(f"smtp {number}", message.content)

    rows, stored = outbox_texts(runtime)
    assert rows == queued
    assert any(record.name.startswith("sqlalchemy.engine") for record in caplog.records)
    logged = [(f"log {record.name}", record.getMessage()) for record in caplog.records]
    logged += [(f"log {record.name} args", repr(record.args)) for record in caplog.records]
    logged += [(f"log {record.name} exc", record.exc_text or "") for record in caplog.records]
    logged.append(("log text", caplog.text))

    # The search would find them: the details are really there, in the person table.
    with runtime.engine.connect() as connection:
        people = [
            (f"person {row[0]}", " | ".join(str(value) for value in row))
            for row in connection.execute(text("SELECT * FROM person"))
        ]
    for subject in SUBJECTS:
        assert leaks({subject.subject_name, subject.address, subject.school}, people)

    # And they are nowhere else.
    details = set().union(*(personal_details(subject) for subject in SUBJECTS))
    assert leaks(details, sent) == []
    assert leaks(details, stored) == []
    assert leaks(details, logged) == []
    concerns = set().union(*(concern_forms(subject.concern) for subject in SUBJECTS))
    assert leaks(concerns, sent) == []
    assert leaks(concerns, stored) == []

    # What the emails do say: the references, each in some email, and all were sent.
    whole = "\n".join(content for _, content in sent)
    for reference in references:
        assert reference in whole
    assert {row.status for row in _statuses(runtime)} == {Status.SENT.value}
    outbox_logs = [record for record in caplog.records if record.name == "channelflow.outbox"]
    assert sum(" sent, attempt " in record.getMessage() for record in outbox_logs) == queued


def _statuses(runtime: Runtime) -> list[Any]:
    with runtime.engine.connect() as connection:
        return list(connection.execute(text("SELECT status, provider_id FROM outbox")))
