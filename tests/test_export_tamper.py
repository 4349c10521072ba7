"""Tampering with an export bundle: `channelflow audit verify PATH` catches it and names it.

Two bundles are made once for the module (SQLite): one of the whole trail and one of two
cases (--case), each after an earlier whole export, so both carry consistency proofs. Each
test changes a copy, the way someone holding the bundle could, at growing levels of effort:

- as it is (the BagIt manifests are stale);
- with both manifests recomputed (what `bagit` and `sha256sum -c` then accept);
- with scope.json's file hashes recomputed too (the signed checkpoint no longer matches);
- re-signed with another key: caught when the inspector pins the key (--fingerprint, --key)
  or checks against an earlier bundle (--since); unpinned, the content checks themselves
  must name the line and audit event (or, for a consistent forgery, the summary must say
  the key was taken from the bundle).

Every failure is an IntegrityFailure (exit 6, one line) whose message names the file.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bagit  # type: ignore[import-untyped]
import pytest

from channelflow.audit import bundle
from channelflow.audit.export import Exporter, Selection
from channelflow.audit.offline import BundleVerification, verify_bundle
from channelflow.audit.signing import PublicKey, SigningKey, sign_note
from channelflow.exceptions import IntegrityFailure
from channelflow.states import referral as lc
from channelflow.workflow import views
from tests.export_helpers import (
    EXIT_OK,
    Outcome,
    assert_integrity_error,
    audit_rows,
    build_trail,
    bundle_files,
    completeness,
    event_text,
    jsonl,
    merkle_tree,
    new_runtime,
    offline_cli,
    read_scope,
    recompute_manifests,
    recompute_scope_files,
    recomputed_hash,
    resign,
    write_events,
    write_scope,
)
from tests.factories import AUDITOR, CHAIR, COORDINATOR, LEAD

WHOLE_FILES = (
    bundle.README,
    bundle.BAG_INFO,
    bundle.BAGIT,
    bundle.CHECKPOINT,
    bundle.ACCESS_LOG,
    bundle.CONSISTENCY,
    bundle.EVENTS_CSV,
    bundle.EVENTS,
    bundle.KEY_ROTATIONS,
    bundle.REPORT,
    bundle.MANIFEST,
    bundle.SCOPE,
    bundle.PUBLIC_KEY,
    bundle.TAG_MANIFEST,
)
CASE_FILES = (*WHOLE_FILES, bundle.PROOFS)
KINDS = {"whole": WHOLE_FILES, "cases": CASE_FILES}
MANIFESTS = (bundle.MANIFEST, bundle.TAG_MANIFEST)

SCOPE_UNSIGNED = "scope.json is not the scope the checkpoint signs"
BAD_SIGNATURE = "the checkpoint's signature does not verify"
NOT_THE_FINGERPRINT = "signing-key.pub does not have the fingerprint given"
NOT_THE_KEY = "signing-key.pub is not the pinned key"
NOT_THE_EARLIER_KEY = "this bundle is signed by a different key from the earlier bundle"
UNPINNED = "(taken from the bundle itself: pin it)"


@dataclass(frozen=True)
class Bundles:
    earlier: Path  # a whole-trail export, before more events
    whole: Path
    cases: Path  # --case A --case B
    foreign: Path  # a whole-trail export of another database
    earlier_size: int
    fingerprint: str
    public_key: Path  # the council's public key, handed over separately
    signing_key: SigningKey  # the real one: an insider's
    a: str
    b: str
    c: str
    rows: list[dict[str, Any]]  # the trail up to the case bundle's size, as exported events


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    folder = tmp_path_factory.mktemp("export-tamper")
    trail = build_trail(f"sqlite:///{folder / 'channelflow.db'}", folder)
    runtime = trail.runtime
    try:
        exporter = Exporter(runtime.workflow, runtime.signing_key)
        earlier_size = len(audit_rows(runtime.engine))
        exporter.export(folder / "earlier", Selection(), by=AUDITOR)
        workflow = runtime.workflow
        workflow.fire(trail.c, lc.REFER_TO_PANEL, by=COORDINATOR)
        workflow.fire(trail.b, lc.ACCEPT, by=CHAIR, values={"consent": "given", "lead": LEAD})
        workflow.fire(trail.a, lc.REVIEW, by=CHAIR, values={"outcome": "no_progress"})
        views.show_case(workflow, trail.b, by=COORDINATOR)
        exporter.export(folder / "whole", Selection(), by=AUDITOR)
        cases = exporter.export(folder / "cases", Selection(cases=(trail.a, trail.b)), by=AUDITOR)
        rows = [
            {**row, "data": json.loads(row["data"])}
            for row in audit_rows(runtime.engine)[: cases.tree_size]
        ]
        origin = f"channelflow/{runtime.key.key_id}"
        public_key = folder / "council.pub"
        public_key.write_text(runtime.signing_key.public.to_text(origin) + "\n")
        made = Bundles(
            earlier=folder / "earlier",
            whole=folder / "whole",
            cases=folder / "cases",
            foreign=folder / "foreign",
            earlier_size=earlier_size,
            fingerprint=runtime.signing_key.public.fingerprint,
            public_key=public_key,
            signing_key=runtime.signing_key,
            a=trail.a,
            b=trail.b,
            c=trail.c,
            rows=rows,
        )
    finally:
        runtime.close()
    foreign = new_runtime(f"sqlite:///{folder / 'foreign.db'}", folder / "foreign-keys")
    try:
        Exporter(foreign.workflow, foreign.signing_key).export(
            made.foreign, Selection(), by=AUDITOR
        )
    finally:
        foreign.close()
    return made


@pytest.fixture
def attacker() -> SigningKey:
    return SigningKey.generate()


class Check:
    """Verifies a bundle in-process and through `channelflow audit verify`, with no database
    and no key files, optionally pinning the key or giving an earlier bundle."""

    def __init__(
        self,
        bundles: Bundles,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        self.bundles, self.tmp_path = bundles, tmp_path
        self.monkeypatch, self.capsys = monkeypatch, capsys
        monkeypatch.chdir(tmp_path)

    def _pin(self, pin: str) -> tuple[dict[str, Any], list[str]]:
        b = self.bundles
        pins: dict[str, tuple[dict[str, Any], list[str]]] = {
            "none": ({}, []),
            "fingerprint": ({"fingerprint": b.fingerprint}, ["--fingerprint", b.fingerprint]),
            "key": ({"key": _public_key(b.public_key)}, ["--key", str(b.public_key)]),
            "since": ({"since": b.earlier}, ["--since", str(b.earlier)]),
        }
        return pins[pin]

    def cli(self, root: Path, *args: str) -> Outcome:
        return offline_cli(
            self.monkeypatch, self.capsys, self.tmp_path, "audit", "verify", str(root), *args
        )

    def fails(self, root: Path, *phrases: str, pin: str = "none") -> str:
        """Fails naming one of ``phrases`` (where the order of two checks is a choice)."""
        kwargs, args = self._pin(pin)
        with pytest.raises(IntegrityFailure) as caught:
            verify_bundle(root, **kwargs)
        message = caught.value.message
        found = [phrase for phrase in phrases if phrase in message]
        assert found, (phrases, message)
        done = self.cli(root, *args)
        assert_integrity_error(done, found[0])
        assert done.err == f"channelflow: error: {message.rstrip('.')}.\n"
        return message

    def passes(self, root: Path, pin: str = "none") -> tuple[BundleVerification, Outcome]:
        kwargs, args = self._pin(pin)
        result = verify_bundle(root, **kwargs)
        done = self.cli(root, *args)
        assert done.code == EXIT_OK, done
        return result, done


def _public_key(path: Path) -> PublicKey:
    return PublicKey.from_text(path.read_text())[1]


@pytest.fixture
def check(
    bundles: Bundles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Check:
    return Check(bundles, tmp_path, monkeypatch, capsys)


def copy_of(bundles: Bundles, kind: str, tmp_path: Path, name: str | None = None) -> Path:
    source = {"whole": bundles.whole, "cases": bundles.cases, "earlier": bundles.earlier}[kind]
    return Path(shutil.copytree(source, tmp_path / (name or kind)))


# The bundles as made ----------------------------------------------------------------------------


def test_untouched_bundles_verify_and_the_matrix_covers_every_file(
    bundles: Bundles, check: Check
) -> None:
    assert bundle_files(bundles.whole) == sorted(WHOLE_FILES)
    assert bundle_files(bundles.cases) == sorted(CASE_FILES)
    for root in (bundles.whole, bundles.cases):
        for pin in ("none", "fingerprint", "key", "since"):
            result, done = check.passes(root, pin)
            assert result.key_pinned is (pin in ("fingerprint", "key")), pin
            if pin != "since":
                assert (UNPINNED in done.out) is (pin == "none"), (pin, done.out)
            else:
                assert result.consistent_with == [bundles.earlier_size]
        bagit.Bag(str(root)).validate()
        # Every file the matrix changes below has something in it to change.
        for name in bundle_files(root):
            if name != bundle.KEY_ROTATIONS:
                assert (root / name).stat().st_size > 0, name
    scope = read_scope(bundles.cases)
    assert scope["selection"]["cases"] == [bundles.a, bundles.b]
    assert [e["size"] for e in scope["earlier_exports"]] == [
        bundles.earlier_size,
        read_scope(bundles.whole)["tree_size"],
    ]
    assert [e["size"] for e in read_scope(bundles.whole)["earlier_exports"]] == [
        bundles.earlier_size
    ]


# A changed byte, in every file ------------------------------------------------------------------

_HEX = "0123456789abcdef"


def _other(character: str) -> str:
    """Another character of the same kind (a hex digit stays a hex digit, a base64 character
    stays a base64 character), so only the content changes, not the format."""
    if character in _HEX:
        return _HEX[(_HEX.index(character) + 1) % 16]
    if character.islower():
        return chr((ord(character) - ord("g") + 1) % 20 + ord("g"))
    return chr((ord(character) - ord("A") + 1) % 26 + ord("A"))


def change_byte(path: Path) -> None:
    """Change one letter or digit in the middle of the file (for a manifest, in its first
    checksum); an empty file gets one line."""
    data = bytearray(path.read_bytes())
    if not data:
        path.write_bytes(b"{}\n")
        return
    start = data.index(b"\n") // 2 if path.name in MANIFESTS else len(data) // 2
    for offset in range(start, len(data)):
        character = chr(data[offset])
        if character.isascii() and character.isalnum():
            data[offset] = ord(_other(character))
            path.write_bytes(bytes(data))
            return
    raise AssertionError(f"nothing to change in {path}")


def stale_manifest_phrase(name: str) -> str:
    """What verification says when a file no longer matches the BagIt manifests."""
    if name == bundle.BAGIT:
        return "bagit.txt is missing or wrong"
    if name == bundle.MANIFEST:  # its first checksum, that of the access log
        return f"{bundle.ACCESS_LOG} does not match its checksum in {bundle.MANIFEST}"
    if name == bundle.TAG_MANIFEST:  # its first checksum, that of README.txt
        return f"{bundle.README} does not match its checksum in {bundle.TAG_MANIFEST}"
    manifest = bundle.MANIFEST if name.startswith("data/") else bundle.TAG_MANIFEST
    return f"{name} does not match its checksum in {manifest}"


def signed_phrase(name: str) -> str:
    """What verification says once the manifests were recomputed over the changed file."""
    if name.startswith("data/"):
        return f"{name} was changed after the export was signed"
    return {
        bundle.BAGIT: "bagit.txt is missing or wrong",
        bundle.CHECKPOINT: BAD_SIGNATURE,
        bundle.SCOPE: SCOPE_UNSIGNED,
        # Named, as every other file is: a changed README could tell the inspector to pin
        # the wrong fingerprint; a changed bag-info misstates the export's identity and date.
        bundle.PUBLIC_KEY: bundle.PUBLIC_KEY,
        bundle.README: bundle.README,
        bundle.BAG_INFO: bundle.BAG_INFO,
    }[name]


EVERY_FILE = [(kind, name) for kind, names in KINDS.items() for name in names]


@pytest.mark.parametrize(("kind", "name"), EVERY_FILE, ids=[f"{k}:{n}" for k, n in EVERY_FILE])
def test_a_changed_byte_is_caught_by_the_manifests(
    bundles: Bundles, check: Check, tmp_path: Path, kind: str, name: str
) -> None:
    root = copy_of(bundles, kind, tmp_path)
    change_byte(root / name)

    check.fails(root, stale_manifest_phrase(name))


RECOMPUTED = [(kind, name) for kind, name in EVERY_FILE if name not in MANIFESTS]


@pytest.mark.parametrize(("kind", "name"), RECOMPUTED, ids=[f"{k}:{n}" for k, n in RECOMPUTED])
def test_a_changed_byte_with_the_manifests_recomputed_is_still_caught(
    bundles: Bundles, check: Check, tmp_path: Path, kind: str, name: str
) -> None:
    root = copy_of(bundles, kind, tmp_path)
    change_byte(root / name)
    recompute_manifests(root)
    if name != bundle.BAGIT:
        bagit.Bag(str(root)).validate()  # the standard tools are satisfied

    check.fails(root, signed_phrase(name))


DATA = [(kind, name) for kind, name in EVERY_FILE if name.startswith("data/")]


@pytest.mark.parametrize(("kind", "name"), DATA, ids=[f"{k}:{n}" for k, n in DATA])
def test_a_changed_data_file_with_the_scope_recomputed_breaks_the_signed_checkpoint(
    bundles: Bundles, check: Check, tmp_path: Path, kind: str, name: str
) -> None:
    root = copy_of(bundles, kind, tmp_path)
    change_byte(root / name)
    recompute_scope_files(root)
    bagit.Bag(str(root)).validate()

    check.fails(root, SCOPE_UNSIGNED)


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_added_or_removed_data_file_is_caught(
    bundles: Bundles, check: Check, tmp_path: Path, kind: str
) -> None:
    added = copy_of(bundles, kind, tmp_path)
    (added / "data" / "extra.jsonl").write_text("{}\n")
    check.fails(added, f"data/extra.jsonl is in the bundle but not in {bundle.MANIFEST}")
    recompute_manifests(added)
    check.fails(added, "data/extra.jsonl is not part of the signed export")

    removed = copy_of(bundles, kind, tmp_path, "removed")
    (removed / bundle.ACCESS_LOG).unlink()
    check.fails(removed, f"{bundle.ACCESS_LOG} is listed in {bundle.MANIFEST} but missing")
    recompute_manifests(removed)
    check.fails(removed, f"{bundle.ACCESS_LOG} is missing")


# A tag file removed, with its line in tagmanifest-sha256.txt: named, never an unexpected error.
REMOVED_TAGS = {
    bundle.CHECKPOINT: "checkpoint.txt is missing",
    bundle.PUBLIC_KEY: "signing-key.pub is missing",
    bundle.SCOPE: "scope.json",
    bundle.BAGIT: "bagit.txt is missing or wrong",
    bundle.MANIFEST: "manifest-sha256.txt is missing",
}


@pytest.mark.parametrize("name", list(REMOVED_TAGS))
def test_a_removed_tag_file_is_named(
    bundles: Bundles, check: Check, tmp_path: Path, name: str
) -> None:
    root = copy_of(bundles, "whole", tmp_path)
    (root / name).unlink()
    manifest = root / bundle.TAG_MANIFEST
    kept = [line for line in manifest.read_text().splitlines() if not line.endswith(f"  {name}")]
    manifest.write_text("".join(f"{line}\n" for line in kept))

    check.fails(root, REMOVED_TAGS[name])


def test_a_removed_tag_manifest_is_named(bundles: Bundles, check: Check, tmp_path: Path) -> None:
    root = copy_of(bundles, "whole", tmp_path)
    (root / bundle.TAG_MANIFEST).unlink()

    check.fails(root, "tagmanifest-sha256.txt is missing")


# Lines dropped, added, reordered, swapped; proofs forged ----------------------------------------


@dataclass(frozen=True)
class Tampered:
    file: str  # the first file (in manifest order) that the tampering changed
    deep: str  # what the content checks say once the bundle is re-signed with another key
    scope: Callable[[dict[str, Any]], None] | None = None  # the attacker's edit of the scope


def _lines(root: Path, name: str) -> list[str]:
    return (root / name).read_text("utf-8").splitlines(keepends=True)


def _write(root: Path, name: str, lines: list[str]) -> None:
    (root / name).write_text("".join(lines), "utf-8")


def _seq(line: str) -> int:
    return int(json.loads(line)["seq"])


def _at(line: int, seq: int) -> str:
    return f"{bundle.EVENTS} line {line} (audit event {seq})"


def _index(events: list[dict[str, Any]], case: str, event: str) -> int:
    return next(i for i, e in enumerate(events) if e["entity_id"] == case and e["event"] == event)


def _forged_from(template: dict[str, Any], seq: int, previous: dict[str, Any]) -> dict[str, Any]:
    forged = {**template, "seq": seq, "prev_hash": previous["hash"], "reason": "forged"}
    forged["hash"] = recomputed_hash(forged)
    return forged


def _swap_cases(root: Path, b: Bundles, *, rehash: bool) -> tuple[int, dict[str, Any]]:
    """A's screening and B's screening trade cases; the first of them (in the file) is
    returned with its 0-based line."""
    events = jsonl(root / bundle.EVENTS)
    first, second = sorted((_index(events, b.a, lc.SCREEN), _index(events, b.b, lc.SCREEN)))
    assert second > first + 1
    for i, j in ((first, second), (second, first)):
        events[i] = {**events[i], "entity_id": jsonl(root / bundle.EVENTS)[j]["entity_id"]}
        if rehash:
            events[i]["hash"] = recomputed_hash(events[i])
    write_events(root, events)
    return first, events[first]


def whole_drop_line(root: Path, b: Bundles) -> Tampered:
    lines = _lines(root, bundle.EVENTS)
    k = len(lines) // 2
    seq = _seq(lines.pop(k))
    _write(root, bundle.EVENTS, lines)
    return Tampered(bundle.EVENTS, f"{_at(k + 1, seq + 1)}: audit event {seq} is missing")


def whole_drop_last_line(root: Path, b: Bundles) -> Tampered:
    lines = _lines(root, bundle.EVENTS)
    n = _seq(lines.pop())
    _write(root, bundle.EVENTS, lines)
    return Tampered(bundle.EVENTS, f"{bundle.EVENTS} ends at audit event {n - 1}, not {n}")


def whole_add_copied_line(root: Path, b: Bundles) -> Tampered:
    lines = _lines(root, bundle.EVENTS)
    k = len(lines) // 2
    lines.insert(k + 1, lines[k])
    _write(root, bundle.EVENTS, lines)
    return Tampered(
        bundle.EVENTS, f"{_at(k + 2, _seq(lines[k]))} is out of order or outside the signed trail"
    )


def whole_add_forged_event(root: Path, b: Bundles) -> Tampered:
    """A well-formed, correctly chained `close` of case A after the signed trail's end."""
    events = jsonl(root / bundle.EVENTS)
    template = events[_index(events, b.a, lc.REVIEW)] | {"event": lc.CLOSE, "to_state": "closed"}
    forged = _forged_from(template, events[-1]["seq"] + 1, events[-1])
    write_events(root, [*events, forged])
    return Tampered(
        bundle.EVENTS,
        f"{_at(len(events) + 1, forged['seq'])} is out of order or outside the signed trail",
    )


def whole_reorder_lines(root: Path, b: Bundles) -> Tampered:
    lines = _lines(root, bundle.EVENTS)
    k = len(lines) // 2
    seq = _seq(lines[k])
    lines[k], lines[k + 1] = lines[k + 1], lines[k]
    _write(root, bundle.EVENTS, lines)
    return Tampered(bundle.EVENTS, f"{_at(k + 1, seq + 1)}: audit event {seq} is missing")


def whole_swap_cases_rehashed(root: Path, b: Bundles) -> Tampered:
    k, event = _swap_cases(root, b, rehash=True)
    return Tampered(
        bundle.EVENTS, f"{_at(k + 2, event['seq'] + 1)} does not follow the event before it"
    )


def whole_swap_cases(root: Path, b: Bundles) -> Tampered:
    k, event = _swap_cases(root, b, rehash=False)
    return Tampered(
        bundle.EVENTS,
        f"{_at(k + 1, event['seq'])} was altered: its hash does not match its content",
    )


def whole_forge_consistency_proof(root: Path, b: Bundles) -> Tampered:
    lines = jsonl(root / bundle.CONSISTENCY)
    proof = lines[0]["proof"]
    proof[0] = _other(proof[0][0]) + proof[0][1:]
    _write(root, bundle.CONSISTENCY, [bundle.canonical(line) + "\n" for line in lines])
    return Tampered(
        bundle.CONSISTENCY,
        f"{bundle.CONSISTENCY} line 1: the trail of size {b.earlier_size} is not a prefix of "
        "the signed trail",
    )


def _with_proofs(root: Path) -> tuple[list[str], list[str]]:
    return _lines(root, bundle.EVENTS), _lines(root, bundle.PROOFS)


def _write_with_proofs(root: Path, events: list[str], proofs: list[str]) -> None:
    _write(root, bundle.EVENTS, events)
    _write(root, bundle.PROOFS, proofs)


def cases_drop_event(root: Path, b: Bundles) -> Tampered:
    events = _lines(root, bundle.EVENTS)
    k = len(events) // 2
    del events[k]
    _write(root, bundle.EVENTS, events)
    return Tampered(
        bundle.EVENTS,
        f"{_at(k + 1, _seq(events[k]))} has no inclusion proof in {bundle.PROOFS}",
    )


def cases_drop_event_and_proof(root: Path, b: Bundles) -> Tampered:
    events, proofs = _with_proofs(root)
    k = len(events) // 2
    del events[k], proofs[k]
    _write_with_proofs(root, events, proofs)
    count = len(events)
    return Tampered(
        bundle.EVENTS,
        f"{bundle.EVENTS} holds {count} events but the signed scope has {count + 1}: events "
        "were left out or added",
    )


def cases_drop_newest_event_of_a_case(root: Path, b: Bundles) -> Tampered:
    """A's newest event and its proof go; the scope's totals are made to agree, its signed
    tally for case A is left as it was."""
    events, proofs = _with_proofs(root)
    parsed = [json.loads(line) for line in events]
    k = max(i for i, e in enumerate(parsed) if e["entity_id"] == b.a)
    count = sum(e["entity_id"] == b.a for e in parsed)
    del events[k], proofs[k], parsed[k]
    _write_with_proofs(root, events, proofs)

    def totals(scope: dict[str, Any]) -> None:
        again = completeness(parsed, scope["selection"]["cases"])
        scope["completeness"] |= {name: again[name] for name in ("events", "first_seq", "last_seq")}

    return Tampered(
        bundle.EVENTS,
        f"case {b.a} has {count - 1} events in {bundle.EVENTS} but the signed scope has {count}",
        totals,
    )


def cases_add_copied_line(root: Path, b: Bundles) -> Tampered:
    events, proofs = _with_proofs(root)
    k = len(events) // 2
    events.insert(k + 1, events[k])
    proofs.insert(k + 1, proofs[k])
    _write_with_proofs(root, events, proofs)
    return Tampered(
        bundle.EVENTS,
        f"{_at(k + 2, _seq(events[k]))} is out of order or outside the signed trail",
    )


def cases_add_forged_event(root: Path, b: Bundles) -> Tampered:
    """An event of case A in a gap of the case bundle, chained to the one before it, with
    that one's inclusion proof."""
    events, proofs = _with_proofs(root)
    k = next(i for i in range(len(events) - 1) if _seq(events[i + 1]) > _seq(events[i]) + 1)
    previous = json.loads(events[k])
    forged = _forged_from(previous, previous["seq"] + 1, previous)
    events.insert(k + 1, event_text(forged))
    proofs.insert(k + 1, bundle.canonical({**json.loads(proofs[k]), "seq": forged["seq"]}) + "\n")
    _write_with_proofs(root, events, proofs)
    return Tampered(
        bundle.EVENTS,
        f"{_at(k + 2, forged['seq'])} is not in the signed trail: its inclusion proof",
    )


def cases_add_event_of_another_case(root: Path, b: Bundles) -> Tampered:
    """A genuine event of case C, with a genuine inclusion proof (computed from a whole-trail
    export): genuine, but not of the cases this bundle covers."""
    events, proofs = _with_proofs(root)
    exported = {_seq(line) for line in events}
    size = read_scope(root)["tree_size"]
    other = next(
        row
        for row in b.rows
        if row["entity_id"] == b.c and _seq(events[0]) < row["seq"] < _seq(events[-1])
    )
    assert other["seq"] not in exported
    k = sum(seq < other["seq"] for seq in exported)
    proof = merkle_tree(b.rows[:size]).inclusion_proof(other["seq"] - 1)
    events.insert(k, event_text(other))
    proofs.insert(k, bundle.canonical({"proof": [p.hex() for p in proof], "seq": other["seq"]}))
    proofs[k] += "\n"
    _write_with_proofs(root, events, proofs)
    return Tampered(
        bundle.EVENTS,
        f"{_at(k + 1, other['seq'])} is not an event of the cases this export covers",
    )


def cases_reorder_lines(root: Path, b: Bundles) -> Tampered:
    events, proofs = _with_proofs(root)
    k = len(events) // 2
    seq = _seq(events[k])
    events[k], events[k + 1] = events[k + 1], events[k]
    proofs[k], proofs[k + 1] = proofs[k + 1], proofs[k]
    _write_with_proofs(root, events, proofs)
    return Tampered(bundle.EVENTS, f"{_at(k + 2, seq)} is out of order or outside the signed trail")


def cases_swap_cases_rehashed(root: Path, b: Bundles) -> Tampered:
    k, event = _swap_cases(root, b, rehash=True)
    return Tampered(
        bundle.EVENTS,
        f"{_at(k + 1, event['seq'])} is not in the signed trail: its inclusion proof",
    )


def cases_swap_cases(root: Path, b: Bundles) -> Tampered:
    k, event = _swap_cases(root, b, rehash=False)
    return Tampered(
        bundle.EVENTS,
        f"{_at(k + 1, event['seq'])} was altered: its hash does not match its content",
    )


def cases_forge_proof(root: Path, b: Bundles) -> Tampered:
    proofs = jsonl(root / bundle.PROOFS)
    j = len(proofs) // 2
    path = proofs[j]["proof"]
    path[-1] = _other(path[-1][0]) + path[-1][1:]
    _write(root, bundle.PROOFS, [bundle.canonical(line) + "\n" for line in proofs])
    return Tampered(
        bundle.PROOFS,
        f"{_at(j + 1, proofs[j]['seq'])} is not in the signed trail: its inclusion proof",
    )


TAMPERS: dict[str, tuple[str, Callable[[Path, Bundles], Tampered]]] = {
    "whole:drop_line": ("whole", whole_drop_line),
    "whole:drop_last_line": ("whole", whole_drop_last_line),
    "whole:add_copied_line": ("whole", whole_add_copied_line),
    "whole:add_forged_event": ("whole", whole_add_forged_event),
    "whole:reorder_lines": ("whole", whole_reorder_lines),
    "whole:swap_cases_rehashed": ("whole", whole_swap_cases_rehashed),
    "whole:swap_cases": ("whole", whole_swap_cases),
    "whole:forge_consistency_proof": ("whole", whole_forge_consistency_proof),
    "cases:drop_event": ("cases", cases_drop_event),
    "cases:drop_event_and_proof": ("cases", cases_drop_event_and_proof),
    "cases:drop_newest_event_of_a_case": ("cases", cases_drop_newest_event_of_a_case),
    "cases:add_copied_line": ("cases", cases_add_copied_line),
    "cases:add_forged_event": ("cases", cases_add_forged_event),
    "cases:add_event_of_another_case": ("cases", cases_add_event_of_another_case),
    "cases:reorder_lines": ("cases", cases_reorder_lines),
    "cases:swap_cases_rehashed": ("cases", cases_swap_cases_rehashed),
    "cases:swap_cases": ("cases", cases_swap_cases),
    "cases:forge_proof": ("cases", cases_forge_proof),
}
LEVELS = (
    "as_is",
    "manifests_recomputed",
    "scope_recomputed",
    "resigned_fingerprint_pinned",
    "resigned_key_pinned",
    "resigned_since_earlier",
    "resigned_unpinned",
)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_tampered_lines_are_caught_and_named(
    bundles: Bundles,
    check: Check,
    attacker: SigningKey,
    tmp_path: Path,
    tamper: str,
    level: str,
) -> None:
    kind, apply = TAMPERS[tamper]
    root = copy_of(bundles, kind, tmp_path)
    tampered = apply(root, bundles)

    if level == "as_is":
        check.fails(root, f"{tampered.file} does not match its checksum in {bundle.MANIFEST}")
        return
    if level == "manifests_recomputed":
        recompute_manifests(root)
        check.fails(root, f"{tampered.file} was changed after the export was signed")
        return
    if level == "scope_recomputed":
        scope = read_scope(root)
        if tampered.scope is not None:
            tampered.scope(scope)
        write_scope(root, scope)
        recompute_manifests(root)
        check.fails(root, SCOPE_UNSIGNED)
        return
    scope = read_scope(root)
    if tampered.scope is not None:
        tampered.scope(scope)
    resign(root, attacker, scope)
    bagit.Bag(str(root)).validate()
    pin, phrases = {
        "resigned_fingerprint_pinned": ("fingerprint", (NOT_THE_FINGERPRINT,)),
        "resigned_key_pinned": ("key", (NOT_THE_KEY,)),
        # The bundle is checked on its own first, then against the earlier one.
        "resigned_since_earlier": ("since", (tampered.deep, NOT_THE_EARLIER_KEY)),
        "resigned_unpinned": ("none", (tampered.deep,)),
    }[level]
    check.fails(root, *phrases, pin=pin)


# The checkpoint: replaced, its signature forged -------------------------------------------------


def _signature_line(root: Path) -> tuple[list[str], int]:
    lines = (root / bundle.CHECKPOINT).read_text("utf-8").split("\n")
    return lines, next(i for i, line in enumerate(lines) if line.startswith("\u2014 "))


def forge_signature(root: Path, bundles: Bundles, attacker: SigningKey) -> str:
    """One character in the middle of the signature changed."""
    lines, i = _signature_line(root)
    name, encoded = lines[i].rsplit(" ", 1)
    middle = len(encoded) // 2
    while not encoded[middle].isalnum():
        middle += 1
    lines[i] = f"{name} {encoded[:middle]}{_other(encoded[middle])}{encoded[middle + 1 :]}"
    (root / bundle.CHECKPOINT).write_text("\n".join(lines), "utf-8")
    return BAD_SIGNATURE


def sign_with_another_key(root: Path, bundles: Bundles, attacker: SigningKey) -> str:
    """The checkpoint's text signed again by someone else's key (the public key left)."""
    lines, i = _signature_line(root)
    text = "\n".join(lines[: i - 1]) + "\n"
    origin = lines[0]
    (root / bundle.CHECKPOINT).write_text(sign_note(text, attacker, origin), "utf-8")
    return f"the checkpoint is not signed by key {bundles.fingerprint[:16]}"


def replace_with_earlier_checkpoint(root: Path, bundles: Bundles, attacker: SigningKey) -> str:
    shutil.copyfile(bundles.earlier / bundle.CHECKPOINT, root / bundle.CHECKPOINT)
    return SCOPE_UNSIGNED


def replace_with_earlier_checkpoint_and_scope(
    root: Path, bundles: Bundles, attacker: SigningKey
) -> str:
    for name in (bundle.CHECKPOINT, bundle.SCOPE):
        shutil.copyfile(bundles.earlier / name, root / name)
    return "was changed after the export was signed"


def replace_with_another_trails_checkpoint(
    root: Path, bundles: Bundles, attacker: SigningKey
) -> str:
    shutil.copyfile(bundles.foreign / bundle.CHECKPOINT, root / bundle.CHECKPOINT)
    return f"the checkpoint is not signed by key {bundles.fingerprint[:16]}"


CHECKPOINT_TAMPERS = {
    "forge_signature": forge_signature,
    "sign_with_another_key": sign_with_another_key,
    "replace_with_earlier_checkpoint": replace_with_earlier_checkpoint,
    "replace_with_earlier_checkpoint_and_scope": replace_with_earlier_checkpoint_and_scope,
    "replace_with_another_trails_checkpoint": replace_with_another_trails_checkpoint,
}


@pytest.mark.parametrize("recomputed", [False, True], ids=["as_is", "manifests_recomputed"])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("tamper", list(CHECKPOINT_TAMPERS))
def test_a_replaced_or_forged_checkpoint_is_caught(
    bundles: Bundles,
    check: Check,
    attacker: SigningKey,
    tmp_path: Path,
    tamper: str,
    kind: str,
    recomputed: bool,
) -> None:
    root = copy_of(bundles, kind, tmp_path)
    phrase = CHECKPOINT_TAMPERS[tamper](root, bundles, attacker)

    if not recomputed:
        check.fails(root, f"{bundle.CHECKPOINT} does not match its checksum in")
        return
    recompute_manifests(root)
    bagit.Bag(str(root)).validate()
    check.fails(root, phrase)


# Completeness: a case's event removed, and everything made to agree ----------------------------


def remove_newest_event_of_case(root: Path, case: str) -> dict[str, Any]:
    """The case's newest event goes from the JSON lines, the proofs and the spreadsheet;
    the scope's completeness is recomputed to agree. Returns the new scope."""
    events = jsonl(root / bundle.EVENTS)
    k = max(i for i, e in enumerate(events) if e["entity_id"] == case)
    removed = events.pop(k)
    write_events(root, events)
    proofs = _lines(root, bundle.PROOFS)
    del proofs[k]
    _write(root, bundle.PROOFS, proofs)
    with (root / bundle.EVENTS_CSV).open(newline="", encoding="utf-8") as handle:
        table = [row for row in csv.reader(handle) if row[0] != str(removed["seq"])]
    sheet = io.StringIO()
    csv.writer(sheet, lineterminator="\r\n").writerows(table)
    (root / bundle.EVENTS_CSV).write_text(sheet.getvalue(), "utf-8", newline="")
    scope = read_scope(root)
    scope["completeness"] = completeness(events, scope["selection"]["cases"])
    return scope


def test_a_removed_case_event_with_the_hashes_recomputed_breaks_the_checkpoint(
    bundles: Bundles, check: Check, tmp_path: Path
) -> None:
    root = copy_of(bundles, "cases", tmp_path)
    scope = remove_newest_event_of_case(root, bundles.a)
    recompute_manifests(root)
    check.fails(root, f"{bundle.EVENTS_CSV} was changed after the export was signed")

    recompute_scope_files(root)  # the file hashes only
    check.fails(root, SCOPE_UNSIGNED)

    write_scope(root, scope)  # the completeness too
    recompute_manifests(root)
    bagit.Bag(str(root)).validate()
    check.fails(root, SCOPE_UNSIGNED)


def test_a_removed_case_event_resigned_with_another_key_is_caught_when_pinned(
    bundles: Bundles, check: Check, attacker: SigningKey, tmp_path: Path
) -> None:
    root = copy_of(bundles, "cases", tmp_path)
    scope = remove_newest_event_of_case(root, bundles.a)
    claimed = read_scope(bundles.cases)["completeness"]["events"]
    resign(root, attacker, scope)

    check.fails(root, NOT_THE_FINGERPRINT, pin="fingerprint")
    check.fails(root, NOT_THE_KEY, pin="key")
    check.fails(root, NOT_THE_EARLIER_KEY, pin="since")
    # Unpinned, a consistent forgery passes: the summary says whose key that is.
    result, done = check.passes(root)
    assert result.events == claimed - 1
    assert result.key_pinned is False
    assert result.fingerprint == attacker.public.fingerprint
    assert done.out.rstrip("\n").endswith(
        f"signed by key {attacker.public.fingerprint[:16]}... {UNPINNED}"
    )


def test_a_forged_key_rotation_does_not_tie_another_key_to_the_earlier_bundle(
    bundles: Bundles, check: Check, attacker: SigningKey, tmp_path: Path
) -> None:
    """The attacker adds a rotation statement naming their key, signed with their key."""
    root = copy_of(bundles, "cases", tmp_path)
    scope = remove_newest_event_of_case(root, bundles.a)
    origin = scope["origin"]
    body = (
        "channelflow-signing-key-rotation v1\n"
        f"replaces {bundles.fingerprint}\n"
        f"new {attacker.public.to_text(origin)}\n"
    )
    line = {
        "seq": 1,
        "old": bundles.fingerprint,
        "new": attacker.public.fingerprint,
        "statement": sign_note(body, attacker, origin),
    }
    (root / bundle.KEY_ROTATIONS).write_text(bundle.canonical(line) + "\n", "utf-8")
    resign(root, attacker, scope)

    check.fails(root, "the key rotation statement is not signed by key", pin="since")


# Truncation, re-signed --------------------------------------------------------------------------


def truncate(root: Path, drop: int) -> dict[str, Any]:
    """The trail's last ``drop`` events cut from a whole-trail bundle, with a new root, tree
    size, completeness and consistency proofs: a consistent, shorter bundle."""
    events = jsonl(root / bundle.EVENTS)[:-drop]
    write_events(root, events)
    with (root / bundle.EVENTS_CSV).open(newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))[:-drop]
    sheet = io.StringIO()
    csv.writer(sheet, lineterminator="\r\n").writerows(table)
    (root / bundle.EVENTS_CSV).write_text(sheet.getvalue(), "utf-8", newline="")
    tree = merkle_tree(events)
    scope = read_scope(root)
    scope["tree_size"], scope["root"] = tree.size, tree.root().hex()
    scope["completeness"] = completeness(events, scope["selection"]["cases"] or ())
    earlier = [e for e in scope["earlier_exports"] if e["size"] <= tree.size]
    scope["earlier_exports"] = earlier
    proofs = [
        bundle.canonical(
            {
                "proof": [p.hex() for p in tree.consistency_proof(e["size"])],
                "root": e["root"],
                "size": e["size"],
            }
        )
        + "\n"
        for e in earlier
    ]
    _write(root, bundle.CONSISTENCY, proofs)
    return scope


def test_a_truncated_trail_resigned_with_another_key_is_caught_when_pinned(
    bundles: Bundles, check: Check, attacker: SigningKey, tmp_path: Path
) -> None:
    root = copy_of(bundles, "whole", tmp_path)
    size = read_scope(root)["tree_size"]
    scope = truncate(root, 2)
    assert scope["earlier_exports"] == read_scope(bundles.whole)["earlier_exports"]
    resign(root, attacker, scope)
    bagit.Bag(str(root)).validate()

    check.fails(root, NOT_THE_FINGERPRINT, pin="fingerprint")
    check.fails(root, NOT_THE_KEY, pin="key")
    check.fails(root, NOT_THE_EARLIER_KEY, pin="since")
    result, done = check.passes(root)
    assert (result.tree_size, result.events) == (size - 2, size - 2)
    assert done.out.rstrip("\n").endswith(UNPINNED)
    assert f"of {size - 2}; signed by key {attacker.public.fingerprint[:16]}" in done.out


def test_a_truncated_trail_resigned_with_the_real_key_is_caught_against_a_later_bundle(
    bundles: Bundles, check: Check, tmp_path: Path
) -> None:
    """An insider with the signing key can make a shorter trail that verifies on its own;
    an inspector holding a bundle of the longer trail sees it shrank."""
    root = copy_of(bundles, "whole", tmp_path)
    size = read_scope(root)["tree_size"]
    resign(root, bundles.signing_key, truncate(root, 2))
    check.passes(root, "fingerprint")

    with pytest.raises(IntegrityFailure, match="the trail shrank"):
        verify_bundle(root, since=bundles.whole)
    done = check.cli(root, "--since", str(bundles.whole), "--fingerprint", bundles.fingerprint)
    assert_integrity_error(
        done, f"the earlier bundle's trail has {size} events and this one {size - 2}"
    )


# Zip archives -----------------------------------------------------------------------------------


def _zip(folder: Path, archive: Path, names: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(archive, "w") as opened:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                opened.write(path, Path(folder.name) / path.relative_to(folder))
        for name, content in (names or {}).items():
            opened.writestr(name, content)
    return archive


def test_a_tampered_zip_is_caught(bundles: Bundles, check: Check, tmp_path: Path) -> None:
    root = copy_of(bundles, "whole", tmp_path)
    change_byte(root / bundle.EVENTS)
    archive = _zip(root, tmp_path / "bundle.zip")
    check.fails(archive, f"{bundle.EVENTS} does not match its checksum in {bundle.MANIFEST}")

    clean = copy_of(bundles, "cases", tmp_path)
    check.passes(_zip(clean, tmp_path / "clean.zip"), "fingerprint")
    two_folders = _zip(clean, tmp_path / "two.zip", {"other/readme.txt": b"hello"})
    check.fails(two_folders, "does not hold one export folder")
    escaping = _zip(clean, tmp_path / "escape.zip", {"cases/../../evil.txt": b"hello"})
    check.fails(escaping, "does not hold one export folder")
    assert not (tmp_path.parent / "evil.txt").exists()
