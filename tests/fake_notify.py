"""A stand-in for GOV.UK Notify's API v2 on loopback, that can be told to fail in chosen ways.

It answers the way https://docs.notifications.service.gov.uk/python.html documents:

* every request must carry ``Authorization: Bearer <JWT>``, an HS256 token signed with the
  API key's secret whose ``iss`` is the service id and whose ``iat`` is within 30 seconds
  (401/403 ``AuthError`` otherwise);
* ``POST /v2/notifications/email`` checks the body (``email_address``, ``template_id``,
  ``personalisation``, ``reference``; nothing else), that the template exists, that every
  placeholder of the template is personalised, and that uploaded files are of a type Notify
  takes; it stores the notification and answers 201 with ``id``, ``reference``, ``content``,
  ``uri`` and ``template``;
* ``GET /v2/notifications`` (``template_type``, ``status``, ``reference``, ``older_than``)
  answers ``{"notifications": [...], "links": {...}}``, newest first; ``GET
  /v2/notifications/<id>`` answers one notification.

Errors have Notify's shape: ``{"status_code": 400, "errors": [{"error": ..., "message": ...}]}``.

Faults (``fail_next``, ``hang_next``, ``drop_next``) apply to the next requests in the order
they were queued, optionally only to one method. Every request is recorded in ``requests``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import socket
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt

FROM_EMAIL = "channelflow.test@notifications.service.gov.uk"
SUBJECT_AND_BODY = ("((subject))", "((body))")
# notifications_utils.file_types: what "send a file by email" accepts.
FILE_EXTENSIONS = (
    *("csv", "doc", "docx", "jpeg", "jpg", "json", "odt", "pdf", "png", "rtf", "txt", "xlsx"),
)
MAX_FILE = 2 * 1024 * 1024
TOKEN_BOUND = 30  # seconds of clock skew Notify allows in a token's iat

_PLACEHOLDER = re.compile(r"\(\(([^()]+)\)\)")
_EMAIL = re.compile(r"^[^@\s]+@([^@\s.]+\.)+[^@\s.]{2,}$")
_EMAIL_FIELDS = {"email_address", "template_id", "personalisation", "reference"}
_EMAIL_FIELDS |= {"email_reply_to_id", "one_click_unsubscribe_url", "scheduled_for"}


@dataclass(frozen=True)
class Template:
    id: str
    subject: str = SUBJECT_AND_BODY[0]
    body: str = SUBJECT_AND_BODY[1]
    version: int = 1

    def placeholders(self) -> list[str]:
        seen: dict[str, None] = {}
        for text in (self.subject, self.body):
            for name in _PLACEHOLDER.findall(text):
                seen.setdefault(name.strip(), None)
        return list(seen)


@dataclass
class Recorded:
    """One request as it arrived, and what it was answered (``None``: no answer)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    claims: dict[str, Any] | None = None
    status: int | None = None


@dataclass
class Stored:
    """A notification Notify accepted."""

    id: str
    reference: str | None
    email_address: str
    template: Template
    personalisation: dict[str, Any]
    subject: str
    body: str
    created_at: str
    status: str = "created"

    def as_json(self, base: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "reference": self.reference,
            "email_address": self.email_address,
            "phone_number": None,
            "line_1": None,
            "line_2": None,
            "line_3": None,
            "line_4": None,
            "line_5": None,
            "line_6": None,
            "line_7": None,
            "postcode": None,
            "postage": None,
            "type": "email",
            "status": self.status,
            "template": {
                "id": self.template.id,
                "version": self.template.version,
                "uri": f"{base}/v2/template/{self.template.id}/version/{self.template.version}",
            },
            "body": self.body,
            "subject": self.subject,
            "created_at": self.created_at,
            "created_by_name": None,
            "sent_at": None,
            "completed_at": None,
            "scheduled_for": None,
            "one_click_unsubscribe": None,
            "is_cost_data_ready": False,
            "cost_in_pounds": None,
            "cost_details": {},
        }


@dataclass(frozen=True)
class Fault:
    """``kind`` is "answer" (``status`` with a Notify error), "hang", "drop" or "ok" (as usual).

    "hang" and "drop" accept a POSTed notification first (store it), then give no answer:
    "hang" keeps the connection open until the client gives up, "drop" closes it at once.
    ``store`` makes an "answer" fault accept the notification too (a gateway's 502-504 after
    Notify took it). ``method`` limits the fault to requests of that method.
    """

    kind: str
    status: int = 0
    error: str = ""
    message: str = ""
    store: bool = False
    method: str | None = None


class NotifyError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message

    def body(self) -> dict[str, Any]:
        return {
            "status_code": self.status,
            "errors": [{"error": self.error, "message": self.message}],
        }


DEFAULT_ERRORS = {
    400: ("BadRequestError", "Can't send to this recipient using a team-only API key"),
    403: ("AuthError", "Invalid token: API key not found"),
    429: (
        "RateLimitError",
        "Exceeded rate limit for key type LIVE of 3000 requests per 60 seconds",
    ),
    500: ("Exception", "Internal server error"),
    502: ("Exception", "Bad gateway"),
}


class _Server(ThreadingHTTPServer):
    # Handler threads are joined on close, so no test leaves a thread behind.
    daemon_threads = False
    block_on_close = True

    def __init__(self, fake: FakeNotify) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Kept for a test to look at rather than printed (a client that gave up, say).
        self.fake.errors.append(sys.exc_info()[1])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    # An idle keep-alive connection is closed after this long (stop() closes it sooner).
    timeout = 10

    def setup(self) -> None:
        super().setup()
        self.server.fake._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record = Recorded(
            method=method,
            path=parts.path,
            query={name: values[-1] for name, values in parse_qs(parts.query).items()},
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        fake._record(record)
        fault = fake._take_fault(method)
        try:
            record.claims = fake._authorise(record.headers.get("authorization"))
            if fault is not None and fault.kind == "answer" and not fault.store:
                raise NotifyError(fault.status, fault.error, fault.message)
            status, answer = fake._route(record, fault)
        except NotifyError as error:
            status, answer = error.status, error.body()
        if fault is not None and fault.kind in ("hang", "drop"):
            if fault.kind == "hang":
                fake._release.wait(fake.hang_seconds)
            self.close_connection = True
            return
        self._answer(record, status, answer)

    def _answer(self, record: Recorded, status: int, answer: Any) -> None:
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if not self.server.fake.keep_alive:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)
        record.status = status


class FakeNotify:
    """Start with ``with FakeNotify() as notify``; send to ``notify.url`` with ``notify.api_key``.

    ``keep_alive`` keeps connections open between requests, as the real service does; off by
    default, so a client that never closes its connections leaks nothing into other tests.
    """

    def __init__(
        self,
        *,
        templates: tuple[str, ...] = (),
        keep_alive: bool = False,
        hang_seconds: float = 10.0,
        key_name: str = "channelflow_test",
    ) -> None:
        self.service_id = str(uuid.uuid4())
        self.secret = str(uuid.uuid4())
        self.key_name = key_name
        self.keep_alive = keep_alive
        self.hang_seconds = hang_seconds
        self._lock = threading.Condition()
        self.templates: dict[str, Template] = {}
        for template_id in templates:
            self.add_template(template_id)
        self.requests: list[Recorded] = []
        self.notifications: list[Stored] = []
        self.errors: list[BaseException | None] = []
        self._faults: deque[Fault] = deque()
        self._connections: set[socket.socket] = set()
        self._release = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- set-up ---------------------------------------------------------------------------

    @property
    def api_key(self) -> str:
        return f"{self.key_name}-{self.service_id}-{self.secret}"

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake Notify is not running"
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def add_template(
        self,
        template_id: str,
        *,
        subject: str = SUBJECT_AND_BODY[0],
        body: str = SUBJECT_AND_BODY[1],
    ) -> Template:
        template = Template(template_id, subject, body)
        with self._lock:
            self.templates[template_id] = template
        return template

    def fail_next(
        self,
        status: int,
        message: str | None = None,
        *,
        error: str | None = None,
        count: int = 1,
        after: int = 0,
        store: bool = False,
        method: str | None = None,
    ) -> None:
        """Answer ``count`` requests with ``status`` and a Notify error body, once ``after``
        requests have been answered as usual."""
        default_error, default_message = DEFAULT_ERRORS.get(status, ("Exception", "Error"))
        fault = Fault(
            "answer",
            status,
            error or default_error,
            default_message if message is None else message,
            store,
            method,
        )
        with self._lock:
            self._faults.extend([Fault("ok", method=method)] * after)
            self._faults.extend([fault] * count)

    def hang_next(self, *, method: str | None = "POST") -> None:
        """Accept the next request's notification, then answer nothing until the client gives
        up (or ``hang_seconds`` pass)."""
        with self._lock:
            self._faults.append(Fault("hang", method=method))

    def drop_next(self, *, method: str | None = "POST") -> None:
        """Accept the next request's notification, then close the connection unanswered."""
        with self._lock:
            self._faults.append(Fault("drop", method=method))

    # -- what happened ----------------------------------------------------------------------

    def recorded(self, method: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if method is None or r.method == method]

    @property
    def posts(self) -> list[Recorded]:
        return self.recorded("POST")

    @property
    def lookups(self) -> list[Recorded]:
        return self.recorded("GET")

    @property
    def stored(self) -> list[Stored]:
        with self._lock:
            return list(self.notifications)

    def open_connections(self, *, settle: float = 1.0) -> int:
        """How many client connections are still open, once closed ones had ``settle`` seconds
        to be noticed."""
        deadline = time.monotonic() + settle
        with self._lock:
            while self._connections and time.monotonic() < deadline:
                self._lock.wait(max(deadline - time.monotonic(), 0.0))
            return len(self._connections)

    # -- life -----------------------------------------------------------------------------

    def start(self) -> FakeNotify:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._release.set()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()  # joins every handler thread
        assert self._thread is not None
        self._thread.join(timeout=10)
        self._server = None

    def __enter__(self) -> FakeNotify:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the service, called from handler threads ---------------------------------------------

    def _opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)
            self._lock.notify_all()

    def _record(self, record: Recorded) -> None:
        with self._lock:
            self.requests.append(record)

    def _take_fault(self, method: str) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.method is None or fault.method == method:
                    del self._faults[index]
                    return fault
        return None

    def _authorise(self, header: str | None) -> dict[str, Any]:
        if not header:
            raise NotifyError(
                401, "AuthError", "Unauthorized: authentication token must be provided"
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise NotifyError(
                401, "AuthError", "Unauthorized: authentication bearer scheme must be used"
            )
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            header_fields = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise NotifyError(403, "AuthError", "Invalid token: signature") from None
        if header_fields.get("alg") != "HS256":
            raise NotifyError(403, "AuthError", "Invalid token: algorithm used is not HS256")
        if unverified.get("iss") != self.service_id:
            raise NotifyError(403, "AuthError", "Invalid token: service not found")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=self.secret,
                algorithms=["HS256"],
                leeway=TOKEN_BOUND,
                options={"require": ["iss", "iat"]},
            )
        except jwt.ImmatureSignatureError:
            raise NotifyError(
                403, "AuthError", "Error: Your system clock must be accurate to within 30 seconds"
            ) from None
        except jwt.InvalidTokenError:
            raise NotifyError(403, "AuthError", "Invalid token: API key not found") from None
        if abs(time.time() - int(claims["iat"])) > TOKEN_BOUND:
            raise NotifyError(
                403, "AuthError", "Error: Your system clock must be accurate to within 30 seconds"
            )
        return claims

    def _route(self, record: Recorded, fault: Fault | None) -> tuple[int, Any]:
        if record.method == "POST" and record.path == "/v2/notifications/email":
            stored = self._accept_email(record.body)
            if fault is not None and fault.kind == "answer":
                raise NotifyError(fault.status, fault.error, fault.message)
            return 201, self._created(stored)
        if record.method == "GET" and record.path == "/v2/notifications":
            return 200, self._list(record.query)
        match = re.fullmatch(r"/v2/notifications/([0-9a-f-]{36})", record.path)
        if record.method == "GET" and match:
            with self._lock:
                found = [n for n in self.notifications if n.id == match.group(1)]
            if not found:
                raise NotifyError(404, "NoResultFound", "No result found")
            return 200, found[0].as_json(self.url)
        raise NotifyError(404, "NotFound", "The requested URL was not found on the server.")

    def _accept_email(self, body: Any) -> Stored:
        if not isinstance(body, dict):
            raise NotifyError(400, "BadRequestError", "Invalid JSON supplied in POST data")
        for name in ("email_address", "template_id"):
            if name not in body:
                raise NotifyError(400, "ValidationError", f"{name} is a required property")
        unexpected = sorted(set(body) - _EMAIL_FIELDS)
        if unexpected:
            raise NotifyError(
                400,
                "ValidationError",
                f"Additional properties are not allowed ({unexpected[0]!r} was unexpected)",
            )
        template_id = body["template_id"]
        try:
            uuid.UUID(str(template_id))
        except ValueError:
            raise NotifyError(400, "ValidationError", "template_id is not a valid UUID") from None
        personalisation = body.get("personalisation") or {}
        if not isinstance(personalisation, dict):
            raise NotifyError(
                400, "ValidationError", f"personalisation {personalisation} is not of type object"
            )
        reference = body.get("reference")
        if reference is not None and not isinstance(reference, str):
            raise NotifyError(
                400, "ValidationError", f"reference {reference} is not of type string"
            )
        with self._lock:
            template = self.templates.get(str(template_id))
        if template is None:
            raise NotifyError(400, "BadRequestError", "Template not found")
        address = body["email_address"]
        if not isinstance(address, str) or not _EMAIL.match(address):
            raise NotifyError(400, "ValidationError", "email_address Not a valid email address")
        missing = [name for name in template.placeholders() if name not in personalisation]
        if missing:
            raise NotifyError(
                400, "BadRequestError", f"Missing personalisation: {', '.join(missing)}"
            )
        values = {name: self._value(name, value) for name, value in personalisation.items()}
        stored = Stored(
            id=str(uuid.uuid4()),
            reference=reference,
            email_address=address,
            template=template,
            personalisation=personalisation,
            subject=self._fill(template.subject, values),
            body=self._fill(template.body, values),
            created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        )
        with self._lock:
            self.notifications.append(stored)
        return stored

    def _value(self, name: str, value: Any) -> str:
        if not isinstance(value, dict) or "file" not in value:
            return str(value)
        try:
            content = base64.b64decode(value["file"], validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise NotifyError(400, "BadRequestError", "Document is not base64 encoded") from None
        if len(content) > MAX_FILE:
            raise NotifyError(400, "BadRequestError", "File is larger than 2MB")
        filename = value.get("filename")
        if filename is not None:
            if "." not in filename:
                raise NotifyError(
                    400,
                    "BadRequestError",
                    "`filename` must end with a file extension. For example, filename.csv",
                )
            extension = filename.rsplit(".", 1)[1].lower()
            if extension not in FILE_EXTENSIONS:
                supported = ", ".join(f"'.{ext}'" for ext in sorted(FILE_EXTENSIONS))
                raise NotifyError(
                    400,
                    "BadRequestError",
                    f"Unsupported file type '.{extension}'. Supported types are: {supported}",
                )
        return f"https://documents.service.gov.uk/d/{self.service_id}/{uuid.uuid4()}"

    @staticmethod
    def _fill(text: str, values: dict[str, str]) -> str:
        return _PLACEHOLDER.sub(lambda match: values[match.group(1).strip()], text)

    def _created(self, stored: Stored) -> dict[str, Any]:
        base = self.url
        return {
            "id": stored.id,
            "reference": stored.reference,
            "content": {"subject": stored.subject, "body": stored.body, "from_email": FROM_EMAIL},
            "uri": f"{base}/v2/notifications/{stored.id}",
            "template": {
                "id": stored.template.id,
                "version": stored.template.version,
                "uri": f"{base}/v2/template/{stored.template.id}",
            },
            "scheduled_for": None,
        }

    def _list(self, query: dict[str, str]) -> dict[str, Any]:
        template_type = query.get("template_type")
        if template_type is not None and template_type not in ("sms", "email", "letter"):
            raise NotifyError(
                400,
                "ValidationError",
                f"template_type {template_type} is not one of [sms, email, letter]",
            )
        with self._lock:
            found = list(reversed(self.notifications))
        if template_type not in (None, "email"):
            found = []
        if "reference" in query:
            found = [n for n in found if n.reference == query["reference"]]
        if "status" in query:
            found = [n for n in found if n.status == query["status"]]
        if "older_than" in query:
            ids = [n.id for n in found]
            found = (
                found[ids.index(query["older_than"]) + 1 :] if query["older_than"] in ids else []
            )
        base = f"{self.url}/v2/notifications"
        links = {"current": f"{base}?{urlencode(query)}"}
        if found:
            links["next"] = f"{base}?{urlencode({**query, 'older_than': found[-1].id})}"
        return {"notifications": [n.as_json(self.url) for n in found], "links": links}
