"""`channelflow sar`."""

from __future__ import annotations

from pathlib import Path

import click

from channelflow import sar as subject_access
from channelflow.cli.app import acting_user, common_options, json_option, runtime
from channelflow.cli.output import print_json


@click.command("sar")
@click.argument("reference")
@click.argument("out", type=click.Path(path_type=Path))
@json_option
@common_options
def sar(reference: str, out: Path, as_json: bool, db: str | None, by: str | None) -> None:
    """Export everything held about the person behind referral REFERENCE into folder OUT.

    For a Subject Access Request (answer it within one month). OUT must not exist or be an
    empty folder; it receives sar.json (complete, exactly as stored) and sar.pdf (to read or
    print): personal details, the referral and every referral linked to it by re-referral,
    their full history, post-exit reviews, the emails sent about them and who has looked at
    them. Coordinators only. The export is recorded in the access log and the audit trail,
    with OUT's name: do not name the folder after the person.
    """
    rt = runtime(db)
    done = subject_access.export(rt.workflow, reference, out, by=acting_user(rt, by))
    files = [
        str(done.folder / name) for name in (subject_access.JSON_NAME, subject_access.PDF_NAME)
    ]
    if as_json:
        print_json(
            {
                "reference": done.reference,
                "folder": str(done.folder),
                "files": files,
                "sha256": done.sha256,
                "references": list(done.references),
                "events": done.events,
                "messages": done.messages,
                "access_log": done.accesses,
                "seq": done.seq,
            }
        )
        return
    linked = len(done.references) - 1
    click.echo(
        f"wrote the subject access export of {done.reference} to {done.folder}: "
        f"{len(done.references)} referral{'s' if len(done.references) != 1 else ''}"
        f"{f' ({linked} linked)' if linked else ''}, {done.events} events, "
        f"{done.messages} emails, {done.accesses} access log entries"
    )
    for path in files:
        click.echo(f"  {path}")
    click.echo(f"  sha256 of {subject_access.JSON_NAME}: {done.sha256} (audit event {done.seq})")


def register(group: click.Group) -> None:
    group.add_command(sar)
