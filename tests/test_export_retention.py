"""Retention and exports together: after a purge no personal detail is left to export, and
bundles made before and after still verify."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from channelflow import clock, retention
from tests.export_helpers import (
    CHAIR,
    PERSONAL,
    ExportCli,
    Trail,
    build_trail,
    bundle_text,
    jsonl,
)
from tests.factories import ADMIN, COORDINATOR


@pytest.fixture
def trail(database_url: str, tmp_path: Path) -> Iterator[Trail]:
    made = build_trail(database_url, tmp_path)
    yield made
    made.runtime.close()


def test_after_a_purge_old_and_new_bundles_verify_and_the_new_one_holds_no_personal_detail(
    trail: Trail, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = ExportCli(trail, monkeypatch, capsys)
    workflow = trail.runtime.workflow
    # Referral A leaves Channel, then the retention period passes.
    closed_at = clock.now()
    with clock.frozen_at(closed_at):
        workflow.fire(trail.a, "exit", by=CHAIR, values={"summary": "objectives met"})
    before = trail.tmp / "before"
    assert cli("audit", "export", str(before), "--include-personal-data", "--by", CHAIR).code == 0
    assert any(detail in jsonl(before / "data/people.jsonl").__repr__() for detail in PERSONAL)

    later = closed_at + timedelta(days=366 * 7)
    with clock.frozen_at(later):
        purged = retention.apply(workflow, years=6, by=ADMIN)
        assert trail.a in purged.references
        after = trail.tmp / "after"
        exported = cli("audit", "export", str(after), "--include-personal-data", "--by", CHAIR)
        assert exported.code == 0, exported.err

    # Nothing personal anywhere in the new bundle, even asked for: the details are gone.
    people = {row["reference"]: row["person"] for row in jsonl(after / "data/people.jsonl")}
    assert people[trail.a] is None
    texts = bundle_text(after)
    for detail in PERSONAL:
        assert not any(detail.encode() in content for content in texts.values()), detail
    # Both bundles still verify, and the later one is consistent with the earlier.
    assert cli.offline("audit", "verify", str(before)).code == 0
    verified = cli.offline("audit", "verify", str(after), "--since", str(before))
    assert verified.code == 0, verified.err
    assert "the trail only grew" in verified.out
    # The database trail verifies too, purge event included.
    assert cli("audit", "verify", "--by", COORDINATOR).code == 0
