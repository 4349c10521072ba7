"""Calendar invitations (RFC 5545) for panel and board meetings.

The UID stays the same for a meeting however often it moves, and SEQUENCE goes up with each
move, so calendar programs update the invitation they already have instead of adding another.
Times are Europe/London wall-clock times with the zone's rules included.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from channelflow import clock
from channelflow.notifications.kinds import Meeting, body_name
from channelflow.notifications.message import Attachment

CONTENT_TYPE = "text/calendar; method=REQUEST; charset=utf-8"

_TIMEZONE = (
    "BEGIN:VTIMEZONE",
    "TZID:Europe/London",
    "BEGIN:DAYLIGHT",
    "TZOFFSETFROM:+0000",
    "TZOFFSETTO:+0100",
    "TZNAME:BST",
    "DTSTART:19700329T010000",
    "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
    "END:DAYLIGHT",
    "BEGIN:STANDARD",
    "TZOFFSETFROM:+0100",
    "TZOFFSETTO:+0000",
    "TZNAME:GMT",
    "DTSTART:19701025T020000",
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
    "END:STANDARD",
    "END:VTIMEZONE",
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _fold(line: str) -> list[str]:
    """Lines of at most 75 octets, continuations starting with a space (RFC 5545 3.1)."""
    encoded = line.encode("utf-8")
    if len(encoded) <= 75:
        return [line]
    pieces: list[str] = []
    current = ""
    limit = 75
    for char in line:
        if len((current + char).encode("utf-8")) > limit:
            pieces.append(current)
            current = " "
            limit = 75
        current += char
    pieces.append(current)
    return pieces


def _local(instant: datetime) -> str:
    return instant.astimezone(clock.LOCAL_ZONE).strftime("%Y%m%dT%H%M%S")


def _utc(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def invitation(
    meeting: Meeting, *, organizer: str, stamp: datetime, attendee: str | None = None
) -> bytes:
    """The .ics text for ``meeting``; ``stamp`` is when this version of it was issued.

    ``attendee`` is the recipient: a METHOD:REQUEST invitation names who it invites
    (RFC 5546), and calendar programs show it as an invitation only then.
    """
    title = body_name(meeting.body)
    ends_at = meeting.starts_at + timedelta(minutes=meeting.minutes)
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//channelflow//channelflow//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:CANCEL" if meeting.cancelled else "METHOD:REQUEST",
        *_TIMEZONE,
        "BEGIN:VEVENT",
        f"UID:{meeting.uid}",
        f"SEQUENCE:{meeting.sequence}",
        f"DTSTAMP:{_utc(stamp)}",
        f"DTSTART;TZID=Europe/London:{_local(meeting.starts_at)}",
        f"DTEND;TZID=Europe/London:{_local(ends_at)}",
        f"SUMMARY:{_escape(title)}",
        f"ORGANIZER:mailto:{organizer}",
        *([f"ATTENDEE;ROLE=REQ-PARTICIPANT;RSVP=FALSE:mailto:{attendee}"] if attendee else []),
        "STATUS:CANCELLED" if meeting.cancelled else "STATUS:CONFIRMED",
        "TRANSP:OPAQUE",
    ]
    if meeting.location:
        lines.append(f"LOCATION:{_escape(meeting.location)}")
    if meeting.link:
        lines.append(f"URL:{meeting.link}")
        lines.append(f"DESCRIPTION:{_escape('Join: ' + meeting.link)}")
    lines += ["END:VEVENT", "END:VCALENDAR"]
    folded = [piece for line in lines for piece in _fold(line)]
    return ("\r\n".join(folded) + "\r\n").encode("utf-8")


def attachment(
    meeting: Meeting, *, organizer: str, stamp: datetime, attendee: str | None = None
) -> Attachment:
    return Attachment(
        filename=f"{meeting.body}.ics",
        content_type=CONTENT_TYPE,
        content=invitation(meeting, organizer=organizer, stamp=stamp, attendee=attendee),
    )
