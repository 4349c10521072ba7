"""Long trails are verified in two halves at once; the answer must not change."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from channelflow.audit.verify import verify_chain
from channelflow.exceptions import IntegrityFailure
from tests import test_tamper
from tests.test_tamper import (
    TAMPERS,
    Trail,
    drop_append_only_triggers,
    head_seq,
    tamper_with,
)

# The tamper tests' fixture: a trail of user and referral events.
trail = test_tamper.trail


def _split_verification(trail: Trail) -> tuple[int | None, str]:
    with pytest.raises(IntegrityFailure) as failure:
        verify_chain(trail.engine, trail.runtime.key, parallel_from=1)
    return failure.value.sequence, failure.value.message


def test_an_intact_trail_verifies_the_same_in_two_halves(trail: Trail) -> None:
    alone = verify_chain(trail.engine, trail.runtime.key)
    progress: list[int] = []
    halves = verify_chain(
        trail.engine, trail.runtime.key, parallel_from=1, progress=progress.append
    )
    assert halves == alone
    assert progress
    assert progress[-1] == alone.count


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_two_halves_name_the_same_first_bad_event_as_one_walk(trail: Trail, tamper: str) -> None:
    first_bad = tamper_with(trail, tamper)
    with pytest.raises(IntegrityFailure) as alone:
        verify_chain(trail.engine, trail.runtime.key)
    assert alone.value.sequence == first_bad
    assert _split_verification(trail)[0] == first_bad


@pytest.mark.parametrize("where", ["last_of_first_half", "first_of_second_half"])
@pytest.mark.parametrize("how", ["edit", "delete"])
def test_tampering_at_the_join_of_the_halves_is_named(trail: Trail, where: str, how: str) -> None:
    split = head_seq(trail.engine) // 2 + 1
    seq = split - 1 if where == "last_of_first_half" else split
    drop_append_only_triggers(trail.engine)
    with trail.engine.begin() as connection:
        if how == "edit":
            connection.execute(
                text("UPDATE audit_event SET reason = 'forged' WHERE seq = :seq"), {"seq": seq}
            )
        else:
            connection.execute(text("DELETE FROM audit_event WHERE seq = :seq"), {"seq": seq})
    sequence, message = _split_verification(trail)
    assert sequence == seq
    assert str(seq) in message


def test_a_planted_helper_module_in_the_working_directory_is_never_run(
    trail: Trail, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "channelflow" / "audit"
    fake.mkdir(parents=True)
    for folder in (tmp_path / "channelflow", fake):
        (folder / "__init__.py").write_text("")
    stolen = tmp_path / "stolen.txt"
    (fake / "walk.py").write_text(
        "import json, sys\n"
        f"open({str(stolen)!r}, 'w').write(sys.stdin.readline())\n"
        "print(json.dumps({'ok': True, 'first_prev_hash': None, 'last_seq': 10**9,"
        " 'last_hash': 'f' * 64}))\n"
    )
    monkeypatch.chdir(tmp_path)
    first_bad = tamper_with(trail, "edit_reason")
    sequence, _ = _split_verification(trail)
    assert sequence == first_bad
    assert not stolen.exists()
