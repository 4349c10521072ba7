"""Several OS processes running the real `channelflow` CLI against one database at once.

A launcher process imports the CLI once and forks one worker process per plan; each worker
waits at a file barrier and then runs its `channelflow ...` commands through the CLI's entry
point, `channelflow.cli.run` (what the `channelflow` script and `python -m channelflow` call),
opening its own database connections as any CLI process does. Forking after the import keeps
interpreter start-up out of the race, so the workers' transactions really overlap, and keeps
the tests fast on a small machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from channelflow.audit.verify import verify_chain
from channelflow.runtime import Runtime
from channelflow.states import referral as lc
from tests.factories import CHAIR, COORDINATOR, LEAD, POLICE, open_referral, referral_in

# Every test here starts a crowd of processes and takes several seconds.
pytestmark = pytest.mark.slow

EXIT_OK = 0
EXIT_CONCURRENT = 5
WORKERS = 6
TIMEOUT = 90

LAUNCHER = """
import json, os, sys, time, traceback
from pathlib import Path

from channelflow.cli import run

folder, plans = Path(sys.argv[1]), json.loads(sys.argv[2])


def work(name, rounds):
    (folder / f"ready-{name}").touch()
    for index, commands in enumerate(rounds):
        deadline = time.monotonic() + 120
        while not (folder / f"go-{index}").exists():
            if (folder / "stop").exists() or time.monotonic() > deadline:
                return 75
            time.sleep(0.002)
        codes = [run(argv) for argv in commands]
        sys.stdout.flush()
        partial = folder / f"codes-{name}-{index}.part"
        partial.write_text(json.dumps(codes))
        partial.rename(folder / f"codes-{name}-{index}")
    return 0


children = []
for name, rounds in enumerate(plans):
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        status = 70
        try:
            for fd, kind in ((1, "out"), (2, "err")):
                target = os.open(folder / f"{kind}-{name}", os.O_WRONLY | os.O_CREAT, 0o600)
                os.dup2(target, fd)
                os.close(target)
            status = work(name, rounds)
        except BaseException:
            traceback.print_exc()
            (folder / f"dead-{name}").touch()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    children.append(pid)
failed = [pid for pid in children if os.waitpid(pid, 0)[1] != 0]
sys.exit(1 if failed else 0)
"""


def cli_env(key_file: Path) -> dict[str, str]:
    return {**os.environ, "CHANNELFLOW_KEY_FILE": str(key_file)}


def channelflow(tmp_path: Path, key_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m channelflow ARGS` as its own process."""
    return subprocess.run(
        [sys.executable, "-m", "channelflow", *args],
        cwd=tmp_path,
        env=cli_env(key_file),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@dataclass
class Crowd:
    """Worker processes that run their commands in rounds, all starting each round together.

    ``plans[w][r]`` is the list of argument lists worker ``w`` runs, one after the other, in
    round ``r``.
    """

    folder: Path
    key_file: Path
    plans: list[list[list[list[str]]]]
    launcher: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Crowd:
        self.folder.mkdir()
        with open(self.folder / "launcher.err", "wb") as err:
            self.launcher = subprocess.Popen(
                [sys.executable, "-c", LAUNCHER, str(self.folder), json.dumps(self.plans)],
                cwd=self.folder,
                env=cli_env(self.key_file),
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self._wait_for(lambda name: self.folder / f"ready-{name}", "start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self.launcher is not None
        if self.launcher.poll() is None:
            (self.folder / "stop").touch()
            try:
                self.launcher.wait(timeout=TIMEOUT)
            finally:
                self.launcher.kill()
                self.launcher.wait(timeout=TIMEOUT)

    def release(self, index: int) -> None:
        (self.folder / f"go-{index}").touch()

    def round_done(self, index: int) -> bool:
        return all(
            (self.folder / f"codes-{name}-{index}").exists() for name in range(len(self.plans))
        )

    def run_round(self, index: int) -> list[list[int]]:
        """Release every worker into round ``index``; each worker's exit codes, in order."""
        self.release(index)
        return self.collect(index)

    def collect(self, index: int) -> list[list[int]]:
        self._wait_for(lambda name: self.folder / f"codes-{name}-{index}", f"round {index}")
        return [
            json.loads((self.folder / f"codes-{name}-{index}").read_text())
            for name in range(len(self.plans))
        ]

    def output(self, name: int) -> str:
        return (self.folder / f"out-{name}").read_text()

    def errors(self) -> str:
        return "\n".join(
            [f"launcher: {(self.folder / 'launcher.err').read_text()}"]
            + [
                f"worker {name}: {(self.folder / f'err-{name}').read_text()}"
                for name in range(len(self.plans))
                if (self.folder / f"err-{name}").exists()
            ]
        )

    def finish(self) -> None:
        assert self.launcher is not None
        assert self.launcher.wait(timeout=TIMEOUT) == 0, self.errors()

    def _wait_for(self, marker: Callable[[int], Path], what: str) -> None:
        assert self.launcher is not None
        deadline = time.monotonic() + TIMEOUT
        waiting = set(range(len(self.plans)))
        while waiting:
            launcher_gone = self.launcher.poll() is not None
            # Looked at after the launcher, so a worker that wrote its marker and exited since
            # is not taken for dead.
            waiting = {name for name in waiting if not marker(name).exists()}
            dead = [name for name in waiting if (self.folder / f"dead-{name}").exists()]
            if dead or (waiting and launcher_gone):
                pytest.fail(
                    f"workers {dead or sorted(waiting)} died before {what}:\n{self.errors()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"workers {sorted(waiting)} did not reach {what}:\n{self.errors()}")
            time.sleep(0.005)


def fire_args(url: str, reference: str, event: str, by: str, *extra: str) -> list[str]:
    return ["referral", "fire", reference, event, *extra, "--db", url, "--by", by]


def referral_version(engine: Engine, reference: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT version FROM referral WHERE reference = :reference"),
                {"reference": reference},
            ).scalar_one()
        )


def event_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT entity_id, count(*) FROM audit_event WHERE entity_type = 'referral' "
                "GROUP BY entity_id"
            )
        )
        return {reference: int(count) for reference, count in rows}


def versions(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT reference, version FROM referral"))
        return {reference: int(version) for reference, version in rows}


def sequence_numbers(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT seq FROM audit_event ORDER BY seq")).scalars())


def assert_trail_consistent(runtime: Runtime) -> None:
    engine = runtime.engine
    verified = verify_chain(engine, runtime.key)
    assert sequence_numbers(engine) == list(range(1, verified.count + 1))
    assert event_counts(engine) == versions(engine)


def recently() -> datetime:
    """A moment just past, so the CLI's own "now" comes after every event the factories made."""
    return datetime.now(UTC) - timedelta(minutes=1)


# Optimistic concurrency on one case (both backends) ------------------------------------------


def test_only_one_of_simultaneous_if_version_fires_wins_each_round(
    runtime: Runtime, tmp_path: Path
) -> None:
    url = runtime.settings.database_url
    reference = referral_in(runtime.workflow, lc.PANEL_REVIEW, at=recently())
    start = referral_version(runtime.engine, reference)
    rounds = 3
    plans = [
        [
            [fire_args(url, reference, lc.ADJOURN, CHAIR, "--reason", "r", "--if-version", str(v))]
            for v in range(start, start + rounds)
        ]
        for _ in range(WORKERS)
    ]

    with Crowd(tmp_path / "crowd", runtime.settings.key_file, plans) as crowd:
        for index in range(rounds):
            codes = [code for [code] in crowd.run_round(index)]
            assert sorted(codes) == [EXIT_OK] + [EXIT_CONCURRENT] * (WORKERS - 1), crowd.errors()
            assert referral_version(runtime.engine, reference) == start + index + 1
        crowd.finish()
        errors = crowd.errors()

    assert errors.count("changed by someone else") == rounds * (WORKERS - 1)
    assert referral_version(runtime.engine, reference) == start + rounds
    assert_trail_consistent(runtime)


def test_simultaneous_unconditional_fires_either_commit_or_report_concurrent_change(
    runtime: Runtime, tmp_path: Path
) -> None:
    url = runtime.settings.database_url
    reference = referral_in(runtime.workflow, lc.INTERVENTION, at=recently())
    start = referral_version(runtime.engine, reference)
    review = fire_args(url, reference, lc.REVIEW, CHAIR, "--set", "outcome=progressing")
    rounds = 2
    plans = [[[review]] * rounds for _ in range(WORKERS)]

    succeeded = 0
    with Crowd(tmp_path / "crowd", runtime.settings.key_file, plans) as crowd:
        for index in range(rounds):
            codes = [code for [code] in crowd.run_round(index)]
            assert set(codes) <= {EXIT_OK, EXIT_CONCURRENT}, crowd.errors()
            assert EXIT_OK in codes
            succeeded += codes.count(EXIT_OK)
            assert referral_version(runtime.engine, reference) == start + succeeded
        crowd.finish()

    assert event_counts(runtime.engine)[reference] == start + succeeded
    assert_trail_consistent(runtime)


# Different cases at once (both backends) ------------------------------------------------------


def lifecycle_commands(url: str, reference: str) -> list[list[str]]:
    """Five events taking a new referral to intervention and through a review."""
    steps = [
        fire_args(url, reference, lc.SCREEN, POLICE, "--set", "outcome=proceed"),
        fire_args(url, reference, lc.REFER_TO_PANEL, COORDINATOR),
        fire_args(
            url, reference, lc.ACCEPT, CHAIR, "--set", "consent=given", "--set", f"lead={LEAD}"
        ),
        fire_args(url, reference, lc.START_INTERVENTION, COORDINATOR, "--set", "support_plan=SP-1"),
        fire_args(url, reference, lc.REVIEW, CHAIR, "--set", "outcome=progressing"),
    ]
    return [[*step, "--if-version", str(version)] for version, step in enumerate(steps, start=1)]


def test_processes_firing_on_different_cases_all_succeed_and_chain_stays_whole(
    runtime: Runtime, tmp_path: Path
) -> None:
    url = runtime.settings.database_url
    references = [open_referral(runtime.workflow) for _ in range(WORKERS)]
    before = len(sequence_numbers(runtime.engine))
    plans = [[lifecycle_commands(url, reference)] for reference in references]

    verified_while_writing = 0
    with Crowd(tmp_path / "crowd", runtime.settings.key_file, plans) as crowd:
        crowd.release(0)
        # A reader verifying while the writers commit never sees a broken trail.
        while not crowd.round_done(0):
            verify_chain(runtime.engine, runtime.key)
            verified_while_writing += 1
        codes = crowd.collect(0)
        crowd.finish()
        errors = crowd.errors()

    assert codes == [[EXIT_OK] * 5] * WORKERS, errors
    assert verified_while_writing > 0
    assert_trail_consistent(runtime)
    assert len(sequence_numbers(runtime.engine)) == before + WORKERS * 5
    stored = versions(runtime.engine)
    assert {reference: stored[reference] for reference in references} == dict.fromkeys(
        references, 6
    )
    verified = channelflow(
        tmp_path, runtime.settings.key_file, "audit", "verify", "--json", "--db", url
    )
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["count"] == before + WORKERS * 5


# Concurrent referral creation (both backends) --------------------------------------------------


def test_concurrent_referral_creation_gives_distinct_consecutive_references(
    runtime: Runtime, tmp_path: Path
) -> None:
    url = runtime.settings.database_url
    per_worker = 3
    add = [
        "referral",
        "add",
        "--received",
        "2026-01-05",
        "--sector",
        "education",
        "--concern",
        "extreme_right_wing",
        "--subject-name",
        "Zebedee Quillfeather",
        "--dob",
        "1990-03-04",
        "--db",
        url,
        "--by",
        COORDINATOR,
    ]
    plans = [[[add] * per_worker] for _ in range(WORKERS)]

    with Crowd(tmp_path / "crowd", runtime.settings.key_file, plans) as crowd:
        codes = crowd.run_round(0)
        crowd.finish()
        printed = [line for name in range(WORKERS) for line in crowd.output(name).split()]
        errors = crowd.errors()

    total = WORKERS * per_worker
    assert codes == [[EXIT_OK] * per_worker] * WORKERS, errors
    assert sorted(printed) == [f"CF-2026-{number:04d}" for number in range(1, total + 1)]
    assert versions(runtime.engine) == dict.fromkeys(printed, 1)
    assert_trail_consistent(runtime)
