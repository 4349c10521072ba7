"""Calendar invitations (RFC 5545), read back with the `icalendar` library."""

from __future__ import annotations

import dataclasses
import email
import email.policy
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest

from channelflow.notifications import ics
from channelflow.notifications.kinds import AgendaAddendum, Kind, Meeting, MeetingCancelled, sample
from channelflow.notifications.notifier import Notice, Notifier

LONDON = ZoneInfo("Europe/London")
ORGANIZER = "channelflow@council.example.gov.uk"
STAMP = datetime(2026, 11, 20, 8, 30, 15, tzinfo=UTC)

WINTER = Meeting(
    body="panel",
    uid="panel-2026-11-26@channelflow",
    starts_at=datetime(2026, 11, 26, 10, 0, tzinfo=UTC),  # 10:00 GMT
    minutes=90,
    sequence=0,
    location="Committee Room 2, Town Hall",
    link="https://meet.example.gov.uk/channel-panel",
)
SUMMER = Meeting(
    body="panel",
    uid="panel-2026-07-30@channelflow",
    starts_at=datetime(2026, 7, 30, 9, 0, tzinfo=UTC),  # 10:00 BST
)


def parse(data: bytes) -> icalendar.Calendar:
    calendar = icalendar.Calendar.from_ical(data)
    assert isinstance(calendar, icalendar.Calendar)
    return calendar


def event_of(data: bytes) -> icalendar.Event:
    (event,) = parse(data).walk("VEVENT")
    return event


def invite(meeting: Meeting, *, stamp: datetime = STAMP) -> bytes:
    return ics.invitation(meeting, organizer=ORGANIZER, stamp=stamp)


def test_one_event_with_the_meetings_uid_and_sequence() -> None:
    calendar = parse(invite(WINTER))
    assert calendar["VERSION"] == "2.0"
    assert calendar["METHOD"] == "REQUEST"
    (event,) = calendar.walk("VEVENT")
    assert str(event["UID"]) == WINTER.uid
    assert event.decoded("SEQUENCE") == 0
    assert str(event["SUMMARY"]) == "Channel panel"
    assert str(event["ORGANIZER"]) == f"mailto:{ORGANIZER}"
    assert str(event["STATUS"]) == "CONFIRMED"
    assert event.decoded("DTSTAMP") == STAMP
    assert str(event["LOCATION"]) == "Committee Room 2, Town Hall"
    assert str(event["URL"]) == "https://meet.example.gov.uk/channel-panel"
    assert str(event["DESCRIPTION"]) == "Join: https://meet.example.gov.uk/channel-panel"


def test_a_board_meeting_is_titled_as_the_board() -> None:
    board = dataclasses.replace(WINTER, body="board", uid="board-2027-01-13@channelflow")
    assert str(event_of(invite(board))["SUMMARY"]) == "Strategic Prevent Board"


def test_a_meeting_without_location_or_link_has_neither() -> None:
    event = event_of(invite(SUMMER))
    for name in ("LOCATION", "URL", "DESCRIPTION"):
        assert name not in event


@pytest.mark.parametrize("sequence", [0, 1, 7, 42])
def test_sequence_is_the_one_given(sequence: int) -> None:
    meeting = dataclasses.replace(WINTER, sequence=sequence)
    assert event_of(invite(meeting)).decoded("SEQUENCE") == sequence


def test_a_moved_meeting_keeps_its_uid_and_its_sequence_goes_up() -> None:
    first = invite(WINTER)
    moved = dataclasses.replace(
        WINTER, starts_at=WINTER.starts_at + timedelta(days=7, hours=4), sequence=1
    )
    second = invite(moved, stamp=STAMP + timedelta(days=1))
    moved_again = dataclasses.replace(moved, location="Council Chamber", sequence=2)
    third = invite(moved_again, stamp=STAMP + timedelta(days=2))
    events = [event_of(data) for data in (first, second, third)]
    assert {str(event["UID"]) for event in events} == {WINTER.uid}
    assert [event.decoded("SEQUENCE") for event in events] == [0, 1, 2]
    starts = [event.decoded("DTSTART") for event in events]
    assert starts[0] == WINTER.starts_at
    assert starts[1] == starts[2] == datetime(2026, 12, 3, 14, 0, tzinfo=UTC)
    assert [event.decoded("DTSTAMP") for event in events] == [
        STAMP,
        STAMP + timedelta(days=1),
        STAMP + timedelta(days=2),
    ]


@pytest.mark.parametrize(
    ("meeting", "line", "utc_start", "utc_end"),
    [
        pytest.param(
            WINTER,
            "DTSTART;TZID=Europe/London:20261126T100000",
            datetime(2026, 11, 26, 10, 0, tzinfo=UTC),
            datetime(2026, 11, 26, 11, 30, tzinfo=UTC),
            id="winter-gmt",
        ),
        pytest.param(
            SUMMER,
            "DTSTART;TZID=Europe/London:20260730T100000",
            datetime(2026, 7, 30, 9, 0, tzinfo=UTC),
            datetime(2026, 7, 30, 11, 0, tzinfo=UTC),
            id="summer-bst",
        ),
    ],
)
def test_times_are_london_wall_clock(
    meeting: Meeting, line: str, utc_start: datetime, utc_end: datetime
) -> None:
    data = invite(meeting)
    assert line in data.decode().split("\r\n")
    event = event_of(data)
    start, end = event.decoded("DTSTART"), event.decoded("DTEND")
    assert start.tzinfo is not None
    assert (start.hour, start.minute) == (10, 0)
    assert start.astimezone(LONDON).hour == 10
    assert start.astimezone(UTC) == utc_start
    assert end.astimezone(UTC) == utc_end
    assert end - start == timedelta(minutes=meeting.minutes)
    assert event["DTSTART"].params["TZID"] == "Europe/London"
    assert event["DTEND"].params["TZID"] == "Europe/London"


def test_a_meeting_given_in_another_zone_is_still_written_in_london_time() -> None:
    paris = dataclasses.replace(
        SUMMER, starts_at=datetime(2026, 7, 30, 11, 0, tzinfo=ZoneInfo("Europe/Paris"))
    )
    data = invite(paris)
    assert "DTSTART;TZID=Europe/London:20260730T100000" in data.decode().split("\r\n")
    assert event_of(data).decoded("DTSTART").astimezone(UTC) == datetime(2026, 7, 30, 9, tzinfo=UTC)


def test_a_meeting_across_the_clock_change_ends_at_the_right_wall_clock_time() -> None:
    # Sunday 25 October 2026: clocks go back at 02:00 BST. 00:30 BST + 3 hours = 02:30 GMT.
    night = dataclasses.replace(
        SUMMER, starts_at=datetime(2026, 10, 24, 23, 30, tzinfo=UTC), minutes=180
    )
    lines = invite(night).decode().split("\r\n")
    assert "DTSTART;TZID=Europe/London:20261025T003000" in lines
    assert "DTEND;TZID=Europe/London:20261025T023000" in lines


def test_the_europe_london_timezone_is_included() -> None:
    calendar = parse(invite(WINTER))
    (zone,) = calendar.walk("VTIMEZONE")
    assert str(zone["TZID"]) == "Europe/London"
    (daylight,) = zone.walk("DAYLIGHT")
    (standard,) = zone.walk("STANDARD")
    assert str(daylight["TZNAME"]) == "BST"
    assert daylight["TZOFFSETTO"].td == timedelta(hours=1)
    assert str(standard["TZNAME"]) == "GMT"
    assert standard["TZOFFSETTO"].td == timedelta(0)
    # The zone's own rules agree with the tz database for both seasons.
    tz = zone.to_tz()
    assert datetime(2026, 7, 30, 10, tzinfo=tz).utcoffset() == timedelta(hours=1)
    assert datetime(2026, 11, 26, 10, tzinfo=tz).utcoffset() == timedelta(0)
    # The zone is defined before the event that uses it.
    text = invite(WINTER).decode()
    assert text.index("BEGIN:VTIMEZONE") < text.index("BEGIN:VEVENT")


LONG_LOCATION = (
    "Ystafell Bwyllgor 3, Neuadd y Dref; Salle de réunion « Château », Zürich-Straße 12, "
    "Łódź — Přízemí, 会议室 ☕, Caerdydd CF10 1ÀÉ; ask at reception, second floor, "
    "beside the lifts"
)


def test_long_lines_are_folded_at_75_octets_without_splitting_characters() -> None:
    assert len(LONG_LOCATION) <= 200
    meeting = dataclasses.replace(WINTER, location=LONG_LOCATION)
    data = invite(meeting)
    physical = data.split(b"\r\n")
    assert physical[-1] == b""
    physical = physical[:-1]
    for line, following in zip(physical, [*physical[1:], b""], strict=True):
        assert len(line) <= 75, line
        line.decode("utf-8")  # a fold never falls inside a multi-byte character
        if following.startswith(b" "):
            # Folded where it had to be: no room left for the next character.
            assert len(line) > 75 - 4, line
    continuations = [line for line in physical if line.startswith(b" ")]
    assert len(continuations) >= 2
    unfolded = data.decode("utf-8").replace("\r\n ", "")
    assert f"LOCATION:{ics._escape(LONG_LOCATION)}" in unfolded.split("\r\n")
    assert str(event_of(data)["LOCATION"]) == LONG_LOCATION


def test_folding_handles_four_byte_characters_at_every_offset() -> None:
    for padding in range(4):
        location = "x" * padding + "\U0001f4c5" * 49
        data = invite(dataclasses.replace(WINTER, location=location))
        for line in data.split(b"\r\n"):
            assert len(line) <= 75
            line.decode("utf-8")
        assert str(event_of(data)["LOCATION"]) == location


def test_lines_end_in_crlf_only() -> None:
    data = invite(dataclasses.replace(WINTER, location=LONG_LOCATION))
    assert data.endswith(b"END:VCALENDAR\r\n")
    assert data.count(b"\n") == data.count(b"\r\n")
    assert data.count(b"\r") == data.count(b"\r\n")
    assert data.startswith(b"BEGIN:VCALENDAR\r\n")


@pytest.mark.parametrize(
    "location",
    [
        "Room 1, Town Hall; 2nd floor",
        "Back\\slash, then; both",
        "Room 1,,;; end,",
        ";leading",
        "Room: 12 (east)",
    ],
)
def test_commas_semicolons_and_backslashes_are_escaped_and_round_trip(location: str) -> None:
    data = invite(dataclasses.replace(WINTER, location=location))
    (line,) = [line for line in data.decode().split("\r\n") if line.startswith("LOCATION:")]
    value = line.removeprefix("LOCATION:")
    # Every comma and semicolon in the value is escaped, and no backslash stands alone.
    index = 0
    while index < len(value):
        if value[index] == "\\":
            assert value[index + 1] in "\\,;nN"
            index += 2
            continue
        assert value[index] not in ",;"
        index += 1
    assert str(event_of(data)["LOCATION"]) == location


def test_the_description_escapes_a_link_with_commas_but_the_url_stays_whole() -> None:
    link = "https://meet.example.gov.uk/j?id=1,2;x=3"
    data = invite(dataclasses.replace(WINTER, link=link))
    lines = data.decode().split("\r\n")
    assert f"URL:{link}" in lines
    assert "DESCRIPTION:Join: https://meet.example.gov.uk/j?id=1\\,2\\;x=3" in lines
    event = event_of(data)
    assert str(event["URL"]) == link
    assert str(event["DESCRIPTION"]) == f"Join: {link}"


def test_the_attachment_is_a_calendar_request() -> None:
    attachment = ics.attachment(WINTER, organizer=ORGANIZER, stamp=STAMP)
    assert attachment.filename == "panel.ics"
    assert attachment.content_type == "text/calendar; method=REQUEST; charset=utf-8"
    assert attachment.content == invite(WINTER)


@pytest.mark.parametrize("kind", [Kind.PANEL_AGENDA, Kind.AGENDA_ADDENDUM, Kind.BOARD_REMINDER])
def test_meeting_emails_carry_the_invitation_through_mime_intact(kind: Kind) -> None:
    context = sample(kind)
    meeting = context.meeting  # type: ignore[union-attr]
    notifier = Notifier(sender=ORGANIZER)
    queued = notifier.message(Notice("k", "mel@example.org", context), now=STAMP)
    (attachment,) = queued.attachments
    # The recipient is named as the invitation's attendee (RFC 5546 wants one).
    assert attachment.content == ics.invitation(
        meeting, organizer=ORGANIZER, stamp=STAMP, attendee="mel@example.org"
    )
    assert b"ATTENDEE;ROLE=REQ-PARTICIPANT;RSVP=FALSE:mailto:mel@example.org\r\n" in (
        attachment.content
    )
    mail = queued.as_email(message_id=1, sender=ORGANIZER, created_at=STAMP)
    parsed = email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)
    (part,) = [part for part in parsed.walk() if part.get_content_type() == "text/calendar"]
    assert part.get_param("method") == "REQUEST"
    assert part.get_filename() == f"{meeting.body}.ics"
    content = part.get_payload(decode=True)
    assert content == attachment.content
    event = event_of(content)
    assert str(event["UID"]) == meeting.uid
    assert event.decoded("DTSTART") == meeting.starts_at


@pytest.mark.parametrize("kind", [Kind.PANEL_AGENDA, Kind.AGENDA_ADDENDUM, Kind.BOARD_REMINDER])
def test_the_message_carrying_an_invitation_is_fit_for_the_wire(kind: Kind) -> None:
    """RFC 5322 2.1.1 and 2.3: CRLF line endings only, no line over 998 octets (SMTP refuses
    longer lines). The invitation's base64 body must be broken into CRLF lines too."""
    queued = Notifier(sender=ORGANIZER).message(
        Notice("k", "mel@example.org", sample(kind)), now=STAMP
    )
    mail = queued.as_email(message_id=1, sender=ORGANIZER, created_at=STAMP)
    raw = mail.as_bytes()
    assert raw.endswith(b"\r\n")
    lines = raw[:-2].split(b"\r\n")
    assert [line[:60] for line in lines if b"\n" in line or b"\r" in line] == []
    assert [line[:60] for line in lines if len(line) > 998] == []


MEETING_KINDS = (
    Kind.PANEL_AGENDA,
    Kind.AGENDA_ADDENDUM,
    Kind.BOARD_REMINDER,
    Kind.MEETING_MOVED,
    Kind.MEETING_CANCELLED,
)


def test_a_cancelled_meeting_sends_a_cancellation_for_the_same_entry() -> None:
    cancelled = dataclasses.replace(WINTER, sequence=4, cancelled=True)
    queued = Notifier(sender=ORGANIZER).message(
        Notice("k", "mel@example.org", MeetingCancelled(meeting=cancelled)), now=STAMP
    )
    calendar = parse(queued.attachments[0].content)
    assert str(calendar["METHOD"]) == "CANCEL"
    event = calendar.walk("VEVENT")[0]
    assert str(event["UID"]) == WINTER.uid
    assert int(event["SEQUENCE"]) == 4
    assert str(event["STATUS"]) == "CANCELLED"


def test_emails_without_a_meeting_have_no_invitation() -> None:
    for kind in Kind:
        if kind in MEETING_KINDS:
            continue
        queued = Notifier().message(Notice("k", "lee@example.org", sample(kind)), now=STAMP)
        assert queued.attachments == ()


def test_a_moved_meeting_queued_again_updates_the_same_calendar_entry() -> None:
    notifier = Notifier(sender=ORGANIZER)
    moved = dataclasses.replace(WINTER, starts_at=WINTER.starts_at + timedelta(hours=2), sequence=3)
    before, after = (
        notifier.message(
            Notice(f"k{n}", "mel@example.org", AgendaAddendum(meeting=m, added=("CF-2026-0001",))),
            now=STAMP,
        ).attachments[0]
        for n, m in enumerate((WINTER, moved))
    )
    first, second = event_of(before.content), event_of(after.content)
    assert str(first["UID"]) == str(second["UID"])
    assert second.decoded("SEQUENCE") > first.decoded("SEQUENCE")
    assert second.decoded("DTSTART") - first.decoded("DTSTART") == timedelta(hours=2)
