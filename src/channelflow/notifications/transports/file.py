"""The default transport: each message written as an RFC 5322 ``.eml`` file in a folder."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from channelflow.exceptions import TransportUnavailable
from channelflow.notifications.message import Email
from channelflow.notifications.transports.base import Transport

DEFAULT_MAIL_DIR = Path("mail")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_name(idempotency_key: str) -> str:
    """The idempotency key made safe for any file system, with a hash so it stays unique."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:10]
    return f"{_UNSAFE.sub('_', idempotency_key)[:150]}-{digest}.eml"


class FileTransport(Transport):
    name = "file"

    def __init__(self, *, directory: Path = DEFAULT_MAIL_DIR) -> None:
        self.directory = directory

    def send(
        self,
        email: Email,
        *,
        outcome_unknown: bool,
        while_waiting: Callable[[], None] = lambda: None,
    ) -> str:
        """Write atomically: a reader sees the whole file or none; a resend replaces it."""
        while_waiting()
        name = file_name(email.idempotency_key)
        content = email.as_bytes()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(
                dir=self.directory, prefix=".sending-", suffix=".tmp"
            )
            try:
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(content)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, self.directory / name)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            directory = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as error:
            raise TransportUnavailable(
                f"cannot write to the mail folder {self.directory} ({error.strerror})"
            ) from None
        return name
