"""Which changes to a referral send an email, and to whom.

Decided here, in the change's own transaction: the email is queued with the change or not
at all. Recipients are staff users; a user without an email address is reported, not skipped
silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select

from channelflow.notifications.kinds import CaseAssigned
from channelflow.notifications.notifier import Notice
from channelflow.states import referral as lc
from channelflow.store.db import DriverStatement
from channelflow.store.models import User
from channelflow.workflow.store_mapping import Writer

_users = User.__table__  # type: ignore[attr-defined]
_CONTACT = DriverStatement(
    select(_users.c.id, _users.c.email).where(_users.c.name == bindparam("name"))
)


@dataclass
class Notices:
    to_queue: list[Notice] = field(default_factory=list)
    # Users who should have been told but have no email address.
    no_email: list[str] = field(default_factory=list)


def notices_for_change(
    connection: Writer, *, reference: str, event: str, version: int, data: dict[str, Any]
) -> Notices:
    notices = Notices()
    if event == lc.ACCEPT:
        lead = str(data["lead"])
        contact = _CONTACT.first(connection, {"name": lead})
        if contact is None or not contact.email:
            notices.no_email.append(lead)
        else:
            notices.to_queue.append(
                Notice(
                    key=f"case_assigned:{reference}:v{version}:user:{contact.id}",
                    recipient=contact.email,
                    context=CaseAssigned(reference=reference),
                )
            )
    return notices
