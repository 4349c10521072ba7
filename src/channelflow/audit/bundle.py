"""The export bundle's layout (BagIt, RFC 8493) and its line formats, shared by the exporter
and the offline verifier. No database code here: a verifier needs only channelflow itself."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from pathlib import Path
from typing import IO, Any

FORMAT = "channelflow-audit-export/1"
EVENTS = "data/events.jsonl"
EVENTS_CSV = "data/events.csv"
ACCESS_LOG = "data/access-log.jsonl"
PROOFS = "data/proofs.jsonl"
CONSISTENCY = "data/consistency.jsonl"
PEOPLE = "data/people.jsonl"
KEY_ROTATIONS = "data/key-rotations.jsonl"
REPORT = "data/report.pdf"
SCOPE = "scope.json"
CHECKPOINT = "checkpoint.txt"
PUBLIC_KEY = "signing-key.pub"
README = "README.txt"
BAGIT = "bagit.txt"
BAG_INFO = "bag-info.txt"
MANIFEST = "manifest-sha256.txt"
TAG_MANIFEST = "tagmanifest-sha256.txt"
BAGIT_DECLARATION = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"

# The audit columns in the order a row is read, and the order of the spreadsheet's columns.
COLUMNS = (
    "seq",
    "entity_type",
    "entity_id",
    "event",
    "from_state",
    "to_state",
    "actor",
    "role",
    "occurred_at",
    "recorded_at",
    "reason",
    "data",
    "prev_hash",
    "hash",
    "mac",
)
CSV_COLUMNS = (
    "seq",
    "recorded_at",
    "occurred_at",
    "entity_type",
    "entity_id",
    "event",
    "from_state",
    "to_state",
    "actor",
    "role",
    "reason",
    "data",
    "prev_hash",
    "hash",
    "mac",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_quote = encode_basestring


def _nullable(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def event_line(row: tuple[Any, ...]) -> str:
    """One event (a row in ``COLUMNS`` order) as canonical JSON: sorted keys, no spaces.

    Spelled out like `audit.canonical.row_hash` (the same fields, plus the hash and MAC),
    because an export writes a million of these; a test proves it equals ``json.dumps`` with
    sorted keys.
    """
    (seq, entity_type, entity_id, event, from_state, to_state, actor, role) = row[:8]
    (occurred_at, recorded_at, reason, data, prev_hash, digest, mac) = row[8:]
    return (
        f'{{"actor":{_quote(actor)},"data":{data},"entity_id":{_quote(entity_id)},'
        f'"entity_type":{_quote(entity_type)},"event":{_quote(event)},'
        f'"from_state":{_nullable(from_state)},"hash":{_quote(digest)},"mac":{_quote(mac)},'
        f'"occurred_at":{_quote(occurred_at)},"prev_hash":{_quote(prev_hash)},'
        f'"reason":{_nullable(reason)},"recorded_at":{_quote(recorded_at)},'
        f'"role":{_quote(role)},"seq":{int(seq)},"to_state":{_nullable(to_state)}}}\n'
    )


def csv_cell(value: Any) -> str:
    """A spreadsheet cell that cannot run as a formula (OWASP CSV injection)."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_row(row: tuple[Any, ...]) -> list[str]:
    by_name = dict(zip(COLUMNS, row, strict=True))
    return [csv_cell(by_name[name]) for name in CSV_COLUMNS]


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class HashingFile:
    """A file being written, with its SHA-256, size and line count kept as it grows."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: IO[bytes] = path.open("wb")
        self._hash = hashlib.sha256()
        self.size = 0
        self.lines = 0

    def write(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    def write_bytes(self, data: bytes) -> None:
        self._hash.update(data)
        self._handle.write(data)
        self.size += len(data)
        self.lines += data.count(b"\n")

    def close(self) -> FileDigest:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        return FileDigest(self.name, self._hash.hexdigest(), self.size, self.lines)


@dataclass(frozen=True)
class FileDigest:
    name: str
    sha256: str
    size: int
    lines: int


def sha256_file(path: Path) -> FileDigest:
    digest = hashlib.sha256()
    size = lines = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
    return FileDigest(path.name, digest.hexdigest(), size, lines)


def manifest_text(digests: Iterable[FileDigest]) -> str:
    """BagIt manifest lines, in the ``sha256sum`` layout (two spaces), so that
    ``sha256sum -c manifest-sha256.txt`` run in the bag checks it too."""
    return "".join(f"{d.sha256}  {d.name}\n" for d in sorted(digests, key=lambda d: d.name))


@dataclass
class BagWriter:
    """Writes the tag files of a bag whose payload files were written with `HashingFile`."""

    root: Path
    payload: list[FileDigest] = field(default_factory=list)
    tags: list[FileDigest] = field(default_factory=list)

    def add_tag(self, name: str, text: str) -> None:
        file = HashingFile(self.root, name)
        file.write(text)
        self.tags.append(file.close())

    def finish(self, info: dict[str, str]) -> None:
        octets = sum(d.size for d in self.payload)
        self.add_tag(BAGIT, BAGIT_DECLARATION)
        lines = {**info, "Payload-Oxum": f"{octets}.{len(self.payload)}"}
        self.add_tag(BAG_INFO, "".join(f"{name}: {value}\n" for name, value in lines.items()))
        self.add_tag(MANIFEST, manifest_text(self.payload))
        tag_manifest = HashingFile(self.root, TAG_MANIFEST)
        tag_manifest.write(manifest_text(self.tags))
        tag_manifest.close()
