"""Shared by the audit export tests: a small trail on known days, the CLI with the right keys,
and the tools an attacker (or an inspector) uses on a bundle."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from channelflow import clock
from channelflow.audit import bundle, merkle
from channelflow.audit.bundle import canonical
from channelflow.audit.canonical import row_hash
from channelflow.audit.signing import Checkpoint, SigningKey, sign_checkpoint
from channelflow.cli import run
from channelflow.exceptions import PermissionDenied
from channelflow.runtime import Runtime
from channelflow.settings import Settings
from channelflow.states import referral as lc
from channelflow.store.models import AccessLog
from channelflow.workflow import views
from tests.cli_helpers import Outcome
from tests.factories import AUDITOR, CHAIR, COORDINATOR, USERS, referral_in
from tests.test_tamper import drop_append_only_triggers, set_columns

__all__ = ["Outcome", "drop_append_only_triggers", "set_columns"]

# The person behind the first referral: none of this may leave in a default export.
NAME = "Ottoline Marchbanks-Vell"
DOB = date(1984, 7, 19)
ADDRESS = "17 Quinceworth Lane, Dunholm DH9 4QX"
SCHOOL = "Saint Hildegard Academy of Brackenfold"
PERSONAL = (NAME, DOB.isoformat(), DOB.strftime("%d/%m/%Y"), ADDRESS, SCHOOL)

# The trail is recorded on these days (the clock frozen), so --from/--to can split it.
BASE = datetime(2025, 1, 6, 10, 0, tzinfo=UTC)  # init and the users
DAY1 = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)  # referral A, to intervention
DAY2 = datetime(2025, 4, 8, 12, 0, tzinfo=UTC)  # referral B, to panel review
DAY3 = datetime(2025, 5, 13, 12, 0, tzinfo=UTC)  # referral C; A reviewed; B adjourned
UNICODE_REASON = "Zoë\u2019s café report \u2014 日本語 awaited"
FORMULA_REASONS = ('=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "'quoted already")
# Leading tab and carriage return never survive the workflow's text cleaning (it strips), so
# these go straight into the trail, as another part of the system could write them.
RAW_FORMULA_REASONS = ("\tx", "\r=1+1")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

EXIT_OK, EXIT_USAGE, EXIT_REFUSED, EXIT_INTEGRITY = 0, 2, 4, 6


@dataclass
class Trail:
    runtime: Runtime
    tmp: Path
    a: str
    b: str
    c: str

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    @property
    def url(self) -> str:
        return self.runtime.settings.database_url

    @property
    def fingerprint(self) -> str:
        return self.runtime.signing_key.public.fingerprint


def new_runtime(database_url: str, folder: Path) -> Runtime:
    """An initialised channelflow whose keys (audit and signing) live in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(
        Settings(
            database_url=database_url,
            key_file=folder / "audit.key",
            signing_key_file=folder / "signing.key",
            user=None,
            reference_prefix="CF",
        )
    )
    with clock.frozen_at(BASE):
        runtime.initialise()
        runtime.workflow.add_first_admin("admin")
        for name, role in USERS:
            runtime.workflow.add_user(name, role, email=f"{name}@example.org", by="admin")
    return runtime


def build_trail(database_url: str, tmp: Path) -> Trail:
    """Users on BASE; referral A on DAY1, B on DAY2; C, a review of A, an adjournment of B,
    a read of A and a refused close of C on DAY3. The keys go in ``tmp/keys``."""
    runtime = new_runtime(database_url, tmp / "keys")
    workflow = runtime.workflow
    a = referral_in(
        workflow,
        lc.INTERVENTION,
        at=DAY1,
        subject_name=NAME,
        date_of_birth=DOB,
        address=ADDRESS,
        school=SCHOOL,
    )
    b = referral_in(workflow, lc.PANEL_REVIEW, at=DAY2)
    c = referral_in(workflow, lc.SCREENED, at=DAY3)
    with clock.frozen_at(DAY3):
        workflow.fire(a, lc.REVIEW, by=CHAIR, values={"outcome": "progressing"})
        workflow.fire(b, lc.ADJOURN, by=CHAIR, reason=UNICODE_REASON)
        views.show_case(workflow, a, by=COORDINATOR)
        with pytest.raises(PermissionDenied):
            workflow.fire(c, lc.CLOSE, by=AUDITOR, values={"code": "duplicate"})
    return Trail(runtime, tmp, a, b, c)


# Reading the database behind channelflow's back ------------------------------------------------


def audit_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        result = connection.execute(text("SELECT * FROM audit_event ORDER BY seq"))
        return [dict(row) for row in result.mappings()]


def access_rows(engine: Engine) -> list[dict[str, Any]]:
    """The access log, read through its table so times come back as aware datetimes."""
    table = AccessLog.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        result = connection.execute(select(table).order_by(table.c.id))
        return [dict(row) for row in result.mappings()]


def local_day(recorded_at: str) -> date:
    instant = datetime.strptime(recorded_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return clock.local_date(instant)


# The command line -------------------------------------------------------------------------------


class ExportCli:
    """`channelflow` in this process, with the trail's database, audit key and signing key
    (never the signing key the default path would find in the working directory)."""

    def __init__(
        self, trail: Trail, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        self.trail, self.monkeypatch, self.capsys = trail, monkeypatch, capsys
        monkeypatch.chdir(trail.tmp)

    def __call__(self, *args: str) -> Outcome:
        settings = self.trail.runtime.settings
        self.monkeypatch.setenv("CHANNELFLOW_DATABASE_URL", settings.database_url)
        self.monkeypatch.setenv("CHANNELFLOW_KEY_FILE", str(settings.key_file))
        self.monkeypatch.setenv("CHANNELFLOW_SIGNING_KEY", str(settings.signing_key_file))
        return run_cli(self.capsys, *args)

    def offline(self, *args: str) -> Outcome:
        """No database and no keys: what an inspector has."""
        return offline_cli(self.monkeypatch, self.capsys, self.trail.tmp, *args)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> Outcome:
    capsys.readouterr()
    code = run(list(args))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return Outcome(code, captured.out, captured.err)


def offline_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp: Path, *args: str
) -> Outcome:
    nowhere = tmp / "nowhere"
    monkeypatch.setenv("CHANNELFLOW_DATABASE_URL", f"sqlite:///{nowhere / 'missing.db'}")
    monkeypatch.setenv("CHANNELFLOW_KEY_FILE", str(nowhere / "audit.key"))
    monkeypatch.setenv("CHANNELFLOW_SIGNING_KEY", str(nowhere / "signing.key"))
    outcome = run_cli(capsys, *args)
    assert not nowhere.exists()
    return outcome


def assert_integrity_error(outcome: Outcome, phrase: str) -> None:
    """Exit 6 and one line, ``channelflow: error: ...``, holding ``phrase``."""
    assert outcome.code == EXIT_INTEGRITY, outcome
    assert outcome.err.startswith("channelflow: error: "), outcome.err
    assert outcome.err.count("\n") == 1, outcome.err
    assert phrase in outcome.err, outcome.err
    assert "verified" not in outcome.out


# Reading a bundle -------------------------------------------------------------------------------


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def bundle_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def event_row(event: dict[str, Any]) -> dict[str, Any]:
    """An exported event as the database holds it (``data`` as its canonical JSON text)."""
    return {**event, "data": canonical(event["data"])}


def recomputed_hash(event: dict[str, Any]) -> str:
    row = event_row(event)
    return row_hash(*(row[name] for name in bundle.COLUMNS[:13]))


def event_text(event: dict[str, Any]) -> str:
    return canonical(event) + "\n"


# What someone with the bundle (and maybe their own key) can recompute ---------------------------

TAG_FILES = (
    bundle.README,
    bundle.BAG_INFO,
    bundle.BAGIT,
    bundle.CHECKPOINT,
    bundle.MANIFEST,
    bundle.SCOPE,
    bundle.PUBLIC_KEY,
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def payload_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in (root / "data").rglob("*") if p.is_file())


def recompute_manifests(root: Path) -> None:
    """Both BagIt manifests and bag-info's Payload-Oxum, as `bagit` would write them."""
    payload = payload_files(root)
    (root / bundle.MANIFEST).write_text(
        "".join(f"{_sha256(root / name)}  {name}\n" for name in payload), "utf-8"
    )
    octets = sum((root / name).stat().st_size for name in payload)
    info = root / bundle.BAG_INFO
    lines = [
        f"Payload-Oxum: {octets}.{len(payload)}" if line.startswith("Payload-Oxum:") else line
        for line in info.read_text("utf-8").splitlines()
    ]
    info.write_text("\n".join(lines) + "\n", "utf-8")
    tags = sorted(name for name in TAG_FILES if (root / name).exists())
    (root / bundle.TAG_MANIFEST).write_text(
        "".join(f"{_sha256(root / name)}  {name}\n" for name in tags), "utf-8"
    )


def read_scope(root: Path) -> dict[str, Any]:
    value = json.loads((root / bundle.SCOPE).read_text("utf-8"))
    assert isinstance(value, dict)
    return value


def write_scope(root: Path, scope: dict[str, Any]) -> None:
    scope["files"] = {
        name: {"sha256": _sha256(root / name), "bytes": (root / name).stat().st_size}
        for name in payload_files(root)
    }
    (root / bundle.SCOPE).write_text(canonical(scope) + "\n", "utf-8")


def recompute_scope_files(root: Path) -> None:
    """scope.json's file hashes made to agree with the data files, then the manifests."""
    write_scope(root, read_scope(root))
    recompute_manifests(root)


def resign(root: Path, key: SigningKey, scope: dict[str, Any] | None = None) -> None:
    """A new scope.json (file hashes recomputed), checkpoint and public key, signed with
    ``key``, and both manifests: all an attacker with their own key can do."""
    scope = read_scope(root) if scope is None else scope
    write_scope(root, scope)
    origin = scope["origin"]
    checkpoint = Checkpoint(
        origin=origin,
        size=scope["tree_size"],
        root=bytes.fromhex(scope["root"]),
        extensions=(f"scope sha256:{_sha256(root / bundle.SCOPE)}",),
    )
    (root / bundle.CHECKPOINT).write_text(sign_checkpoint(checkpoint, key, origin), "utf-8")
    (root / bundle.PUBLIC_KEY).write_text(key.public.to_text(origin) + "\n", "utf-8")
    recompute_manifests(root)


def write_events(root: Path, events: Iterable[dict[str, Any]]) -> None:
    (root / bundle.EVENTS).write_text("".join(event_text(e) for e in events), "utf-8")


def completeness(events: list[dict[str, Any]], cases: Iterable[str]) -> dict[str, Any]:
    """The scope's completeness block an exporter would write for these events: totals, and
    a tally for each of the listed ``cases`` (an export of chosen cases)."""
    tallies: dict[str, dict[str, Any]] = {
        case: {"count": 0, "first_seq": None, "last_seq": None, "latest_hash": None}
        for case in cases
    }
    for event in events:
        tally = tallies.get(event["entity_id"]) if event["entity_type"] == "referral" else None
        if tally is None:
            continue
        tally["count"] += 1
        tally["first_seq"] = tally["first_seq"] or event["seq"]
        tally["last_seq"], tally["latest_hash"] = event["seq"], event["hash"]
    return {
        "events": len(events),
        "first_seq": events[0]["seq"] if events else None,
        "last_seq": events[-1]["seq"] if events else None,
        "cases": dict(sorted(tallies.items())),
    }


def merkle_tree(events: Iterable[dict[str, Any]]) -> merkle.Tree:
    tree = merkle.Tree()
    for event in events:
        tree.append(merkle.event_leaf(event["hash"]))
    return tree


def bundle_text(root: Path) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in bundle_files(root)}


def environment_without_channelflow() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CHANNELFLOW_")}
