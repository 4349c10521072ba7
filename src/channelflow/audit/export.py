"""`channelflow audit export`: a bundle an inspector can check without the database.

One pass over the trail, in order and in constant memory except for the Merkle tree's
32-byte hashes: every event is checked (hash, link, MAC) and becomes a leaf of the tree;
events in scope are written as canonical JSON lines and spreadsheet rows as they go by. The
signed checkpoint commits to the tree's root and to the scope (for each case, how many events
it has in the range and the newest one's hash), so a subset proves itself genuine (inclusion
proofs) and complete (the counts), and earlier exports' tree sizes get consistency proofs.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from array import array
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, distinct, func, select, true
from sqlmodel import col

from channelflow import clock
from channelflow.audit import bundle, chain, merkle
from channelflow.audit.bundle import BagWriter, HashingFile, canonical, hashed_line
from channelflow.audit.canonical import GENESIS_HASH, format_time
from channelflow.audit.chain import EventDraft
from channelflow.audit.keys import AuditKey
from channelflow.audit.report import (
    MAX_PRINTED_CASES,
    MAX_PRINTED_EVENTS,
    ReportData,
    write_report,
)
from channelflow.audit.signing import Checkpoint, SigningKey, sign_checkpoint
from channelflow.audit.walk import fetch_batches, range_query
from channelflow.exceptions import IntegrityFailure, InvalidInput, PermissionDenied
from channelflow.folders import new_output, publish, staging_beside
from channelflow.states import Role
from channelflow.store.db import read_session, write_session
from channelflow.store.models import AccessLog, AuditEvent, Person, Referral
from channelflow.workflow import policy
from channelflow.workflow.engine import Workflow, log_access

EXPORT_ENTITY = "export"
EXPORT_EVENT = "export"
# The entity of the signing key's rotations (`Runtime.rotate_signing_key` writes them).
ROTATION_ENTITY = "signing_key"
_EXPORT_BATCH = 2000
_audit = AuditEvent.__table__  # type: ignore[attr-defined]
_access = AccessLog.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Selection:
    """What an export covers: events recorded from ``first_day`` to ``last_day`` (local
    dates, both included), of the listed ``cases`` (all entities when empty)."""

    first_day: date | None = None
    last_day: date | None = None
    cases: tuple[str, ...] = ()
    personal_data: bool = False

    @property
    def whole_trail(self) -> bool:
        return self.first_day is None and self.last_day is None and not self.cases

    def recorded_bounds(self) -> tuple[str | None, str | None]:
        """The range as the trail's own fixed-width UTC text: [start, end)."""
        start = end = None
        if self.first_day is not None:
            start = format_time(datetime.combine(self.first_day, time(), clock.LOCAL_ZONE))
        if self.last_day is not None:
            following = self.last_day + timedelta(days=1)
            end = format_time(datetime.combine(following, time(), clock.LOCAL_ZONE))
        return start, end

    def as_dict(self) -> dict[str, Any]:
        start, end = self.recorded_bounds()
        return {
            "from": self.first_day.isoformat() if self.first_day else None,
            "to": self.last_day.isoformat() if self.last_day else None,
            # The dates as the trail's recording times (UTC), as the verifier compares them.
            "recorded_bounds": {"start": start, "end": end},
            "cases": list(self.cases) or None,
            "personal_data": self.personal_data,
        }


@dataclass(slots=True)
class _CaseTally:
    count: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    latest_hash: str | None = None


class _Scan:
    """One pass over the whole trail, in order: every event is checked (hash, link, MAC) and
    becomes a leaf of the Merkle tree; those in scope are written as they go by."""

    def __init__(
        self,
        root: Path,
        selection: Selection,
        key: AuditKey,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.selection = selection
        self.key = key
        self.progress = progress
        self.events = HashingFile(root, bundle.EVENTS, background=True)
        self.sheet = HashingFile(root, bundle.EVENTS_CSV, background=True)
        self.tree = merkle.Tree()
        # Positions for inclusion proofs (a whole-trail export needs none: the verifier
        # rebuilds the tree from every leaf).
        self.chosen = array("q")
        # Per-case completeness, signed for any export but the whole trail.
        self.tallies: dict[str, _CaseTally] = {c: _CaseTally() for c in selection.cases}
        self.seen_cases: set[str] = set()
        # Timelines for the PDF, given up (None) once there are too many to print.
        self.timelines: dict[str, list[dict[str, Any]]] | None = {}
        # The other events (users, meetings, toolkit, exports), likewise.
        self.others: list[dict[str, Any]] | None = []
        self.count = 0
        self.first_seq: int | None = None
        self.last_seq: int | None = None

    def run(self, batches: Iterator[list[Any]]) -> None:
        start, end = self.selection.recorded_bounds()
        cases = set(self.selection.cases)
        whole = self.selection.whole_trail
        append_leaf, event_leaf, mac = self.tree.append, merkle.event_leaf, self.key.mac
        self.sheet.write(bundle.CSV_HEADER)
        csv_line = bundle.csv_line
        previous, expected = GENESIS_HASH, 1
        bounded = start is not None or end is not None
        for batch in batches:
            lines: list[str] = []
            cells: list[str] = []
            # A whole trail's cases need no tallies once the timelines are too long to print.
            tallying = not whole or self.timelines is not None or self.others is not None
            for row in batch:
                seq = row[0]
                digest, line = hashed_line(row)
                if digest != row[13] or row[12] != previous or seq != expected:
                    raise IntegrityFailure(
                        f"audit event {expected} fails verification; run `channelflow audit "
                        "verify` before exporting",
                        sequence=expected,
                    )
                if mac(digest) != row[14]:
                    raise IntegrityFailure(
                        f"audit event {seq} is not signed by this database's audit key",
                        sequence=seq,
                    )
                previous, expected = digest, seq + 1
                append_leaf(event_leaf(digest))
                if bounded and (
                    (start is not None and row[9] < start) or (end is not None and row[9] >= end)
                ):
                    continue
                entity_type, entity_id = row[1], row[2]
                if cases and (entity_type != chain.REFERRAL_ENTITY or entity_id not in cases):
                    continue
                lines.append(line)
                cells.append(csv_line(row))
                if not whole:
                    self.chosen.append(seq)
                if self.first_seq is None:
                    self.first_seq = seq
                self.last_seq = seq
                self.count += 1
                if not tallying:
                    continue
                if entity_type == chain.REFERRAL_ENTITY:
                    self._tally(entity_id, row, digest)
                elif self.others is not None:
                    self.others.append(_timeline_entry(row))
                    if self.count > MAX_PRINTED_EVENTS:
                        self.others = None
            self.events.write("".join(lines))
            self.sheet.write("".join(cells))
            if self.progress is not None:
                self.progress(self.tree.size)

    def _tally(self, case: str, row: tuple[Any, ...], digest: str) -> None:
        # A whole trail proves itself complete by its full tree, and its cases are counted in
        # SQL; a part signs each case's count and newest event.
        if not self.selection.whole_trail:
            self.seen_cases.add(case)
            tally = self.tallies.get(case) or self.tallies.setdefault(case, _CaseTally())
            tally.count += 1
            if tally.first_seq is None:
                tally.first_seq = row[0]
            tally.last_seq, tally.latest_hash = row[0], digest
        if self.timelines is not None:
            self.timelines.setdefault(case, []).append(_timeline_entry(row))
            if self.count > MAX_PRINTED_EVENTS or len(self.timelines) > MAX_PRINTED_CASES:
                self.timelines = self.others = None


@dataclass
class ExportResult:
    path: Path
    tree_size: int
    root: str
    events: int
    cases: int
    export_id: str
    fingerprint: str


class Exporter:
    def __init__(
        self,
        workflow: Workflow,
        signing_key: SigningKey,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.workflow = workflow
        self.signing_key = signing_key
        self.origin = f"channelflow/{workflow.key.key_id}"
        self.progress = progress

    def export(
        self, out: Path, selection: Selection, *, by: str | None, as_zip: bool = False
    ) -> ExportResult:
        target = out.with_name(out.name + ".zip") if as_zip and out.suffix != ".zip" else out
        target = new_output(target, folder=not as_zip)
        actor_name, actor_role = self._authorise(selection, by)
        building = staging_beside(target)
        try:
            result = self._write(building, selection, actor_name)
            self._record(result, selection, actor_name, actor_role)
            if as_zip:
                _zip(building, target)
                shutil.rmtree(building)
            else:
                publish(building, target)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        result.path = target
        return result

    def _authorise(self, selection: Selection, by: str | None) -> tuple[str, str]:
        action = "audit.export"
        workflow = self.workflow
        with workflow.denials_logged(by, action), write_session(workflow.engine) as session:
            actor = workflow.actor(session, by, action=action, allowed=policy.AUDIT_EXPORTERS)
            if selection.personal_data and not policy.may_read_personal_data(Role(actor.role)):
                raise PermissionDenied(
                    f"{actor.name} ({actor.role}) may not export personal details; "
                    "leave out --include-personal-data"
                )
            known = set(
                session.execute(
                    select(col(Referral.reference)).where(
                        col(Referral.reference).in_(selection.cases)
                    )
                ).scalars()
            )
            unknown = [reference for reference in selection.cases if reference not in known]
            if unknown:
                raise InvalidInput(f"no referral has the reference {unknown[0]}")
            return actor.name, actor.role

    def _write(self, root: Path, selection: Selection, exported_by: str) -> ExportResult:
        bag = BagWriter(root)
        scan = _Scan(root, selection, self.workflow.key, self.progress)
        with read_session(self.workflow.engine) as session:
            connection = session.connection()
            try:
                with closing(self._batches(connection)) as batches:
                    scan.run(batches)
            except BaseException:
                scan.events.abandon()
                scan.sheet.abandon()
                raise
            tree, tallies = scan.tree, scan.tallies
            size, root_hash = tree.size, tree.root()
            bag.payload += [scan.events.close(), scan.sheet.close()]
            if not selection.whole_trail:
                bag.payload.append(self._proofs(root, tree, scan.chosen))
            earlier = self._earlier_exports(connection, tree)
            bag.payload.append(_consistency(root, tree, earlier))
            # The tree is the export's one big structure; the report does not need it.
            del tree
            scan.tree = merkle.Tree()
            cases_seen = (
                _referrals_in_trail(connection, size)
                if selection.whole_trail
                else len(scan.seen_cases)
            )
            bag.payload.append(self._access_log(root, connection, selection))
            bag.payload.append(_rotations(root, connection, size))
            if selection.personal_data:
                chosen_cases = None if selection.whole_trail else sorted(scan.seen_cases)
                bag.payload.append(_people(root, connection, chosen_cases))
            scope = {
                "format": bundle.FORMAT,
                "origin": self.origin,
                "tree_size": size,
                "root": root_hash.hex(),
                "selection": selection.as_dict(),
                "completeness": {
                    "events": scan.count,
                    "first_seq": scan.first_seq,
                    "last_seq": scan.last_seq,
                    "cases": {
                        case: {
                            "count": t.count,
                            "first_seq": t.first_seq,
                            "last_seq": t.last_seq,
                            "latest_hash": t.latest_hash,
                        }
                        for case, t in sorted(tallies.items())
                    },
                },
                "earlier_exports": [{"size": m, "root": r.hex()} for m, r in earlier],
                "exported_at": format_time(clock.now()),
                "exported_by": exported_by,
            }
        report = ReportData(
            origin=self.origin,
            scope=scope,
            timelines=scan.timelines if scan.others is not None else None,
            others=scan.others,
            cases=cases_seen,
            access_summary=_access_summary(root / bundle.ACCESS_LOG),
            fingerprint=self.signing_key.public.fingerprint,
        )
        bag.payload.append(write_report(root, report))
        export_id = f"export-{size}-{root_hash.hex()[:12]}"
        # The tag files an inspector reads are signed too (through the scope), so a changed
        # README cannot send them to another fingerprint even with the manifests redone.
        bag.add_tag(bundle.README, _readme(self.origin, self.signing_key.public.fingerprint))
        bag.describe(
            {
                "Source-Organization": "channelflow",
                "External-Identifier": export_id,
                "Bagging-Date": clock.today().isoformat(),
                "External-Description": "channelflow audit trail export; see README.txt",
            }
        )
        scope["files"] = {
            d.name: {"sha256": d.sha256, "bytes": d.size} for d in [*bag.payload, *bag.tags]
        }
        bag.add_tag(bundle.SCOPE, canonical(scope) + "\n")
        checkpoint = Checkpoint(
            origin=self.origin,
            size=size,
            root=root_hash,
            extensions=(f"scope sha256:{bag.tags[-1].sha256}",),
        )
        bag.add_tag(bundle.CHECKPOINT, sign_checkpoint(checkpoint, self.signing_key, self.origin))
        bag.add_tag(bundle.PUBLIC_KEY, self.signing_key.public.to_text(self.origin) + "\n")
        bag.finish()
        return ExportResult(
            path=root,
            tree_size=size,
            root=root_hash.hex(),
            events=scan.count,
            cases=cases_seen,
            export_id=export_id,
            fingerprint=self.signing_key.public.fingerprint,
        )

    def _batches(self, connection: Connection) -> Generator[list[Any], None, None]:
        """The whole trail in order, as plain tuples, one batch in memory at a time."""
        connection.exec_driver_sql("SELECT 1")  # the transaction must have begun
        driver = connection.connection.driver_connection
        assert driver is not None
        postgres = connection.dialect.name == "postgresql"
        cursor = driver.cursor(name="channelflow_export") if postgres else driver.cursor()
        try:
            # Smaller batches than verify's: each batch's lines and rows are alive at once.
            query = range_query(upper_bound=False).format(first=1)
            yield from fetch_batches(cursor, query, size=_EXPORT_BATCH)
        finally:
            cursor.close()

    def _proofs(self, root: Path, tree: merkle.Tree, chosen: array[int]) -> bundle.FileDigest:
        proofs = HashingFile(root, bundle.PROOFS)
        for seq in chosen:
            path = tree.inclusion_proof(seq - 1)
            proofs.write(f'{{"proof":{canonical([p.hex() for p in path])},"seq":{seq}}}\n')
        return proofs.close()

    def _earlier_exports(
        self, connection: Connection, tree: merkle.Tree
    ) -> list[tuple[int, bytes]]:
        """Earlier exports' tree sizes and roots, checked against this tree: a trail rewritten
        since then has a different root for the same size."""
        found: dict[int, bytes] = {}
        rows = connection.execute(
            select(_audit.c.seq, _audit.c.data).where(
                _audit.c.entity_type == EXPORT_ENTITY,
                _audit.c.event == EXPORT_EVENT,
                _audit.c.seq <= tree.size,
            )
        ).all()
        for seq, data in rows:
            recorded = _json(data)
            size, root_hex = int(recorded["tree_size"]), str(recorded["root"])
            if 0 < size <= tree.size and tree.root(size).hex() != root_hex:
                raise IntegrityFailure(
                    f"the trail's first {size} events differ from what export event {seq} "
                    "recorded: the trail was rewritten since then",
                    sequence=seq,
                )
            found[size] = bytes.fromhex(root_hex)
        return sorted(found.items())

    def _access_log(
        self,
        root: Path,
        connection: Connection,
        selection: Selection,
    ) -> bundle.FileDigest:
        query = select(_access).order_by(_access.c.id)
        if selection.first_day is not None:
            query = query.where(
                _access.c.at >= datetime.combine(selection.first_day, time(), clock.LOCAL_ZONE)
            )
        if selection.last_day is not None:
            following = selection.last_day + timedelta(days=1)
            query = query.where(
                _access.c.at < datetime.combine(following, time(), clock.LOCAL_ZONE)
            )
        if selection.cases:
            query = query.where(_access.c.entity_id.in_(selection.cases))
        log = HashingFile(root, bundle.ACCESS_LOG)
        for row in connection.execute(query):
            log.write(
                canonical(
                    {
                        "id": row.id,
                        "at": format_time(row.at),
                        "actor": row.actor,
                        "role": row.role,
                        "action": row.action,
                        "entity_type": row.entity_type,
                        "entity_id": row.entity_id,
                        "allowed": bool(row.allowed),
                    }
                )
                + "\n"
            )
        return log.close()

    def _record(self, result: ExportResult, selection: Selection, actor: str, role: str) -> None:
        """The export goes into the trail (its tree size is what later exports prove
        consistency from) and into the access log."""
        with write_session(self.workflow.engine) as session:
            draft = EventDraft(
                EXPORT_ENTITY,
                result.export_id,
                EXPORT_EVENT,
                None,
                None,
                actor,
                role,
                clock.now(),
                data={
                    "tree_size": result.tree_size,
                    "root": result.root,
                    "events": result.events,
                    "cases": result.cases,
                    "selection": selection.as_dict(),
                    "signing_key": result.fingerprint,
                },
            )
            chain.append(session.connection(), [draft], key=self.workflow.key)
            log_access(session, actor, "audit.export", None, allowed=True, role=role)


def _rotations(root: Path, connection: Connection, size: int) -> bundle.FileDigest:
    """Every signing key change so far, each signed by the key it replaced: how a bundle
    signed by a newer key is tied to an earlier one (`audit verify --since`)."""
    file = HashingFile(root, bundle.KEY_ROTATIONS)
    rows = connection.execute(
        select(_audit.c.seq, _audit.c.data)
        .where(_audit.c.entity_type == ROTATION_ENTITY, _audit.c.seq <= size)
        .order_by(_audit.c.seq)
    ).all()
    for seq, data in rows:
        recorded = _json(data)
        file.write(
            canonical(
                {
                    "seq": seq,
                    "old": recorded["old"],
                    "new": recorded["new"],
                    "statement": recorded["statement"],
                }
            )
            + "\n"
        )
    return file.close()


def _referrals_in_trail(connection: Connection, size: int) -> int:
    return int(
        connection.execute(
            select(func.count(distinct(_audit.c.entity_id))).where(
                _audit.c.entity_type == chain.REFERRAL_ENTITY, _audit.c.seq <= size
            )
        ).scalar_one()
    )


def _timeline_entry(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "seq": row[0],
        "entity": f"{row[1]} {row[2]}",
        "occurred_at": row[8],
        "event": row[3],
        "from": row[4],
        "to": row[5],
        "actor": row[6],
        "role": row[7],
        "reason": row[10],
    }


def _consistency(
    root: Path, tree: merkle.Tree, earlier: list[tuple[int, bytes]]
) -> bundle.FileDigest:
    file = HashingFile(root, bundle.CONSISTENCY)
    for size, old_root in earlier:
        proof = tree.consistency_proof(size)
        file.write(
            f'{{"proof":{canonical([p.hex() for p in proof])},"root":"{old_root.hex()}",'
            f'"size":{size}}}\n'
        )
    return file.close()


def _people(root: Path, connection: Connection, references: list[str] | None) -> bundle.FileDigest:
    """The personal details behind the exported referrals (only with --include-personal-data)."""
    referral, person = Referral.__table__, Person.__table__  # type: ignore[attr-defined]
    rows = connection.execute(
        select(
            referral.c.reference,
            person.c.full_name,
            person.c.date_of_birth,
            person.c.address,
            person.c.school,
        )
        .select_from(referral.outerjoin(person, person.c.id == referral.c.person_id))
        .where(referral.c.reference.in_(references) if references is not None else true())
        .order_by(referral.c.reference)
        .execution_options(stream_results=True)
    )
    file = HashingFile(root, bundle.PEOPLE)
    for row in rows:
        details = None
        if row.full_name is not None:
            details = {
                "full_name": row.full_name,
                "date_of_birth": row.date_of_birth.isoformat(),
                "address": row.address,
                "school": row.school,
            }
        # None: removed under the retention policy.
        file.write(canonical({"reference": row.reference, "person": details}) + "\n")
    return file.close()


def _access_summary(path: Path) -> list[tuple[str, str, int]]:
    counts: dict[tuple[str, str], int] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            entry = _json(line)
            name = (str(entry["actor"]), str(entry["action"]))
            counts[name] = counts.get(name, 0) + 1
    return [(actor, action, n) for (actor, action), n in sorted(counts.items())]


def _json(text: str) -> dict[str, Any]:
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


def _zip(folder: Path, target: Path) -> None:
    partial = target.with_name(f".{target.name}.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, Path(target.stem) / path.relative_to(folder))
    partial.rename(target)


def _readme(origin: str, fingerprint: str) -> str:
    return f"""channelflow audit trail export
==============================

This folder is a BagIt bag (RFC 8493). It holds events of the audit trail of the
channelflow database "{origin}", and the proofs that they are genuine and complete
for the scope written in scope.json.

What is here
  data/events.jsonl    the events, one per line: the master copy
  data/events.csv      the same events for a spreadsheet (cells that could run as a
                       formula start with an apostrophe; events.jsonl has the exact values)
  data/access-log.jsonl  who viewed, changed or exported what, for the same scope
  data/report.pdf      a readable report: scope, counts, one timeline per case
  data/proofs.jsonl    (a partial export) where each event sits in the signed trail
  data/consistency.jsonl proofs that the trail only grew since earlier exports
  scope.json           what this export covers, and how many events each case has in it
  checkpoint.txt       the trail's size and Merkle root (RFC 6962), signed (Ed25519)
  signing-key.pub      the public key that signed it; its SHA-256 fingerprint is
                       {fingerprint}

How to check it
  1. Every file is unchanged:   sha256sum -c manifest-sha256.txt   (run in this folder)
  2. Everything else, with channelflow installed (no database needed):
         channelflow audit verify THIS_FOLDER --fingerprint {fingerprint}
     Get the fingerprint from the council by a separate channel, not from this folder.
     With an earlier export of the same trail, add --since EARLIER_FOLDER to check that
     nothing was rewritten in between.
"""
