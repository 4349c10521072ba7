"""`channelflow audit verify|export`."""

from __future__ import annotations

from pathlib import Path

import click

from channelflow import clock
from channelflow.audit import chain
from channelflow.audit.chain import EventDraft
from channelflow.audit.export import EXPORT_ENTITY, Exporter, Selection
from channelflow.audit.offline import BundleVerification, claimed_events, verify_bundle
from channelflow.audit.signing import PublicKey
from channelflow.audit.verify import count_events, verify_chain
from channelflow.cli.app import acting_user, common_options, json_option, runtime
from channelflow.cli.output import interactive, print_json, progress_bar
from channelflow.exceptions import IntegrityFailure, InvalidInput
from channelflow.runtime import Runtime
from channelflow.states import Role
from channelflow.store.db import write_session
from channelflow.workflow.dates import parse_date
from channelflow.workflow.engine import log_access


@click.group("audit")
def audit() -> None:
    """Check the tamper-evident audit trail, and export it for inspection."""


@audit.command("verify")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--since", type=click.Path(path_type=Path), help="an earlier bundle of the trail")
@click.option(
    "--key", "key_file", type=click.Path(path_type=Path), help="pin the signing key (its .pub)"
)
@click.option("--fingerprint", metavar="HEX", help="pin the signing key by its fingerprint")
@json_option
@common_options
def verify(
    path: Path | None,
    since: Path | None,
    key_file: Path | None,
    fingerprint: str | None,
    as_json: bool,
    db: str | None,
    by: str | None,
) -> None:
    """Re-walk the database's audit trail, or check an export bundle at PATH offline.

    Without PATH: every hash, link and MAC of the trail; exit 0 with the number of events
    and the head hash, exit 6 naming the first bad sequence number. With PATH (a folder or
    zip from `audit export`): no database is needed; exit 0 with a summary, exit 6 naming
    the first thing wrong. With --by (or CHANNELFLOW_USER) the check is recorded in the trail.
    """
    if path is None:
        if since or key_file or fingerprint:
            raise InvalidInput("--since, --key and --fingerprint check a bundle: give its PATH")
        _verify_database(as_json, db)
        return
    key = _pinned_key(key_file)
    rt = runtime(db)
    user = acting_user(rt, by)
    show = interactive(as_json)
    total = claimed_events(path) if show else 0
    try:
        with progress_bar("verifying", total, show=show and total > 0) as advance:
            result = verify_bundle(
                path, key=key, fingerprint=fingerprint, since=since, progress=advance
            )
    except IntegrityFailure as failure:
        if user:
            _record_verification(rt, user, path, None, failure.message)
        if as_json:
            print_json({"ok": False, "error": failure.message})
        raise
    if user:
        _record_verification(rt, user, path, result, None)
    if as_json:
        print_json(
            {
                "ok": True,
                "events": result.events,
                "cases": result.cases,
                "tree_size": result.tree_size,
                "root": result.root,
                "fingerprint": result.fingerprint,
                "key_pinned": result.key_pinned,
                "consistent_with": result.consistent_with,
            }
        )
    else:
        click.echo(result.describe())


def _pinned_key(key_file: Path | None) -> PublicKey | None:
    if key_file is None:
        return None
    try:
        text = key_file.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        raise InvalidInput(f"cannot read the public key file {key_file}") from None
    return PublicKey.from_text(text)[1]


def _verify_database(as_json: bool, db: str | None) -> None:
    rt = runtime(db)
    show = interactive(as_json)
    total = count_events(rt.engine) if show else 0
    try:
        with progress_bar("verifying", total, show=show) as advance:
            result = verify_chain(rt.engine, rt.key, progress=advance)
    except IntegrityFailure as failure:
        if as_json:
            print_json({"ok": False, "first_bad_seq": failure.sequence, "error": failure.message})
        raise
    if as_json:
        print_json({"ok": True, "count": result.count, "head": result.head})
    else:
        click.echo(f"audit trail verified: {result.count} events, head {result.head}")


def _record_verification(
    rt: Runtime,
    user: str,
    path: Path,
    result: BundleVerification | None,
    failure: str | None,
) -> None:
    """A verification made by a user of this database goes into its trail."""
    with write_session(rt.engine) as session:
        actor = rt.workflow.actor(session, user, action="audit.verify", allowed=frozenset(Role))
        data: dict[str, object] = {"bundle": path.name, "ok": failure is None}
        if result is not None:
            data |= {"tree_size": result.tree_size, "root": result.root, "events": result.events}
        else:
            data["failure"] = failure
        draft = EventDraft(
            EXPORT_ENTITY,
            path.name,
            "verify_export",
            None,
            None,
            actor.name,
            actor.role,
            clock.now(),
            data=data,
        )
        chain.append(session.connection(), [draft], key=rt.key)
        log_access(session, actor.name, "audit.verify", None, allowed=True, role=actor.role)


@audit.command("export")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--from", "first", metavar="DATE", help="events recorded on or after DATE")
@click.option("--to", "last", metavar="DATE", help="events recorded on or before DATE")
@click.option("--case", "cases", multiple=True, metavar="REF", help="only this case (repeatable)")
@click.option("--zip", "as_zip", is_flag=True, help="write OUT.zip instead of a folder")
@click.option(
    "--include-personal-data",
    "personal",
    is_flag=True,
    help="add the subjects' personal details (roles allowed to see them only)",
)
@json_option
@common_options
def export(
    out: Path,
    first: str | None,
    last: str | None,
    cases: tuple[str, ...],
    as_zip: bool,
    personal: bool,
    as_json: bool,
    db: str | None,
    by: str | None,
) -> None:
    """Write the audit trail (or part of it) as a bundle an inspector can verify offline.

    A BagIt folder with the events (JSON lines and CSV), the access log, a PDF report, proofs
    and a signed checkpoint; `channelflow audit verify OUT` checks it without the database.
    Needs --by an auditor, admin or chair.
    """
    selection = Selection(
        first_day=parse_date(first, what="--from") if first is not None else None,
        last_day=parse_date(last, what="--to") if last is not None else None,
        cases=tuple(dict.fromkeys(case.strip().upper() for case in cases)),
        personal_data=personal,
    )
    if selection.first_day and selection.last_day and selection.last_day < selection.first_day:
        raise InvalidInput("--to is before --from")
    rt = runtime(db)
    show = interactive(as_json)
    total = count_events(rt.engine) if show else 0
    with progress_bar("exporting", total, show=show) as advance:
        exporter = Exporter(rt.workflow, rt.signing_key, progress=advance)
        result = exporter.export(out, selection, by=acting_user(rt, by), as_zip=as_zip)
    if as_json:
        print_json(
            {
                "path": str(result.path),
                "events": result.events,
                "cases": result.cases,
                "tree_size": result.tree_size,
                "root": result.root,
                "fingerprint": result.fingerprint,
            }
        )
        return
    click.echo(
        f"exported {result.events} events of {result.cases} case(s) to {result.path} "
        f"(trail of {result.tree_size} events, signing key fingerprint {result.fingerprint})"
    )


@audit.command("rotate-key")
@json_option
@common_options
def rotate_key(as_json: bool, db: str | None, by: str | None) -> None:
    """Replace the key that signs exports (admin only).

    The old key signs a statement naming the new one; the statement goes into the trail and
    into every later bundle, so `audit verify NEW --since OLD` still ties them together.
    """
    rt = runtime(db)
    old, new = rt.rotate_signing_key(by=acting_user(rt, by))
    if as_json:
        print_json({"old": old, "new": new})
    else:
        click.echo(f"export signing key replaced: {old} -> {new}")


def register(group: click.Group) -> None:
    group.add_command(audit)
