"""Verifying an export bundle with nothing but the bundle: no database, no audit key.

The checks, in the order a failure is reported: the bag's manifests; the signing key (pinned
by the inspector, or the bundle's own, said so); the checkpoint's signature; the scope file
named by the checkpoint, and every data file against the hash the scope gives it (so a
recomputed manifest does not help); every event against its own hash and its place in the
signed Merkle tree (the whole tree rebuilt for a whole-trail export, an inclusion proof per
event otherwise); completeness for the scope; consistency proofs from earlier exports.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from channelflow.audit import bundle, merkle
from channelflow.audit.canonical import GENESIS_HASH, row_hash
from channelflow.audit.signing import (
    Checkpoint,
    PublicKey,
    open_checkpoint,
    scope_extension,
    verify_rotation,
)
from channelflow.exceptions import IntegrityFailure, InvalidInput

_EVENT_KEYS = frozenset(bundle.COLUMNS)


@dataclass
class BundleVerification:
    events: int
    cases: int
    tree_size: int
    root: str
    origin: str
    fingerprint: str
    key_pinned: bool
    selection: dict[str, Any]
    first_seq: int | None
    last_seq: int | None
    consistent_with: list[int] = field(default_factory=list)
    # The key was not pinned but matches (or rotates from) the earlier bundle's.
    tied_to_earlier: bool = False

    def describe(self) -> str:
        where = (
            f"audit events {self.first_seq}-{self.last_seq} of {self.tree_size}"
            if self.first_seq is not None
            else f"none of the {self.tree_size} audit events"
        )
        if self.key_pinned:
            key = "pinned"
        elif self.tied_to_earlier:
            key = "tied to the earlier bundle's key"
        else:
            key = "taken from the bundle itself: pin it"
        text = (
            f"bundle verified: {self.events} events of {self.cases} case(s), {where}; "
            f"signed by key {self.fingerprint[:16]}... ({key})"
        )
        if self.consistent_with:
            sizes = ", ".join(str(size) for size in self.consistent_with)
            text += f"; the trail only grew since the earlier export(s) of size {sizes}"
        return text


def _fail(message: str) -> IntegrityFailure:
    return IntegrityFailure(message)


def verify_bundle(
    path: Path,
    *,
    key: PublicKey | None = None,
    fingerprint: str | None = None,
    since: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> BundleVerification:
    with _opened(path) as root:
        result, checkpoint = _verify_root(root, key, fingerprint, progress)
    if since is not None:
        with _opened(since) as earlier_root:
            earlier_key = _public_key(earlier_root)
            earlier, earlier_checkpoint = _verify_root(earlier_root, earlier_key, None, None)
        if earlier_key.fingerprint != result.fingerprint:
            _check_rotations(path, earlier_key, result.fingerprint, checkpoint.origin)
        result.tied_to_earlier = True
        _check_growth(result, checkpoint, earlier_checkpoint, path)
        result.consistent_with.append(earlier.tree_size)
    return result


def _check_rotations(path: Path, earlier: PublicKey, fingerprint: str, origin: str) -> None:
    """A bundle signed by another key than the earlier bundle is accepted only through the
    chain of rotation statements it carries, each signed by the key it replaces."""
    current = earlier
    for number, line in _lines_of(path, bundle.KEY_ROTATIONS):
        if line.get("old") != current.fingerprint:
            continue
        statement = line.get("statement")
        if not isinstance(statement, str):
            raise _fail(f"{bundle.KEY_ROTATIONS} line {number} is malformed")
        current = verify_rotation(statement, current, origin)
        if current.fingerprint != line.get("new"):
            raise _fail(f"{bundle.KEY_ROTATIONS} line {number} names another key than it signs")
    if current.fingerprint != fingerprint:
        raise _fail(
            "this bundle is signed by a different key from the earlier bundle "
            f"({fingerprint[:16]}... instead of {earlier.fingerprint[:16]}...), and no rotation "
            "signed by the earlier key leads to it"
        )


def claimed_events(path: Path) -> int:
    """How many events the bundle says it holds (unchecked: for a progress bar only)."""
    try:
        with _opened(path) as root:
            scope = json.loads((root / bundle.SCOPE).read_bytes())
            return int(scope["completeness"]["events"])
    except (OSError, ValueError, KeyError, TypeError, IntegrityFailure, InvalidInput):
        return 0


def _bag_root_text(path: Path, name: str) -> str:
    with _opened(path) as root:
        return (root / name).read_text("utf-8")


@contextmanager
def _opened(path: Path) -> Iterator[Path]:
    """The bag's root folder: ``path`` itself, or a zip's one top folder unpacked."""
    if not path.exists():
        raise InvalidInput(f"{path} does not exist")
    if path.is_dir():
        yield path
        return
    if not zipfile.is_zipfile(path):
        raise _fail(f"{path} is neither an export folder nor a zip of one")
    with tempfile.TemporaryDirectory(prefix="channelflow-verify-") as scratch:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            tops = {PurePosixPath(name).parts[0] for name in names if name}
            if len(tops) != 1 or any(".." in PurePosixPath(n).parts for n in names):
                raise _fail(f"{path} does not hold one export folder")
            archive.extractall(scratch)
        yield Path(scratch) / tops.pop()


def _verify_root(
    root: Path,
    key: PublicKey | None,
    fingerprint: str | None,
    progress: Callable[[int], None] | None,
) -> tuple[BundleVerification, Checkpoint]:
    declaration = root / bundle.BAGIT
    if not declaration.is_file() or declaration.read_bytes() != bundle.BAGIT_DECLARATION.encode():
        raise _fail(f"{root} is not an export bundle: {bundle.BAGIT} is missing or wrong")
    digests = _check_manifest(root, bundle.MANIFEST, payload=True)
    digests |= _check_manifest(root, bundle.TAG_MANIFEST, payload=False)
    own_key = _public_key(root)
    if key is not None and key.fingerprint != own_key.fingerprint:
        raise _fail(
            f"{bundle.PUBLIC_KEY} is not the pinned key: the bundle was signed by "
            f"{own_key.fingerprint[:16]}..., not {key.fingerprint[:16]}..."
        )
    if fingerprint is not None and fingerprint.strip().lower() != own_key.fingerprint:
        raise _fail(
            f"{bundle.PUBLIC_KEY} does not have the fingerprint given: the bundle was signed "
            f"by {own_key.fingerprint[:16]}..."
        )
    note = _read(root, bundle.CHECKPOINT)
    origin = note.split("\n", 1)[0]
    try:
        checkpoint = open_checkpoint(note, own_key, origin)
    except IntegrityFailure as failure:
        raise _fail(f"{bundle.CHECKPOINT}: {failure.message}") from None
    scope_bytes = _read(root, bundle.SCOPE).encode("utf-8")
    if scope_extension(scope_bytes) not in checkpoint.extensions:
        raise _fail(f"{bundle.SCOPE} is not the scope the checkpoint signs")
    scope = json.loads(scope_bytes)
    if (
        scope.get("format") != bundle.FORMAT
        or scope["tree_size"] != checkpoint.size
        or scope["root"] != checkpoint.root.hex()
        or scope["origin"] != checkpoint.origin
    ):
        raise _fail(f"{bundle.SCOPE} does not match {bundle.CHECKPOINT}")
    _check_files(root, scope["files"], digests)
    result = _check_events(root, scope, checkpoint, progress)
    _check_consistency(root, scope, checkpoint)
    result.fingerprint = own_key.fingerprint
    result.key_pinned = key is not None or fingerprint is not None
    return result, checkpoint


def _public_key(root: Path) -> PublicKey:
    try:
        return PublicKey.from_text(_read(root, bundle.PUBLIC_KEY))[1]
    except InvalidInput as error:
        raise _fail(f"{bundle.PUBLIC_KEY} is not a signing key: {error.message}") from None


def _read(root: Path, name: str) -> str:
    try:
        return (root / name).read_text("utf-8")
    except FileNotFoundError:
        raise _fail(f"{name} is missing") from None
    except UnicodeDecodeError:
        raise _fail(f"{name} is not UTF-8 text") from None


def _check_manifest(root: Path, name: str, *, payload: bool) -> dict[str, str]:
    """Check a BagIt manifest; returns the files' SHA-256 (each file is read once)."""
    listed: dict[str, str] = {}
    for number, line in enumerate(_read(root, name).splitlines(), start=1):
        digest, _, relative = line.partition("  ")
        safe = PurePosixPath(relative)
        if len(digest) != 64 or not relative or safe.is_absolute() or ".." in safe.parts:
            raise _fail(f"{name} line {number} is malformed")
        listed[relative] = digest
    actual: dict[str, str] = {}
    for relative, digest in listed.items():
        file = root / relative
        if not file.is_file():
            raise _fail(f"{relative} is listed in {name} but missing")
        actual[relative] = bundle.sha256_file(file).sha256
        if actual[relative] != digest:
            raise _fail(f"{relative} does not match its checksum in {name}")
    if payload:
        present = {
            p.relative_to(root).as_posix() for p in (root / "data").rglob("*") if p.is_file()
        }
        extra = sorted(present - set(listed))
        if extra:
            raise _fail(f"{extra[0]} is in the bundle but not in {name}")
    return actual


def _check_files(root: Path, files: dict[str, Any], digests: dict[str, str]) -> None:
    """Every file against the hash the signed scope gives it: the data files first (the one
    changed is named even when bag-info.txt's totals changed with it), then the tag files."""
    present = {p.relative_to(root).as_posix() for p in (root / "data").rglob("*") if p.is_file()}
    present |= {name for name in files if not name.startswith("data/") and (root / name).is_file()}
    ordered = sorted(present | set(files), key=lambda name: (not name.startswith("data/"), name))
    for relative in ordered:
        if relative not in files:
            raise _fail(f"{relative} is not part of the signed export")
        if relative not in present:
            raise _fail(f"{relative} is missing")
        digest = digests.get(relative) or bundle.sha256_file(root / relative).sha256
        if digest != files[relative]["sha256"]:
            raise _fail(f"{relative} was changed after the export was signed")


def _lines(root: Path, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, value, _ in _raw_lines(root, name):
        yield number, value


def _raw_lines(root: Path, name: str) -> Iterator[tuple[int, dict[str, Any], str]]:
    path = root / name
    if not path.is_file():
        return
    loads = json.loads
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                value = loads(line)
            except ValueError:
                raise _fail(f"{name} line {number} is not JSON") from None
            if value.__class__ is not dict:
                raise _fail(f"{name} line {number} is not a JSON object")
            yield number, value, line


def _data_text(line: str) -> str:
    """The event's data exactly as the line holds it (canonical JSON, as it was hashed).

    Keys are sorted, so "data" follows the "actor" string and "entity_id" follows the data;
    neither pattern can occur unescaped inside a JSON string, and a nested "entity_id" key
    would sit before the top-level one. A line not laid out so fails its hash check.
    """
    start = line.find('"data":') + 7
    end = line.rfind(',"entity_id":')
    return line[start:end] if 7 <= start <= end else ""


def _check_events(
    root: Path,
    scope: dict[str, Any],
    checkpoint: Checkpoint,
    progress: Callable[[int], None] | None,
) -> BundleVerification:
    selection = scope["selection"]
    whole = selection["from"] is None and selection["to"] is None and not selection["cases"]
    cases = set(selection["cases"] or ())
    proofs = _lines(root, bundle.PROOFS)
    builder = merkle.RootBuilder()
    tallies: dict[str, list[Any]] = {}
    seen: set[str] = set()
    previous_seq, previous_hash = 0, GENESIS_HASH
    first_seq = last_seq = None
    count = 0
    size, tree_root = checkpoint.size, checkpoint.root
    for number, event, line in _raw_lines(root, bundle.EVENTS):
        where = f"{bundle.EVENTS} line {number}"
        if set(event) != _EVENT_KEYS:
            raise _fail(f"{where} does not have the fields of an audit event")
        seq = event["seq"]
        where += f" (audit event {seq})"
        try:
            fields = [event[name] for name in bundle.COLUMNS[:13]]
            fields[11] = _data_text(line)  # the hashed form of the event's data
            digest = row_hash(*fields)
        except (TypeError, ValueError):
            raise _fail(f"{where} is malformed") from None
        if digest != event["hash"]:
            raise _fail(f"{where} was altered: its hash does not match its content")
        if not isinstance(seq, int) or seq <= previous_seq or seq > size:
            raise _fail(f"{where} is out of order or outside the signed trail")
        if seq == previous_seq + 1 and event["prev_hash"] != previous_hash:
            raise _fail(f"{where} does not follow the event before it")
        leaf = merkle.event_leaf(digest)
        if whole:
            if seq != previous_seq + 1:
                raise _fail(f"{where}: audit event {previous_seq + 1} is missing")
            builder.add(leaf)
        else:
            proof_line = next(proofs, None)
            if proof_line is None or proof_line[1].get("seq") != seq:
                raise _fail(f"{where} has no inclusion proof in {bundle.PROOFS}")
            try:
                path = [bytes.fromhex(p) for p in proof_line[1]["proof"]]
            except (TypeError, ValueError, KeyError):
                raise _fail(f"{bundle.PROOFS} line {proof_line[0]} is malformed") from None
            if not merkle.verify_inclusion(leaf, seq - 1, size, path, tree_root):
                raise _fail(
                    f"{where} is not in the signed trail: its inclusion proof "
                    f"({bundle.PROOFS} line {proof_line[0]}) fails"
                )
        _check_in_scope(event, selection, cases, where)
        if event["entity_type"] == "referral":
            seen.add(event["entity_id"])
            if not whole:
                tally = tallies.setdefault(event["entity_id"], [0, None, None, None])
                tally[0] += 1
                tally[1] = tally[1] or seq
                tally[2], tally[3] = seq, digest
        first_seq = seq if first_seq is None else first_seq
        last_seq = seq
        previous_seq, previous_hash = seq, digest
        count += 1
        if progress is not None and count % 10_000 == 0:
            progress(count)
    if not whole and next(proofs, None) is not None:
        raise _fail(f"{bundle.PROOFS} has more proofs than there are events")
    if whole:
        if previous_seq != size:
            raise _fail(f"{bundle.EVENTS} ends at audit event {previous_seq}, not {size}")
        if builder.root() != tree_root:
            raise _fail(f"{bundle.EVENTS} does not rebuild the signed Merkle root")
    _check_complete(scope["completeness"], count, first_seq, last_seq, tallies, whole, cases)
    return BundleVerification(
        events=count,
        cases=len(seen),
        tree_size=size,
        root=tree_root.hex(),
        origin=checkpoint.origin,
        fingerprint="",
        key_pinned=False,
        selection=selection,
        first_seq=first_seq,
        last_seq=last_seq,
    )


def _check_in_scope(
    event: dict[str, Any], selection: dict[str, Any], cases: set[str], where: str
) -> None:
    if cases and (event["entity_type"] != "referral" or event["entity_id"] not in cases):
        raise _fail(f"{where} is not an event of the cases this export covers")
    bounds = selection.get("recorded_bounds") or {}
    start, end = bounds.get("start"), bounds.get("end")
    if (start is not None and event["recorded_at"] < start) or (
        end is not None and event["recorded_at"] >= end
    ):
        raise _fail(f"{where} was recorded outside the dates this export covers")


def _check_complete(
    claimed: dict[str, Any],
    count: int,
    first_seq: int | None,
    last_seq: int | None,
    tallies: dict[str, list[Any]],
    whole: bool,
    cases: set[str],
) -> None:
    if count != claimed["events"]:
        raise _fail(
            f"{bundle.EVENTS} holds {count} events but the signed scope has {claimed['events']}: "
            "events were left out or added"
        )
    if (first_seq, last_seq) != (claimed["first_seq"], claimed["last_seq"]):
        raise _fail(f"{bundle.EVENTS} does not span the audit events the signed scope gives")
    gaps = not cases and first_seq is not None and last_seq is not None
    if gaps and last_seq - first_seq + 1 != count:  # type: ignore[operator]
        raise _fail(f"{bundle.EVENTS} has gaps between audit events {first_seq} and {last_seq}")
    for case, want in claimed["cases"].items():
        got = tallies.get(case, [0, None, None, None])
        if [got[0], got[1], got[2], got[3]] != [
            want["count"],
            want["first_seq"],
            want["last_seq"],
            want["latest_hash"],
        ]:
            raise _fail(
                f"case {case} has {got[0]} events in {bundle.EVENTS} but the signed scope has "
                f"{want['count']} (newest {str(want['latest_hash'])[:12]}...): the case's "
                "history is incomplete or altered"
            )
    unknown = sorted(set(tallies) - set(claimed["cases"]))
    if unknown:
        raise _fail(f"case {unknown[0]} has events in {bundle.EVENTS} but not in the signed scope")


def _check_consistency(root: Path, scope: dict[str, Any], checkpoint: Checkpoint) -> None:
    declared = {(e["size"], e["root"]) for e in scope["earlier_exports"]}
    found = set()
    for number, line in _lines(root, bundle.CONSISTENCY):
        try:
            size, old_root = int(line["size"]), bytes.fromhex(line["root"])
            proof = [bytes.fromhex(p) for p in line["proof"]]
        except (TypeError, ValueError, KeyError):
            raise _fail(f"{bundle.CONSISTENCY} line {number} is malformed") from None
        if not merkle.verify_consistency(size, checkpoint.size, old_root, checkpoint.root, proof):
            raise _fail(
                f"{bundle.CONSISTENCY} line {number}: the trail of size {size} is not a prefix "
                "of the signed trail"
            )
        found.add((size, old_root.hex()))
    if found != declared:
        raise _fail(f"{bundle.CONSISTENCY} does not hold the proofs the signed scope lists")


def _check_growth(
    result: BundleVerification, checkpoint: Checkpoint, earlier: Checkpoint, path: Path
) -> None:
    if earlier.origin != checkpoint.origin:
        raise _fail("the earlier bundle is of a different trail")
    if earlier.size > checkpoint.size:
        raise _fail(
            f"the earlier bundle's trail has {earlier.size} events and this one {checkpoint.size}:"
            " the trail shrank"
        )
    if earlier.size == checkpoint.size:
        if earlier.root != checkpoint.root:
            raise _fail("the earlier bundle's trail of the same size has a different root")
        return
    for _, line in _lines_of(path, bundle.CONSISTENCY):
        if line.get("size") == earlier.size:
            if line.get("root") != earlier.root.hex():
                raise _fail(
                    f"the trail's first {earlier.size} events were rewritten since the earlier "
                    "export"
                )
            return
    raise _fail(
        f"this bundle has no consistency proof from the earlier export's size {earlier.size}"
    )


def _lines_of(path: Path, name: str) -> list[tuple[int, dict[str, Any]]]:
    with _opened(path) as root:
        return list(_lines(root, name))
