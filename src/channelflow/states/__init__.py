"""State machines, declared once as data."""

from channelflow.states.machine import referral_machine
from channelflow.states.referral import REFERRAL_LIFECYCLE
from channelflow.states.spec import EventSpec, Lifecycle, Role, SetKey, ValueKind

__all__ = [
    "REFERRAL_LIFECYCLE",
    "EventSpec",
    "Lifecycle",
    "Role",
    "SetKey",
    "ValueKind",
    "referral_machine",
]
