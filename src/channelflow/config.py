"""The configuration file (``channelflow.toml``; path from ``CHANNELFLOW_CONFIG``).

Optional: without it the defaults apply. Every key is checked at start, so a typo is a
clear error now rather than a silent default later.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from channelflow.exceptions import ConfigurationError
from channelflow.notifications.kinds import Kind
from channelflow.notifications.transports.notify import DEFAULT_TEMPLATE

DEFAULT_CONFIG_FILE = Path("channelflow.toml")


@dataclass(frozen=True)
class Config:
    # GOV.UK Notify template id per kind of email ("default" for any kind not listed).
    notify_templates: Mapping[str, str] = field(default_factory=dict)


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigurationError(f"{where} in the configuration file must be a table")
    return value


def _only(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigurationError(f"unknown setting {unknown[0]!r} in {where} of the configuration")


def load_config(path: Path | None) -> Config:
    """Read and check ``path``; ``None`` means the default file, if it exists."""
    if path is None:
        if not DEFAULT_CONFIG_FILE.is_file():
            return Config()
        path = DEFAULT_CONFIG_FILE
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigurationError(f"the configuration file {path} does not exist") from None
    except OSError as error:
        raise ConfigurationError(
            f"cannot read the configuration file {path} ({error.strerror})"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(
            f"the configuration file {path} is not valid TOML: {error}"
        ) from None
    _only(data, {"notify"}, "the top level")
    notify = _table(data.get("notify", {}), "[notify]")
    _only(notify, {"templates"}, "[notify]")
    templates = _table(notify.get("templates", {}), "[notify.templates]")
    _only(templates, {kind.value for kind in Kind} | {DEFAULT_TEMPLATE}, "[notify.templates]")
    for kind, template_id in templates.items():
        if not isinstance(template_id, str) or not template_id.strip():
            raise ConfigurationError(f"[notify.templates] {kind} must be a template id")
    return Config(notify_templates={kind: value.strip() for kind, value in templates.items()})
