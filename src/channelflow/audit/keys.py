"""The audit key: a secret kept outside the database that anchors the hash chain.

Every event's hash is also MACed with this key, so someone who can write to the database but
cannot read the key file cannot rewrite the trail and recompute the chain unnoticed. The same
key, under a different label, gives the keyed hashes that stand in for personal details.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from channelflow.exceptions import AuditKeyError

if TYPE_CHECKING:
    from _hashlib import HASH

DEFAULT_KEY_FILE = "channelflow.key"
_SHA256_BLOCK = 64
_HEADER = "channelflow-audit-key v1"


@dataclass(frozen=True)
class AuditKey:
    secret: bytes = field(repr=False)

    def _derive(self, label: bytes) -> bytes:
        return hmac.new(self.secret, label, hashlib.sha256).digest()

    @property
    def key_id(self) -> str:
        """A fingerprint safe to store in the database and show to users."""
        return self._derive(b"channelflow key id").hex()[:16]

    def mac(self, event_hash: str) -> str:
        """HMAC-SHA256 (RFC 2104) of an event hash under the chain key.

        Spelled out with pre-keyed SHA-256 states because verification runs it once per
        event and copying two hash states is twice as fast as ``hmac.digest``; a test checks
        it against the standard library.
        """
        inner_state, outer_state = self._chain_pads
        inner = inner_state.copy()
        inner.update(event_hash.encode("ascii"))
        outer = outer_state.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def personal_hash(self, field_name: str, value: str) -> str:
        message = f"{field_name}\x00{value}".encode()
        return "hmac-sha256:" + hmac.new(self._personal_key, message, hashlib.sha256).hexdigest()

    @cached_property
    def _chain_key(self) -> bytes:
        return self._derive(b"channelflow audit chain")

    @cached_property
    def _chain_pads(self) -> tuple[HASH, HASH]:
        block = self._chain_key.ljust(_SHA256_BLOCK, b"\0")
        return (
            hashlib.sha256(bytes(byte ^ 0x36 for byte in block)),
            hashlib.sha256(bytes(byte ^ 0x5C for byte in block)),
        )

    @cached_property
    def _personal_key(self) -> bytes:
        return self._derive(b"channelflow personal field")


def load_key(path: Path) -> AuditKey:
    try:
        lines = path.read_text("ascii").split()
    except FileNotFoundError:
        raise AuditKeyError(
            f"the audit key file {path} does not exist; run `channelflow init` or set "
            "CHANNELFLOW_KEY_FILE to the key that belongs to this database"
        ) from None
    except (OSError, UnicodeDecodeError):
        raise AuditKeyError(f"the audit key file {path} cannot be read") from None
    if len(lines) != 4 or " ".join(lines[:2]) != _HEADER or len(lines[3]) != 64:
        raise AuditKeyError(f"the audit key file {path} is not a channelflow audit key")
    try:
        return AuditKey(bytes.fromhex(lines[3]))
    except ValueError:
        raise AuditKeyError(f"the audit key file {path} is not a channelflow audit key") from None


def create_key(path: Path) -> AuditKey:
    """Write a new random key readable only by its owner; never overwrites an existing file."""
    key = AuditKey(secrets.token_bytes(32))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AuditKeyError(f"the audit key file {path} already exists") from None
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(f"{_HEADER}\nkey {key.secret.hex()}\n")
        handle.flush()
        os.fsync(handle.fileno())
    return key
