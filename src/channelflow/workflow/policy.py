"""Need-to-know: which roles may read cases, personal details and users.

Who may fire each lifecycle event is part of the lifecycle's declaration in `states/`.
"""

from __future__ import annotations

from channelflow.states import Role

REFERRAL_CREATORS = frozenset({Role.POLICE, Role.COORDINATOR})
USER_MANAGERS = frozenset({Role.ADMIN})
# Everyone with a part in casework reads case records; an admin manages accounts only.
CASE_READERS = frozenset(
    {Role.POLICE, Role.COORDINATOR, Role.CHAIR, Role.MEMBER, Role.LEAD, Role.AUDITOR}
)
# An auditor checks what was done, not who it was done to.
PERSONAL_DATA_READERS = frozenset(
    {Role.POLICE, Role.COORDINATOR, Role.CHAIR, Role.MEMBER, Role.LEAD}
)


def reads_every_case(role: Role) -> bool:
    return role in {Role.POLICE, Role.COORDINATOR, Role.CHAIR, Role.AUDITOR}


def may_read_case(role: Role, user: str, *, lead: str | None, reached_panel: bool) -> bool:
    """Panel members see cases that came to panel; a case lead sees the cases they lead."""
    if reads_every_case(role):
        return True
    if role is Role.MEMBER:
        return reached_panel
    if role is Role.LEAD:
        return lead == user
    return False


def may_read_personal_data(role: Role) -> bool:
    return role in PERSONAL_DATA_READERS


# Who may add, move or cancel panel and board meetings, and change the toolkit.
MEETING_MANAGERS = frozenset({Role.COORDINATOR, Role.CHAIR})
TOOLKIT_MANAGERS = MEETING_MANAGERS
# Who removes personal details once their retention period has run out (reading none).
RETENTION_MANAGERS = frozenset({Role.ADMIN})
# Who answers subject access requests: an export of everything held about one person.
SUBJECT_ACCESS_EXPORTERS = frozenset({Role.COORDINATOR})

# Who may export the audit trail for inspection (personal details only for those who may read
# them: of these, the chair).
AUDIT_EXPORTERS = frozenset({Role.AUDITOR, Role.ADMIN, Role.CHAIR})
