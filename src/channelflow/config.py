"""The configuration file (``channelflow.toml``; path from ``CHANNELFLOW_CONFIG``).

Optional: without it the defaults apply. Every key is checked at start, so a typo is a
clear error now rather than a silent default later. Membership names users; whether they
exist is checked against the database when the scheduler starts (`planning.recipients`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from channelflow.exceptions import ConfigurationError
from channelflow.meetings.rules import BOARD_RULE, PANEL_RULE, WEEKDAYS, MeetingRule
from channelflow.notifications.kinds import MAX_DETAIL, Kind
from channelflow.notifications.transports.notify import DEFAULT_TEMPLATE

DEFAULT_CONFIG_FILE = Path("channelflow.toml")
OCCURRENCES = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
MAX_LEAD_DAYS = 60
DEFAULT_RETENTION_YEARS = 6
MAX_RETENTION_YEARS = 100


@dataclass(frozen=True)
class BodySettings:
    """A meeting body (the Channel panel or the Strategic Prevent Board) and its calendar.

    ``members`` lists user names; ``None`` means every user whose role is in ``roles``.
    ``lead_working_days`` is how long before each meeting its agenda or reminder goes out.
    """

    name: str
    rule: MeetingRule
    lead_working_days: int
    roles: tuple[str, ...]
    members: tuple[str, ...] | None = None
    minutes: int = 120
    location: str | None = None
    link: str | None = None


@dataclass(frozen=True)
class ReminderSettings:
    days_before: tuple[int, ...] = (7, 0)
    escalate_after_working_days: int = 2
    # Who hears of an overdue review; None means every user with role chair.
    escalate_to: tuple[str, ...] | None = None
    toolkit_days_before: tuple[int, ...] = (7, 0)


@dataclass(frozen=True)
class ScheduleSettings:
    sending_time: time = time(8, 0)
    closed_days: frozenset[date] = frozenset()
    plan_every_minutes: int = 15
    dispatch_every_seconds: int = 30


@dataclass(frozen=True)
class RetentionSettings:
    # Personal details of a referral are removed this many years after it closed.
    years: int = DEFAULT_RETENTION_YEARS


PANEL = BodySettings("panel", PANEL_RULE, 5, roles=("chair", "member"))
BOARD = BodySettings("board", BOARD_RULE, 5, roles=("chair", "admin"))


@dataclass(frozen=True)
class Config:
    panel: BodySettings = PANEL
    board: BodySettings = BOARD
    reminders: ReminderSettings = field(default_factory=ReminderSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    # GOV.UK Notify template id per kind of email ("default" for any kind not listed).
    notify_templates: Mapping[str, str] = field(default_factory=dict)
    # The file it was read from, for errors found later (members who are not users).
    source: Path | None = None

    def body(self, name: str) -> BodySettings:
        return self.panel if name == "panel" else self.board


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
    except UnicodeDecodeError:
        raise ConfigurationError(f"the configuration file {path} is not UTF-8 text") from None
    try:
        return replace(parse_config(data), source=path)
    except ConfigurationError as error:
        raise ConfigurationError(f"{path}: {error.message}") from None


def parse_config(data: dict[str, Any]) -> Config:
    _only(data, {"notify", "panel", "board", "reminders", "schedule", "retention"}, "the top level")
    reminders = _table(data, "reminders")
    _only(
        reminders,
        {"days_before", "escalate_after_working_days", "escalate_to", "toolkit_days_before"},
        "[reminders]",
    )
    days_before = _days(reminders, "days_before", (7, 0), "[reminders]")
    return Config(
        panel=_body(_table(data, "panel"), PANEL),
        board=_body(_table(data, "board"), BOARD),
        reminders=ReminderSettings(
            days_before=days_before,
            escalate_after_working_days=_integer(
                reminders,
                "escalate_after_working_days",
                2,
                "[reminders]",
                low=1,
                high=MAX_LEAD_DAYS,
            ),
            escalate_to=_names(reminders, "escalate_to", "[reminders]"),
            toolkit_days_before=_days(reminders, "toolkit_days_before", days_before, "[reminders]"),
        ),
        schedule=_schedule(_table(data, "schedule")),
        retention=_retention(_table(data, "retention")),
        notify_templates=_notify_templates(_table(data, "notify")),
    )


def _body(table: dict[str, Any], default: BodySettings) -> BodySettings:
    where = f"[{default.name}]"
    _only(
        table,
        {
            "weekday",
            "occurrence",
            "time",
            "months",
            "minutes",
            "location",
            "link",
            "lead_working_days",
            "members",
        },
        where,
    )
    rule = default.rule
    weekday = table.get("weekday", WEEKDAYS[rule.weekday])
    if not isinstance(weekday, str) or weekday.strip().lower() not in WEEKDAYS:
        raise ConfigurationError(f"{where} weekday must be a day name such as thursday")
    occurrence = table.get("occurrence", rule.occurrence)
    if isinstance(occurrence, str):
        if occurrence.strip().lower() not in OCCURRENCES:
            raise ConfigurationError(
                f"{where} occurrence must be first, second, third, fourth or last"
            )
        occurrence = OCCURRENCES[occurrence.strip().lower()]
    if not isinstance(occurrence, int) or isinstance(occurrence, bool):
        raise ConfigurationError(f"{where} occurrence must be first, second, third, fourth or last")
    months = table.get("months", list(rule.months))
    if (
        not isinstance(months, list)
        or not all(isinstance(m, int) and not isinstance(m, bool) for m in months)
        or len(set(months)) != len(months)
    ):
        raise ConfigurationError(f"{where} months must be a list of month numbers (1-12)")
    at = _clock_time(table, "time", rule.at, where)
    try:
        new_rule = MeetingRule(
            weekday=WEEKDAYS.index(weekday.strip().lower()),
            occurrence=occurrence,
            at=at,
            months=tuple(sorted(months)),
        )
    except ConfigurationError as error:
        raise ConfigurationError(f"{where}: {error.message}") from None
    return BodySettings(
        name=default.name,
        rule=new_rule,
        lead_working_days=_integer(
            table, "lead_working_days", default.lead_working_days, where, low=1, high=MAX_LEAD_DAYS
        ),
        roles=default.roles,
        members=_names(table, "members", where),
        minutes=_integer(table, "minutes", default.minutes, where, low=1, high=24 * 60),
        location=_detail(table, "location", where),
        link=_detail(table, "link", where),
    )


def _schedule(table: dict[str, Any]) -> ScheduleSettings:
    where = "[schedule]"
    _only(
        table,
        {"sending_time", "closed_days", "plan_every_minutes", "dispatch_every_seconds"},
        where,
    )
    closed = table.get("closed_days", [])
    if not isinstance(closed, list) or not all(
        isinstance(day, date) and not isinstance(day, datetime) for day in closed
    ):
        raise ConfigurationError(
            f"{where} closed_days must be a list of dates written YYYY-MM-DD (without quotes)"
        )
    return ScheduleSettings(
        sending_time=_clock_time(table, "sending_time", time(8, 0), where),
        closed_days=frozenset(closed),
        plan_every_minutes=_integer(table, "plan_every_minutes", 15, where, low=1, high=24 * 60),
        dispatch_every_seconds=_integer(
            table, "dispatch_every_seconds", 30, where, low=1, high=24 * 3600
        ),
    )


def _retention(table: dict[str, Any]) -> RetentionSettings:
    where = "[retention]"
    _only(table, {"years"}, where)
    return RetentionSettings(
        years=_integer(
            table, "years", DEFAULT_RETENTION_YEARS, where, low=1, high=MAX_RETENTION_YEARS
        )
    )


def _notify_templates(notify: dict[str, Any]) -> dict[str, str]:
    _only(notify, {"templates"}, "[notify]")
    templates = _table(notify, "templates", "[notify.templates]")
    _only(templates, {kind.value for kind in Kind} | {DEFAULT_TEMPLATE}, "[notify.templates]")
    for kind, template_id in templates.items():
        if not isinstance(template_id, str) or not template_id.strip():
            raise ConfigurationError(f"[notify.templates] {kind} must be a template id")
    return {kind: value.strip() for kind, value in templates.items()}


def _table(data: dict[str, Any], name: str, where: str | None = None) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigurationError(f"{where or f'[{name}]'} in the configuration must be a table")
    return value


def _only(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigurationError(f"unknown setting {unknown[0]!r} in {where} of the configuration")


def _integer(
    table: dict[str, Any], name: str, default: int, where: str, *, low: int, high: int = 10_000
) -> int:
    value = table.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigurationError(f"{where} {name} must be a whole number from {low} to {high}")
    return value


def _days(
    table: dict[str, Any], name: str, default: tuple[int, ...], where: str
) -> tuple[int, ...]:
    value = table.get(name, list(default))
    if (
        not isinstance(value, list)
        or not value
        or not all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_LEAD_DAYS
            for n in value
        )
    ):
        raise ConfigurationError(
            f"{where} {name} must be a list of days before the review (0 for the day itself, "
            f"at most {MAX_LEAD_DAYS})"
        )
    return tuple(sorted(set(value), reverse=True))


def _clock_time(table: dict[str, Any], name: str, default: time, where: str) -> time:
    value = table.get(name)
    if value is None:
        return default
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    if isinstance(value, str):
        try:
            parsed = time.fromisoformat(value.strip())
            if parsed.tzinfo is None:
                return parsed
        except ValueError:
            pass
    raise ConfigurationError(f"{where} {name} must be a local time written HH:MM (Europe/London)")


def _names(table: dict[str, Any], name: str, where: str) -> tuple[str, ...] | None:
    value = table.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(n, str) and n.strip() for n in value):
        raise ConfigurationError(f"{where} {name} must be a list of user names")
    return tuple(dict.fromkeys(n.strip() for n in value))


def _detail(table: dict[str, Any], name: str, where: str) -> str | None:
    value = table.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_DETAIL or not value.isprintable():
        raise ConfigurationError(
            f"{where} {name} must be one line of {MAX_DETAIL} characters or fewer"
        )
    return value.strip() or None
