"""Settings from the environment (``CHANNELFLOW_*``), read only at the CLI's edge."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from channelflow.audit.keys import DEFAULT_KEY_FILE
from channelflow.audit.signing import DEFAULT_SIGNING_KEY_FILE
from channelflow.config import DEFAULT_CONFIG_FILE
from channelflow.exceptions import MailConfigurationError
from channelflow.notifications.message import validate_address
from channelflow.notifications.notifier import DEFAULT_SENDER
from channelflow.notifications.transports.file import DEFAULT_MAIL_DIR
from channelflow.notifications.transports.notify import DEFAULT_BASE_URL
from channelflow.notifications.transports.smtp import DEFAULT_PORTS, SmtpSettings, TLSMode
from channelflow.store.db import database_url
from channelflow.workflow.engine import DEFAULT_PREFIX

TRANSPORTS = ("file", "smtp", "notify")
MAX_TIMEOUT = 600.0

# Every variable channelflow reads, with what it means; shown in `channelflow --help`.
VARIABLES = {
    "CHANNELFLOW_DATABASE_URL": "database URL or SQLite file (default ./channelflow.db)",
    "CHANNELFLOW_KEY_FILE": f"audit key file (default ./{DEFAULT_KEY_FILE})",
    "CHANNELFLOW_SIGNING_KEY": (
        f"private key that signs audit exports (default ./{DEFAULT_SIGNING_KEY_FILE})"
    ),
    "CHANNELFLOW_USER": "default for --by",
    "CHANNELFLOW_REFERENCE_PREFIX": f"prefix of new referral references (default {DEFAULT_PREFIX})",
    "CHANNELFLOW_CONFIG": f"configuration file (default ./{DEFAULT_CONFIG_FILE}, if present)",
    "CHANNELFLOW_TEMPLATES_DIR": "folder of email templates that override the built-in ones",
    "CHANNELFLOW_MAIL_TRANSPORT": "how email is sent: file (default), smtp or notify",
    "CHANNELFLOW_MAIL_DIR": f"folder the file transport writes to (default ./{DEFAULT_MAIL_DIR})",
    "CHANNELFLOW_MAIL_FROM": f"sender address (default {DEFAULT_SENDER})",
    "CHANNELFLOW_SMTP_HOST": "SMTP server (required for the smtp transport)",
    "CHANNELFLOW_SMTP_PORT": "SMTP port (default 587; 465 with ssl, 25 with none)",
    "CHANNELFLOW_SMTP_TLS": "starttls (default), ssl or none",
    "CHANNELFLOW_SMTP_USER": "SMTP user name, if the server needs a login",
    "CHANNELFLOW_SMTP_PASSWORD": "SMTP password",
    "CHANNELFLOW_SMTP_TIMEOUT": "seconds to wait for the SMTP server (default 30)",
    "CHANNELFLOW_NOTIFY_API_KEY": "GOV.UK Notify API key (required for the notify transport)",
    "CHANNELFLOW_NOTIFY_BASE_URL": f"GOV.UK Notify API address (default {DEFAULT_BASE_URL})",
    "CHANNELFLOW_DEBUG": "set to 1 to see a traceback for an unexpected error",
}


@dataclass(frozen=True)
class MailSettings:
    transport: str
    sender: str
    mail_dir: Path
    smtp: SmtpSettings | None
    notify_api_key: str | None = field(repr=False)
    notify_base_url: str
    timeout: float

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> MailSettings:
        """Checked only when mail is used, so a mail typo never blocks other commands."""
        transport = (env.get("CHANNELFLOW_MAIL_TRANSPORT") or "file").strip().lower()
        if transport not in TRANSPORTS:
            raise MailConfigurationError(
                f"CHANNELFLOW_MAIL_TRANSPORT must be one of {', '.join(TRANSPORTS)}"
            )
        timeout = _number(env, "CHANNELFLOW_SMTP_TIMEOUT", 30.0)
        smtp = None
        if transport == "smtp":
            host = (env.get("CHANNELFLOW_SMTP_HOST") or "").strip()
            if not host:
                raise MailConfigurationError("the smtp transport needs CHANNELFLOW_SMTP_HOST")
            tls_name = (env.get("CHANNELFLOW_SMTP_TLS") or TLSMode.STARTTLS.value).strip().lower()
            try:
                tls = TLSMode(tls_name)
            except ValueError:
                raise MailConfigurationError(
                    "CHANNELFLOW_SMTP_TLS must be one of none, starttls or ssl"
                ) from None
            port_text = (env.get("CHANNELFLOW_SMTP_PORT") or str(DEFAULT_PORTS[tls])).strip()
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise MailConfigurationError("CHANNELFLOW_SMTP_PORT must be a port number")
            port = int(port_text)
            user = env.get("CHANNELFLOW_SMTP_USER") or None
            password = env.get("CHANNELFLOW_SMTP_PASSWORD") or None
            if user and password is None:
                raise MailConfigurationError(
                    "CHANNELFLOW_SMTP_USER is set but CHANNELFLOW_SMTP_PASSWORD is not"
                )
            if password and not user:
                raise MailConfigurationError(
                    "CHANNELFLOW_SMTP_PASSWORD is set but CHANNELFLOW_SMTP_USER is not"
                )
            smtp = SmtpSettings(host, port, tls, user, password, timeout)
        base_url = env.get("CHANNELFLOW_NOTIFY_BASE_URL") or DEFAULT_BASE_URL
        parsed = urlsplit(base_url)
        if parsed.scheme not in ("https", "http") or not parsed.hostname:
            raise MailConfigurationError(
                f"CHANNELFLOW_NOTIFY_BASE_URL must be an address such as {DEFAULT_BASE_URL}"
            )
        api_key = env.get("CHANNELFLOW_NOTIFY_API_KEY") or None
        if transport == "notify" and not api_key:
            raise MailConfigurationError("the notify transport needs CHANNELFLOW_NOTIFY_API_KEY")
        return cls(
            transport=transport,
            sender=validate_address(
                env.get("CHANNELFLOW_MAIL_FROM") or DEFAULT_SENDER,
                what="CHANNELFLOW_MAIL_FROM",
            ),
            mail_dir=Path(env.get("CHANNELFLOW_MAIL_DIR") or DEFAULT_MAIL_DIR),
            smtp=smtp,
            notify_api_key=api_key,
            notify_base_url=base_url,
            timeout=timeout,
        )


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise MailConfigurationError(f"{name} must be a number") from None
    if not math.isfinite(value):
        raise MailConfigurationError(f"{name} must be a number")
    if not 0 < value <= MAX_TIMEOUT:
        raise MailConfigurationError(f"{name} must be more than 0 and at most {MAX_TIMEOUT:g}")
    return value


@dataclass(frozen=True)
class Settings:
    database_url: str
    key_file: Path
    user: str | None
    reference_prefix: str
    config_file: Path | None = None
    signing_key_file: Path = Path(DEFAULT_SIGNING_KEY_FILE)
    templates_dir: Path | None = None
    # The CHANNELFLOW_* variables, for settings parsed only when used (mail).
    environment: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, *, db: str | None = None
    ) -> Settings:
        env = os.environ if environ is None else environ
        config = env.get("CHANNELFLOW_CONFIG")
        templates = env.get("CHANNELFLOW_TEMPLATES_DIR")
        return cls(
            database_url=database_url(db or env.get("CHANNELFLOW_DATABASE_URL")),
            key_file=Path(env.get("CHANNELFLOW_KEY_FILE") or DEFAULT_KEY_FILE),
            user=env.get("CHANNELFLOW_USER") or None,
            reference_prefix=env.get("CHANNELFLOW_REFERENCE_PREFIX") or DEFAULT_PREFIX,
            config_file=Path(config) if config else None,
            signing_key_file=Path(env.get("CHANNELFLOW_SIGNING_KEY") or DEFAULT_SIGNING_KEY_FILE),
            templates_dir=Path(templates) if templates else None,
            environment={name: value for name, value in env.items() if name in VARIABLES},
        )

    @property
    def mail_sender(self) -> str:
        return self.environment.get("CHANNELFLOW_MAIL_FROM") or DEFAULT_SENDER

    @property
    def mail(self) -> MailSettings:
        return MailSettings.from_environment(self.environment)
