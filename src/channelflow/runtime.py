"""Opening a configured channelflow: database, audit key and workflow, checked together."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cached_property

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from channelflow import clock
from channelflow.audit import chain
from channelflow.audit.chain import EventDraft
from channelflow.audit.export import ROTATION_ENTITY
from channelflow.audit.keys import AuditKey, create_key, load_key
from channelflow.audit.signing import (
    SigningKey,
    create_signing_key,
    load_signing_key,
    rotation_statement,
)
from channelflow.config import Config, load_config
from channelflow.exceptions import AuditKeyError, ConfigurationError
from channelflow.meetings.book import MeetingBook
from channelflow.meetings.calendar import MeetingCalendar
from channelflow.notifications import Dispatcher, Notifier, Templates
from channelflow.notifications.transports import (
    FileTransport,
    NotifyTransport,
    SmtpTransport,
    Transport,
)
from channelflow.planning.planner import INITIALISED, Planner
from channelflow.settings import MailSettings, Settings
from channelflow.states import Role
from channelflow.store import schema
from channelflow.store.db import open_engine, read_session, write_session
from channelflow.store.models import AuditEvent, Meta
from channelflow.workflow.engine import Workflow
from channelflow.workflow.store_mapping import Writer

KEY_ID = "audit_key_id"
SIGNING_KEY = "export_signing_key"
KEY_MANAGERS = frozenset({Role.ADMIN})


@dataclass
class Runtime:
    settings: Settings
    _engines: list[Engine] = field(default_factory=list, repr=False)

    @cached_property
    def raw_engine(self) -> Engine:
        engine = open_engine(self.settings.database_url)
        self._engines.append(engine)
        return engine

    @cached_property
    def engine(self) -> Engine:
        """The engine, once the schema is known to be current."""
        schema.require_current(self.raw_engine)
        return self.raw_engine

    @cached_property
    def key(self) -> AuditKey:
        key = load_key(self.settings.key_file)
        with read_session(self.engine) as session:
            expected = session.get(Meta, KEY_ID)
        if expected is None or expected.value != key.key_id:
            raise AuditKeyError(
                f"the audit key file {self.settings.key_file} does not belong to this database"
            )
        return key

    @cached_property
    def signing_key(self) -> SigningKey:
        """The key that signs audit exports, once it is known to be this database's."""
        key = load_signing_key(self.settings.signing_key_file)
        with read_session(self.engine) as session:
            expected = session.get(Meta, SIGNING_KEY)
        if expected is None:
            raise AuditKeyError(
                "this database has no export signing key yet; run `channelflow init` to make one"
            )
        if expected.value != key.public.fingerprint:
            raise AuditKeyError(
                f"the signing key file {self.settings.signing_key_file} does not belong to "
                "this database"
            )
        return key

    @cached_property
    def workflow(self) -> Workflow:
        return Workflow(
            engine=self.engine,
            key=self.key,
            reference_prefix=self.settings.reference_prefix,
            notifier=self.notifier,
            next_panel=self.next_panel_after,
        )

    def next_panel_after(self, connection: Writer, day: date) -> date:
        """The first panel meeting after ``day`` on the configured calendar."""
        upcoming = MeetingCalendar.load(connection, self.config.panel).next_after(day)
        if upcoming is None:
            raise ConfigurationError("the panel calendar has no meeting in the coming year")
        return upcoming.day

    @cached_property
    def config(self) -> Config:
        return load_config(self.settings.config_file)

    @cached_property
    def mail(self) -> MailSettings:
        return self.settings.mail

    @cached_property
    def templates(self) -> Templates:
        return Templates(override_dir=self.settings.templates_dir)

    @cached_property
    def notifier(self) -> Notifier:
        return Notifier(templates=self.templates, sender=self.settings.mail_sender)

    def transport(self) -> Transport:
        mail = self.mail
        config = self.config  # checked whichever transport is used
        if mail.transport == "smtp":
            assert mail.smtp is not None
            return SmtpTransport(mail.smtp)
        if mail.transport == "notify":
            assert mail.notify_api_key is not None
            return NotifyTransport(
                api_key=mail.notify_api_key,
                template_ids=config.notify_templates,
                base_url=mail.notify_base_url,
                timeout=mail.timeout,
            )
        return FileTransport(directory=mail.mail_dir)

    @cached_property
    def meetings(self) -> MeetingBook:
        return MeetingBook(self.workflow, self.config)

    @cached_property
    def planner(self) -> Planner:
        return Planner(self.engine, self.config, self.notifier)

    def dispatcher(self) -> Dispatcher:
        return Dispatcher(engine=self.engine, transport=self.transport(), sender=self.mail.sender)

    def initialise(self) -> tuple[bool, bool]:
        """Create or upgrade the schema and bind the audit key; returns what was created."""
        schema.upgrade(self.raw_engine)
        path = self.settings.key_file
        with write_session(self.engine) as session:
            recorded = session.get(Meta, KEY_ID)
            if path.exists():
                key = load_key(path)
                if recorded is not None and recorded.value != key.key_id:
                    raise AuditKeyError(
                        f"the audit key file {path} does not belong to this database"
                    )
                created_key = False
            else:
                has_trail = session.execute(select(col(AuditEvent.seq)).limit(1)).first()
                if recorded is not None or has_trail:
                    raise AuditKeyError(
                        f"the audit key file {path} is missing, and this database's trail "
                        "was anchored with it; restore the key file or set CHANNELFLOW_KEY_FILE"
                    )
                key = create_key(path)
                created_key = True
            created_schema = recorded is None
            if recorded is None:
                session.add(Meta(key=KEY_ID, value=key.key_id))
            self._bind_signing_key(session)
            # Planning starts here: nothing that fell due before channelflow ran is sent.
            if session.get(Meta, INITIALISED) is None:
                session.add(Meta(key=INITIALISED, value=clock.now().isoformat()))
        return created_schema, created_key

    def rotate_signing_key(self, *, by: str | None) -> tuple[str, str]:
        """Replace the export signing key: the old key signs a statement naming the new one,
        kept in the trail, so bundles signed before and after can be tied together.

        The new key is written beside the old (``.new``) before the database changes, and
        takes the old file's place after; the old one is kept as ``.retired-<fingerprint>``.
        """
        old = self.signing_key
        path = self.settings.signing_key_file
        staged = path.with_name(path.name + ".new")
        staged.unlink(missing_ok=True)
        new = create_signing_key(staged)
        origin = f"channelflow/{self.key.key_id}"
        statement = rotation_statement(old, new.public, origin)
        workflow = self.workflow
        action = "audit.rotate_key"
        try:
            with workflow.denials_logged(by, action), write_session(self.engine) as session:
                actor = workflow.actor(session, by, action=action, allowed=KEY_MANAGERS)
                draft = EventDraft(
                    ROTATION_ENTITY,
                    new.public.fingerprint[:16],
                    "rotate_signing_key",
                    None,
                    None,
                    actor.name,
                    actor.role,
                    clock.now(),
                    data={
                        "old": old.public.fingerprint,
                        "new": new.public.fingerprint,
                        "statement": statement,
                    },
                )
                chain.append(session.connection(), [draft], key=self.key)
                recorded = session.get(Meta, SIGNING_KEY)
                assert recorded is not None
                recorded.value = new.public.fingerprint
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        path.rename(path.with_name(f"{path.name}.retired-{old.public.fingerprint[:16]}"))
        staged.rename(path)
        self.__dict__.pop("signing_key", None)
        return old.public.fingerprint, new.public.fingerprint

    def _bind_signing_key(self, session: Session) -> None:
        """Create the export signing key pair with the database (or on upgrade); the private
        key stays in its file, the database keeps the public key's fingerprint."""
        path = self.settings.signing_key_file
        recorded = session.get(Meta, SIGNING_KEY)
        if path.exists():
            key = load_signing_key(path)
            if recorded is not None and recorded.value != key.public.fingerprint:
                raise AuditKeyError(f"the signing key file {path} does not belong to this database")
        elif recorded is not None:
            raise AuditKeyError(
                f"the signing key file {path} is missing; restore it or set "
                "CHANNELFLOW_SIGNING_KEY (a new key must be announced by the old one)"
            )
        else:
            key = create_signing_key(path)
        if recorded is None:
            session.add(Meta(key=SIGNING_KEY, value=key.public.fingerprint))

    def close(self) -> None:
        for engine in self._engines:
            engine.dispose()
