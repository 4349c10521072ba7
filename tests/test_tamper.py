"""Tampering with the audit trail: the database refuses it, and verification catches it.

Every test runs on SQLite and on PostgreSQL. The tamper tests first drop the append-only
triggers, as someone with full control of the database could, then alter the trail the way an
attacker would; `verify_chain` and `channelflow audit verify` must name the first bad event.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from channelflow.audit.canonical import GENESIS_HASH, event_hash, format_time, parse_time
from channelflow.audit.keys import AuditKey, create_key
from channelflow.audit.verify import verify_chain
from channelflow.cli import run
from channelflow.exceptions import IntegrityFailure, PermissionDenied
from channelflow.runtime import KEY_ID, Runtime
from channelflow.states import referral as lc
from channelflow.workflow import views
from tests.conftest import make_runtime
from tests.factories import AUDITOR, CHAIR, COORDINATOR, referral_in

EXIT_USAGE = 2
EXIT_INTEGRITY = 6

# The columns one audit row is hashed over, in the order `event_hash` takes them.
HASHED = (
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
)
CONTENT = (*HASHED[1:], "hash", "mac")


@dataclass(frozen=True)
class Trail:
    """A trail of user events followed by three referrals' interleaved events."""

    runtime: Runtime
    references: tuple[str, str, str]

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    @property
    def url(self) -> str:
        return self.runtime.settings.database_url

    @property
    def key_file(self) -> Path:
        return self.runtime.settings.key_file


@pytest.fixture
def trail(runtime: Runtime) -> Trail:
    workflow = runtime.workflow
    anchor = datetime.now(UTC) - timedelta(minutes=5)
    first = referral_in(workflow, lc.INTERVENTION, at=anchor)
    second = referral_in(workflow, lc.PANEL_REVIEW, at=anchor)
    third = referral_in(workflow, lc.SCREENED, at=anchor)
    workflow.fire(first, lc.REVIEW, by=CHAIR, values={"outcome": "progressing"}, at=anchor)
    workflow.fire(second, lc.ADJOURN, by=CHAIR, reason="panel not quorate", at=anchor)
    workflow.fire(first, lc.REVIEW, by=CHAIR, values={"outcome": "no_progress"}, at=anchor)
    # Reading a case and a refused action both go to the access log.
    views.show_case(workflow, first, by=COORDINATOR)
    with pytest.raises(PermissionDenied):
        workflow.fire(third, lc.CLOSE, by=AUDITOR, values={"code": "duplicate"})
    verified = verify_chain(runtime.engine, runtime.key)
    assert verified.count == len(audit_rows(runtime.engine)) > 15
    return Trail(runtime, (first, second, third))


# Reading and writing rows behind channelflow's back -------------------------------------------


def audit_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        result = connection.execute(text("SELECT * FROM audit_event ORDER BY seq"))
        return [dict(row) for row in result.mappings()]


def access_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        result = connection.execute(text("SELECT * FROM access_log ORDER BY id"))
        return [dict(row) for row in result.mappings()]


def seq_of(engine: Engine, reference: str, event: str) -> int:
    """The sequence number of ``reference``'s first ``event``."""
    with engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT min(seq) FROM audit_event WHERE entity_type = 'referral' "
                    "AND entity_id = :reference AND event = :event"
                ),
                {"reference": reference, "event": event},
            ).scalar_one()
        )


def head_seq(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT max(seq) FROM audit_event")).scalar_one())


def drop_append_only_triggers(engine: Engine) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(text("DROP TRIGGER audit_event_no_update"))
            connection.execute(text("DROP TRIGGER audit_event_no_delete"))
        else:
            connection.execute(text("DROP TRIGGER audit_event_append_only ON audit_event"))


def set_columns(connection: Connection, seq: int, values: dict[str, Any]) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    result = connection.execute(
        text(f"UPDATE audit_event SET {assignments} WHERE seq = :where_seq"),
        {**values, "where_seq": seq},
    )
    assert result.rowcount == 1


def insert_row(connection: Connection, row: dict[str, Any]) -> None:
    names = ", ".join(row)
    placeholders = ", ".join(f":{name}" for name in row)
    connection.execute(text(f"INSERT INTO audit_event ({names}) VALUES ({placeholders})"), row)


def rehash(row: dict[str, Any], *, prev_hash: str) -> str:
    """The SHA-256 an attacker without the key can recompute for ``row``."""
    return event_hash(**{name: row[name] for name in HASHED[:-1]}, prev_hash=prev_hash)


def verification_failure(engine: Engine, key: AuditKey) -> tuple[int | None, str]:
    """The (sequence, message) of the IntegrityFailure `verify_chain` must raise."""
    with pytest.raises(IntegrityFailure) as failure:
        verify_chain(engine, key)
    return failure.value.sequence, failure.value.message


# The tampering, each returning the first sequence number verification must name ---------------

Tamper = Callable[[Connection, Trail], int]


def edit_reason(connection: Connection, trail: Trail) -> int:
    seq = seq_of(trail.engine, trail.references[1], lc.ADJOURN)
    set_columns(connection, seq, {"reason": "the panel agreed to close the case"})
    return seq


def edit_data(connection: Connection, trail: Trail) -> int:
    seq = seq_of(trail.engine, trail.references[1], lc.SCREEN)
    set_columns(connection, seq, {"data": '{"outcome":"no_further_action"}'})
    return seq


def edit_actor(connection: Connection, trail: Trail) -> int:
    seq = seq_of(trail.engine, trail.references[0], lc.ACCEPT)
    set_columns(connection, seq, {"actor": "admin", "role": "admin"})
    return seq


def edit_occurred_at(connection: Connection, trail: Trail) -> int:
    seq = seq_of(trail.engine, trail.references[0], lc.START_INTERVENTION)
    row = audit_rows(trail.engine)[seq - 1]
    earlier = parse_time(row["occurred_at"]) - timedelta(days=30)
    set_columns(connection, seq, {"occurred_at": format_time(earlier)})
    return seq


def delete_middle_row(connection: Connection, trail: Trail) -> int:
    seq = seq_of(trail.engine, trail.references[1], lc.REFER_TO_PANEL)
    connection.execute(text("DELETE FROM audit_event WHERE seq = :seq"), {"seq": seq})
    return seq


def delete_first_row(connection: Connection, trail: Trail) -> int:
    connection.execute(text("DELETE FROM audit_event WHERE seq = 1"))
    return 1


def forge_appended_row(connection: Connection, trail: Trail) -> int:
    """A well-formed `close` for the third referral, chained and MACed with a guessed key."""
    head = audit_rows(trail.engine)[-1]
    reference = trail.references[2]
    forged = {
        "seq": head["seq"] + 1,
        "entity_type": "referral",
        "entity_id": reference,
        "event": lc.CLOSE,
        "from_state": lc.SCREENED,
        "to_state": lc.CLOSED,
        "actor": COORDINATOR,
        "role": "coordinator",
        "occurred_at": head["occurred_at"],
        "recorded_at": head["recorded_at"],
        "reason": None,
        "data": '{"code":"duplicate"}',
    }
    forged["hash"] = rehash(forged, prev_hash=head["hash"])
    forged["prev_hash"] = head["hash"]
    forged["mac"] = AuditKey(secrets.token_bytes(32)).mac(forged["hash"])
    insert_row(connection, forged)
    # The projection is made to agree, so only the chain itself can give the forgery away.
    connection.execute(
        text(
            "UPDATE referral SET state = 'closed', version = version + 1 "
            "WHERE reference = :reference"
        ),
        {"reference": reference},
    )
    return int(forged["seq"])


def swap_two_rows(connection: Connection, trail: Trail) -> int:
    """Reorder history: two events of different referrals trade places in the chain."""
    early = seq_of(trail.engine, trail.references[1], lc.SCREEN)
    late = seq_of(trail.engine, trail.references[2], lc.SCREEN)
    rows = {row["seq"]: row for row in audit_rows(trail.engine)}
    # Park one row on placeholder hashes first: hash and prev_hash are unique columns.
    set_columns(connection, late, {"hash": "f" * 64, "prev_hash": "e" * 64})
    set_columns(connection, early, {name: rows[late][name] for name in CONTENT})
    set_columns(connection, late, {name: rows[early][name] for name in CONTENT})
    return early


def rewrite_and_rehash_without_key(connection: Connection, trail: Trail) -> int:
    """Change a row, then recompute its SHA-256 and every later link; the MACs stay stale."""
    seq = seq_of(trail.engine, trail.references[0], lc.SCREEN)
    rows = audit_rows(trail.engine)
    rows[seq - 1]["data"] = '{"outcome":"no_further_action"}'
    previous = rows[seq - 2]["hash"] if seq > 1 else GENESIS_HASH
    for row in rows[seq - 1 :]:
        digest = rehash(row, prev_hash=previous)
        changed = {"prev_hash": previous, "hash": digest}
        if row["seq"] == seq:
            changed["data"] = row["data"]
        set_columns(connection, row["seq"], changed)
        previous = digest
    return seq


def truncate_tail(connection: Connection, trail: Trail) -> int:
    """Cut the last two events (both about referrals) off the end of the trail."""
    head = head_seq(trail.engine)
    connection.execute(text("DELETE FROM audit_event WHERE seq >= :seq"), {"seq": head - 1})
    return head - 1


def delete_head_row(connection: Connection, trail: Trail) -> int:
    head = head_seq(trail.engine)
    connection.execute(text("DELETE FROM audit_event WHERE seq = :seq"), {"seq": head})
    return head


# Caught while walking the chain: the row itself, or its link to the one before, is wrong.
CHAIN_TAMPERS: dict[str, Tamper] = {
    "edit_reason": edit_reason,
    "edit_data": edit_data,
    "edit_actor": edit_actor,
    "edit_occurred_at": edit_occurred_at,
    "delete_middle_row": delete_middle_row,
    "delete_first_row": delete_first_row,
    "forge_appended_row": forge_appended_row,
    "swap_two_rows": swap_two_rows,
    "rewrite_and_rehash_without_key": rewrite_and_rehash_without_key,
}
# Invisible to the chain (what is left is a valid chain): caught by the referral versions.
TAIL_TAMPERS: dict[str, Tamper] = {
    "truncate_tail": truncate_tail,
    "delete_head_row": delete_head_row,
}
TAMPERS = CHAIN_TAMPERS | TAIL_TAMPERS


def tamper_with(trail: Trail, name: str) -> int:
    drop_append_only_triggers(trail.engine)
    with trail.engine.begin() as connection:
        return TAMPERS[name](connection, trail)


# Running the CLI --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


def cli_in_process(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    key_file: Path,
    *args: str,
) -> CliResult:
    """`channelflow ARGS` through the CLI's own entry point, in this process (fast)."""
    capsys.readouterr()
    monkeypatch.setenv("CHANNELFLOW_KEY_FILE", str(key_file))
    code = run(list(args))
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def cli_processes(tmp_path: Path, *calls: tuple[Path, list[str]]) -> list[CliResult]:
    """Run each (key file, ARGS) as `python -m channelflow ARGS`, all at once."""
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "channelflow", *args],
            cwd=tmp_path,
            env={**os.environ, "CHANNELFLOW_KEY_FILE": str(key_file)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for key_file, args in calls
    ]
    results = []
    for process in started:
        out, err = process.communicate(timeout=60)
        results.append(CliResult(process.returncode, out, err))
    return results


def assert_clean_error(result: CliResult, code: int) -> None:
    assert result.code == code, result
    assert result.err.startswith("channelflow: error: "), result.err
    assert "Traceback" not in result.err + result.out


def names_number(message: str, number: int) -> bool:
    return re.search(rf"(?<![\d-]){number}(?!\d)", message) is not None


def verify_args(trail: Trail, *extra: str) -> list[str]:
    return ["audit", "verify", *extra, "--db", trail.url]


# The database refuses changes to the append-only tables -------------------------------------

REFUSED = (
    "UPDATE {table} SET actor = 'mallory'",
    "UPDATE {table} SET actor = 'mallory' WHERE actor = 'cora'",
    "DELETE FROM {table}",
    "DELETE FROM {table} WHERE actor = 'cora'",
)


@pytest.mark.parametrize("table", ["audit_event", "access_log"])
def test_database_refuses_update_and_delete_on_append_only_table(trail: Trail, table: str) -> None:
    read = audit_rows if table == "audit_event" else access_rows
    before = read(trail.engine)
    assert any(row["actor"] == COORDINATOR for row in before)

    for statement in REFUSED:
        with pytest.raises(DBAPIError, match="append-only"), trail.engine.begin() as connection:
            connection.execute(text(statement.format(table=table)))

    assert read(trail.engine) == before
    verify_chain(trail.engine, trail.runtime.key)


@pytest.mark.postgres
def test_postgres_refuses_truncate_on_append_only_tables(postgres_url: str, tmp_path: Path) -> None:
    runtime = make_runtime(postgres_url, tmp_path / "audit.key")
    try:
        views.list_cases(runtime.workflow, by=COORDINATOR)
        for table, read in (("audit_event", audit_rows), ("access_log", access_rows)):
            before = read(runtime.engine)
            assert before

            with (
                pytest.raises(DBAPIError, match="append-only"),
                runtime.engine.begin() as connection,
            ):
                connection.execute(text(f"TRUNCATE {table}"))

            assert read(runtime.engine) == before
    finally:
        runtime.close()


# Verification catches every kind of tampering ---------------------------------------------------


@pytest.mark.parametrize("tamper", list(CHAIN_TAMPERS))
def test_tampered_chain_fails_verification_at_first_bad_sequence(
    trail: Trail,
    tamper: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first_bad = tamper_with(trail, tamper)

    sequence, message = verification_failure(trail.engine, trail.runtime.key)
    plain = cli_in_process(monkeypatch, capsys, trail.key_file, *verify_args(trail))
    as_json = cli_in_process(monkeypatch, capsys, trail.key_file, *verify_args(trail, "--json"))

    assert sequence == first_bad, message
    assert names_number(message, first_bad), message
    assert_clean_error(plain, EXIT_INTEGRITY)
    assert names_number(plain.err, first_bad), plain.err
    assert "verified" not in plain.out
    assert_clean_error(as_json, EXIT_INTEGRITY)
    assert json.loads(as_json.out) == {"ok": False, "first_bad_seq": first_bad, "error": message}


@pytest.mark.parametrize("tamper", list(TAIL_TAMPERS))
def test_truncated_tail_fails_verification_at_first_missing_sequence(
    trail: Trail,
    tamper: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first_bad = tamper_with(trail, tamper)
    # What is left is a valid chain; only the referral versions give the cut away.
    remaining = audit_rows(trail.engine)
    assert [row["seq"] for row in remaining] == list(range(1, first_bad))

    sequence, message = verification_failure(trail.engine, trail.runtime.key)
    plain = cli_in_process(monkeypatch, capsys, trail.key_file, *verify_args(trail))
    as_json = cli_in_process(monkeypatch, capsys, trail.key_file, *verify_args(trail, "--json"))

    assert sequence == first_bad, message
    assert "missing" in message
    assert_clean_error(plain, EXIT_INTEGRITY)
    assert "missing" in plain.err
    assert "verified" not in plain.out
    assert_clean_error(as_json, EXIT_INTEGRITY)
    assert json.loads(as_json.out) == {"ok": False, "first_bad_seq": first_bad, "error": message}


def test_truncated_tail_error_message_names_first_missing_sequence(
    trail: Trail, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first_bad = tamper_with(trail, "truncate_tail")

    plain = cli_in_process(monkeypatch, capsys, trail.key_file, *verify_args(trail))

    assert_clean_error(plain, EXIT_INTEGRITY)
    assert names_number(plain.err, first_bad), plain.err


def test_cli_verify_as_separate_process_exits_6_naming_first_bad_sequence(
    trail: Trail, tmp_path: Path
) -> None:
    first_bad = tamper_with(trail, "rewrite_and_rehash_without_key")

    plain, as_json = cli_processes(
        tmp_path,
        (trail.key_file, verify_args(trail)),
        (trail.key_file, verify_args(trail, "--json")),
    )

    assert_clean_error(plain, EXIT_INTEGRITY)
    assert names_number(plain.err, first_bad), plain.err
    assert plain.out == ""
    assert_clean_error(as_json, EXIT_INTEGRITY)
    report = json.loads(as_json.out)
    assert (report["ok"], report["first_bad_seq"]) == (False, first_bad)


# The untouched trail, and the wrong or missing key ---------------------------------------------


def test_untouched_trail_verifies_with_count_and_head_hash(trail: Trail, tmp_path: Path) -> None:
    rows = audit_rows(trail.engine)
    head = rows[-1]["hash"]

    plain, as_json = cli_processes(
        tmp_path,
        (trail.key_file, verify_args(trail)),
        (trail.key_file, verify_args(trail, "--json")),
    )

    assert plain.code == 0, plain
    assert plain.out.strip() == f"audit trail verified: {len(rows)} events, head {head}"
    assert plain.err == ""
    assert as_json.code == 0, as_json
    assert json.loads(as_json.out) == {"ok": True, "count": len(rows), "head": head}
    verified = verify_chain(trail.engine, trail.runtime.key)
    assert (verified.count, verified.head) == (len(rows), head)
    assert [row["seq"] for row in rows] == list(range(1, len(rows) + 1))


def test_verify_with_another_or_missing_key_file_fails_clearly(
    trail: Trail, tmp_path: Path
) -> None:
    other = create_key(tmp_path / "other.key")
    missing = tmp_path / "nowhere" / "audit.key"

    wrong_key, no_key = cli_processes(
        tmp_path,
        (tmp_path / "other.key", verify_args(trail)),
        (missing, verify_args(trail, "--json")),
    )

    assert_clean_error(wrong_key, EXIT_USAGE)
    assert "does not belong to this database" in wrong_key.err
    assert wrong_key.out == ""
    assert_clean_error(no_key, EXIT_USAGE)
    assert f"{missing} does not exist" in no_key.err
    assert no_key.out == ""
    # The library call, given the wrong key, fails on the very first MAC.
    assert verification_failure(trail.engine, other)[0] == 1


def test_trail_resigned_with_attackers_key_fails_with_the_real_key(
    trail: Trail, tmp_path: Path
) -> None:
    """Someone rewrites every MAC under their own key and rebinds the database to it."""
    attacker = create_key(tmp_path / "attacker.key")
    drop_append_only_triggers(trail.engine)
    with trail.engine.begin() as connection:
        for row in audit_rows(trail.engine):
            set_columns(connection, row["seq"], {"mac": attacker.mac(row["hash"])})
        connection.execute(
            text("UPDATE channelflow_meta SET value = :value WHERE key = :key"),
            {"value": attacker.key_id, "key": KEY_ID},
        )
    assert verify_chain(trail.engine, attacker).count == len(audit_rows(trail.engine))

    [result] = cli_processes(tmp_path, (trail.key_file, verify_args(trail)))

    assert_clean_error(result, EXIT_USAGE)
    assert "does not belong to this database" in result.err
    assert verification_failure(trail.engine, trail.runtime.key)[0] == 1
