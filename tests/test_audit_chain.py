from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, text

from channelflow import clock
from channelflow.states import referral as lc
from channelflow.workflow.engine import Workflow
from tests.factories import NOW, POLICE, open_referral


def test_recording_time_never_runs_backwards_along_the_chain(
    workflow: Workflow, engine: Engine
) -> None:
    # A second machine whose clock is an hour slow still records after the first.
    with clock.frozen_at(NOW):
        first = open_referral(workflow)
    with clock.frozen_at(NOW - timedelta(hours=1)):
        workflow.fire(first, lc.SCREEN, by=POLICE, values={"outcome": "signpost"})
    with engine.connect() as connection:
        stamps = connection.execute(text("SELECT recorded_at FROM audit_event ORDER BY seq")).all()
    recorded = [row[0] for row in stamps]
    assert recorded == sorted(recorded)


def test_personal_details_enter_the_trail_only_as_keyed_hashes(
    workflow: Workflow, engine: Engine
) -> None:
    reference = open_referral(workflow, subject_name="Zebedee Quillfeather", school="Demo High")
    with engine.connect() as connection:
        trail = connection.execute(
            text("SELECT data FROM audit_event WHERE entity_id = :ref"), {"ref": reference}
        ).scalar_one()
    assert "Zebedee" not in trail
    assert "Demo High" not in trail
    assert "1990-03-04" not in trail
    assert '"full_name":"hmac-sha256:' in trail
