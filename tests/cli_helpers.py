"""Running the real `channelflow` command, in-process or as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from channelflow.cli import run


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def signing_key_beside(key_file: Path) -> Path:
    return key_file.with_name(key_file.stem + "-signing.key")


class Cli:
    """`channelflow` run in-process against one database and key file."""

    def __init__(self, capsys: pytest.CaptureFixture[str], db: str, key_file: Path) -> None:
        self.capsys, self.db, self.key_file = capsys, db, key_file

    def __call__(self, *args: str) -> Outcome:
        os.environ["CHANNELFLOW_KEY_FILE"] = str(self.key_file)
        # The export signing key beside the audit key, never in the working directory.
        signing = "CHANNELFLOW_SIGNING_KEY" not in os.environ
        if signing:
            os.environ["CHANNELFLOW_SIGNING_KEY"] = str(signing_key_beside(self.key_file))
        try:
            code = run([*args, "--db", self.db])
        finally:
            del os.environ["CHANNELFLOW_KEY_FILE"]
            if signing:
                del os.environ["CHANNELFLOW_SIGNING_KEY"]
        captured = self.capsys.readouterr()
        assert "Traceback" not in captured.err
        return Outcome(code, captured.out, captured.err)


def run_subprocess(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Outcome:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELFLOW_")}
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "channelflow", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr
    return Outcome(done.returncode, done.stdout, done.stderr)
