"""Settings from the environment (``CHANNELFLOW_*``), read only at the CLI's edge."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from channelflow.audit.keys import DEFAULT_KEY_FILE
from channelflow.store.db import database_url
from channelflow.workflow.engine import DEFAULT_PREFIX

# Every variable channelflow reads, with what it means; shown in `channelflow --help`.
VARIABLES = {
    "CHANNELFLOW_DATABASE_URL": "database URL or SQLite file (default ./channelflow.db)",
    "CHANNELFLOW_KEY_FILE": f"audit key file (default ./{DEFAULT_KEY_FILE})",
    "CHANNELFLOW_USER": "default for --by",
    "CHANNELFLOW_REFERENCE_PREFIX": f"prefix of new referral references (default {DEFAULT_PREFIX})",
    "CHANNELFLOW_DEBUG": "set to 1 to see a traceback for an unexpected error",
}


@dataclass(frozen=True)
class Settings:
    database_url: str
    key_file: Path
    user: str | None
    reference_prefix: str

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, *, db: str | None = None
    ) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            database_url=database_url(db or env.get("CHANNELFLOW_DATABASE_URL")),
            key_file=Path(env.get("CHANNELFLOW_KEY_FILE") or DEFAULT_KEY_FILE),
            user=env.get("CHANNELFLOW_USER") or None,
            reference_prefix=env.get("CHANNELFLOW_REFERENCE_PREFIX") or DEFAULT_PREFIX,
        )
