"""The tamper-evident audit trail: a hash chain anchored by a key kept outside the database."""

from channelflow.audit.chain import REFERRAL_ENTITY, EventDraft, append
from channelflow.audit.keys import AuditKey, create_key, load_key
from channelflow.audit.verify import Verification, verify_chain

__all__ = [
    "REFERRAL_ENTITY",
    "AuditKey",
    "EventDraft",
    "Verification",
    "append",
    "create_key",
    "load_key",
    "verify_chain",
]
