"""Sending through GOV.UK Notify with its official client.

Each kind of email has a Notify template whose subject is ``((subject))`` and whose body is
``((body))``; channelflow renders both and passes them as personalisation. Notify cannot send
calendar files (it takes only a few document types, and as links), so over Notify an agenda
carries its meeting details in the body only. The reference is the outbox id with a hash of
the idempotency key, so after an attempt whose outcome is unknown the transport can ask Notify
whether it already has the message before sending it again.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from channelflow.exceptions import (
    DeliveryOutcomeUnknown,
    MailConfigurationError,
    PermanentDeliveryFailure,
    TransportUnavailable,
)
from channelflow.notifications.kinds import Kind
from channelflow.notifications.message import Email, without_addresses
from channelflow.notifications.transports.base import Transport

if TYPE_CHECKING:
    from notifications_python_client.errors import APIError

# The Notify client (and requests under it) loads only when a NotifyTransport is made or
# used: every other command starts without paying for it.

DEFAULT_BASE_URL = "https://api.notifications.service.gov.uk"
DEFAULT_TEMPLATE = "default"
_API_KEY = re.compile(r".+-([0-9a-fA-F-]{36})-([0-9a-fA-F-]{36})")


def reference_for(email: Email) -> str:
    digest = hashlib.sha256(email.idempotency_key.encode()).hexdigest()[:16]
    return f"channelflow-{email.id}-{digest}"


def _is_api_key(value: str) -> bool:
    match = _API_KEY.fullmatch(value)
    if match is None:
        return False
    try:
        for part in match.groups():
            uuid.UUID(part)
    except ValueError:
        return False
    return True


def _never_sent(error: APIError) -> bool:
    """The request failed before reaching Notify: no connection was ever made."""
    import requests
    from urllib3.exceptions import NewConnectionError

    cause = error.__cause__
    if isinstance(
        cause,
        requests.exceptions.ConnectTimeout
        | requests.exceptions.SSLError
        | requests.exceptions.InvalidURL
        | requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema,
    ):
        return True
    if isinstance(cause, requests.exceptions.ConnectionError) and cause.args:
        return isinstance(getattr(cause.args[0], "reason", None), NewConnectionError)
    return False


def _problem(error: APIError) -> str:
    message: Any = error.message
    if isinstance(message, list):
        message = "; ".join(
            f"{item.get('error', '')}: {item.get('message', '')}"
            for item in message
            if isinstance(item, dict)
        )
    return without_addresses(" ".join(str(message).split()))[:300]


class NotifyTransport(Transport):
    name = "notify"

    def __init__(
        self,
        *,
        api_key: str,
        template_ids: Mapping[str, str],
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30.0,
    ) -> None:
        missing = [
            kind.value
            for kind in Kind
            if kind.value not in template_ids and DEFAULT_TEMPLATE not in template_ids
        ]
        if missing:
            raise MailConfigurationError(
                "GOV.UK Notify needs a template id for every kind of email; "
                f"set [notify.templates] {missing[0]} (or default) in the configuration file"
            )
        if not _is_api_key(api_key):
            raise MailConfigurationError(
                "CHANNELFLOW_NOTIFY_API_KEY is not a Notify API key "
                "(a key name, then the service id and the secret, both UUIDs)"
            )
        from notifications_python_client.notifications import NotificationsAPIClient

        self._client = NotificationsAPIClient(api_key, base_url=base_url, timeout=timeout)
        # The client logs Notify's error messages, which can quote the recipient's address;
        # channelflow logs each failure itself, with addresses removed.
        logging.getLogger("notifications_python_client").setLevel(logging.ERROR)
        self._template_ids = dict(template_ids)
        self._timeout = timeout

    @property
    def timeout(self) -> float:
        return self._timeout

    @property
    def longest_send(self) -> float:
        # A lookup and a post, each a connect and a read bounded by the timeout.
        return self._timeout * 5

    def template_for(self, kind: str) -> str:
        return self._template_ids.get(kind) or self._template_ids[DEFAULT_TEMPLATE]

    def send(
        self,
        email: Email,
        *,
        outcome_unknown: bool,
        while_waiting: Callable[[], None] = lambda: None,
    ) -> str:
        while_waiting()
        reference = reference_for(email)
        if outcome_unknown:
            found = self._already_sent(reference)
            if found is not None:
                return found
        from notifications_python_client.errors import APIError

        personalisation: dict[str, Any] = {"subject": email.subject, "body": email.text}
        try:
            response = self._client.send_email_notification(
                email_address=email.recipient,
                template_id=self.template_for(email.kind),
                personalisation=personalisation,
                reference=reference,
            )
        except APIError as error:
            raise self._classify(error) from None
        return str(response["id"])

    def _already_sent(self, reference: str) -> str | None:
        from notifications_python_client.errors import APIError

        try:
            found = self._client.get_all_notifications(template_type="email", reference=reference)
        except APIError as error:
            raise self._classify(error, looking_up=True) from None
        notifications = found.get("notifications") or []
        return str(notifications[0]["id"]) if notifications else None

    def close(self) -> None:
        self._client.request_session.close()

    def _classify(self, error: APIError, *, looking_up: bool = False) -> Exception:
        status = error.status_code
        if error.response is None and _never_sent(error):
            return TransportUnavailable(
                "cannot connect to GOV.UK Notify; check CHANNELFLOW_NOTIFY_BASE_URL and the network"
            )
        if error.response is None:
            # No answer at all: the request may have reached Notify.
            if looking_up:
                return TransportUnavailable("cannot reach GOV.UK Notify")
            return DeliveryOutcomeUnknown(
                "GOV.UK Notify did not answer; it may have received the message"
            )
        detail = _problem(error)
        if 200 <= status < 300:
            # Notify took the request but its answer could not be read.
            return DeliveryOutcomeUnknown(f"GOV.UK Notify's answer ({status}) was not readable")
        if status == 400:
            return PermanentDeliveryFailure(f"GOV.UK Notify refused the message (400): {detail}")
        if status == 403:
            return TransportUnavailable(
                f"GOV.UK Notify refused the API key (403): {detail}; check "
                "CHANNELFLOW_NOTIFY_API_KEY"
            )
        if status == 429:
            return TransportUnavailable(f"GOV.UK Notify's rate limit was reached (429): {detail}")
        if status >= 500:
            # Notify says a 500 was not sent, but a gateway's 502-504 may hide one that was:
            # checking the reference first costs one lookup and rules out a second copy.
            return DeliveryOutcomeUnknown(f"GOV.UK Notify failed ({status}): {detail}")
        # Notify documents no other status: most likely CHANNELFLOW_NOTIFY_BASE_URL is wrong,
        # which no message should die of.
        return TransportUnavailable(
            f"GOV.UK Notify answered {status}: {detail}; check CHANNELFLOW_NOTIFY_BASE_URL"
        )
