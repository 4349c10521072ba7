"""The configuration file: its defaults, every setting, and one clear sentence per mistake."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest

from channelflow.config import Config, load_config, parse_config
from channelflow.exceptions import ConfigurationError

EVERY_SETTING = """
[panel]
weekday = " Friday "
occurrence = "first"
time = "09:30"
months = [10, 2, 6]
minutes = 90
location = "Committee Room 2"
link = "https://meet.example.gov.uk/channel"
lead_working_days = 7
members = ["mel", " chris ", "mel"]

[board]
weekday = "tuesday"
occurrence = 3
time = 15:45:00
months = [3, 9]
minutes = 60
lead_working_days = 10
members = ["chris"]

[reminders]
days_before = [0, 14, 3, 14]
escalate_after_working_days = 4
escalate_to = ["cora"]
toolkit_days_before = [30]

[schedule]
sending_time = "07:15"
closed_days = [2026-12-29, 2026-12-30]
plan_every_minutes = 5
dispatch_every_seconds = 10

[notify.templates]
default = " 0f6e-default "
panel_agenda = "a1b2"
"""


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigurationError) as raised:
        parse_config(data)
    message = raised.value.message
    assert "\n" not in message
    return message


# Defaults ---------------------------------------------------------------------------


def test_no_settings_gives_the_documented_defaults() -> None:
    config = parse_config({})
    assert config == Config()
    panel, board = config.panel, config.board
    assert (panel.rule.weekday, panel.rule.occurrence, panel.rule.at) == (3, -1, time(10, 0))
    assert panel.rule.months == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
    assert panel.lead_working_days == 5
    assert panel.roles == ("chair", "member")
    assert panel.members is None
    assert (panel.minutes, panel.location, panel.link) == (120, None, None)
    assert (board.rule.weekday, board.rule.occurrence, board.rule.at) == (2, 2, time(14, 0))
    assert board.rule.months == (1, 4, 7, 10)
    assert board.lead_working_days == 5
    assert board.roles == ("chair", "admin")
    assert board.members is None
    assert config.reminders.days_before == (7, 0)
    assert config.reminders.escalate_after_working_days == 2
    assert config.reminders.escalate_to is None
    assert config.reminders.toolkit_days_before == (7, 0)
    assert config.schedule.sending_time == time(8, 0)
    assert config.schedule.closed_days == frozenset()
    assert config.schedule.plan_every_minutes == 15
    assert config.schedule.dispatch_every_seconds == 30
    assert dict(config.notify_templates) == {}


def test_empty_tables_are_the_defaults_too() -> None:
    empty: dict[str, Any] = {
        "panel": {},
        "board": {},
        "reminders": {},
        "schedule": {},
        "notify": {},
    }
    assert parse_config(empty) == Config()


def test_without_a_file_or_a_default_file_the_defaults_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(None) == Config()


def test_the_default_file_in_the_working_folder_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "channelflow.toml").write_text("[schedule]\nplan_every_minutes = 3\n")
    assert load_config(None).schedule.plan_every_minutes == 3


def test_an_error_in_the_default_file_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "channelflow.toml").write_text("[schedule]\nplan_every_minutes = 0\n")
    with pytest.raises(ConfigurationError) as raised:
        load_config(None)
    assert raised.value.message.startswith("channelflow.toml: [schedule] plan_every_minutes")


# Every setting ----------------------------------------------------------------------


def test_every_setting_is_read(tmp_path: Path) -> None:
    path = tmp_path / "channelflow.toml"
    path.write_text(EVERY_SETTING)
    config = load_config(path)

    panel = config.panel
    assert (panel.rule.weekday, panel.rule.occurrence, panel.rule.at) == (4, 1, time(9, 30))
    assert panel.rule.months == (2, 6, 10)
    assert (panel.minutes, panel.lead_working_days) == (90, 7)
    assert panel.location == "Committee Room 2"
    assert panel.link == "https://meet.example.gov.uk/channel"
    assert panel.members == ("mel", "chris")
    assert panel.roles == ("chair", "member")

    board = config.board
    assert (board.rule.weekday, board.rule.occurrence, board.rule.at) == (1, 3, time(15, 45))
    assert board.rule.months == (3, 9)
    assert (board.minutes, board.lead_working_days, board.members) == (60, 10, ("chris",))
    assert (board.location, board.link) == (None, None)

    assert config.reminders.days_before == (14, 3, 0)
    assert config.reminders.escalate_after_working_days == 4
    assert config.reminders.escalate_to == ("cora",)
    assert config.reminders.toolkit_days_before == (30,)

    assert config.schedule.sending_time == time(7, 15)
    assert config.schedule.closed_days == frozenset({date(2026, 12, 29), date(2026, 12, 30)})
    assert config.schedule.plan_every_minutes == 5
    assert config.schedule.dispatch_every_seconds == 10

    assert dict(config.notify_templates) == {"default": "0f6e-default", "panel_agenda": "a1b2"}


@pytest.mark.parametrize(
    ("occurrence", "number"),
    [
        ("first", 1),
        ("second", 2),
        ("third", 3),
        ("fourth", 4),
        ("last", -1),
        (" Last ", -1),
        (1, 1),
        (4, 4),
        (-1, -1),
    ],
)
def test_occurrence_names_and_numbers(occurrence: object, number: int) -> None:
    assert parse_config({"panel": {"occurrence": occurrence}}).panel.rule.occurrence == number


def test_toolkit_reminders_default_to_the_review_reminders() -> None:
    config = parse_config({"reminders": {"days_before": [10, 1]}})
    assert config.reminders.toolkit_days_before == (10, 1)


@pytest.mark.parametrize(
    ("setting", "value"),
    [("time", "00:00"), ("time", "23:59"), ("time", time(6, 5))],
)
def test_times_may_be_strings_or_toml_times(setting: str, value: object) -> None:
    expected = value if isinstance(value, time) else time.fromisoformat(str(value))
    assert parse_config({"board": {setting: value}}).board.rule.at == expected


def test_a_blank_location_is_no_location() -> None:
    assert parse_config({"panel": {"location": "   "}}).panel.location is None


def test_bounds_are_inclusive() -> None:
    config = parse_config(
        {
            "panel": {"lead_working_days": 60, "minutes": 1440, "months": [12]},
            "board": {"lead_working_days": 1, "minutes": 1, "months": [1]},
            "reminders": {"days_before": [60, 0], "escalate_after_working_days": 1},
            "schedule": {"plan_every_minutes": 1440, "dispatch_every_seconds": 86400},
        }
    )
    assert config.panel.lead_working_days == 60
    assert config.board.lead_working_days == 1
    assert config.reminders.days_before == (60, 0)
    assert config.schedule.dispatch_every_seconds == 86400


# Mistakes: one sentence that names the setting --------------------------------------

ERRORS: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    # unknown keys, at every level
    ({"panels": {}}, ("unknown setting 'panels'", "top level")),
    ({"panel": {"day": "thursday"}}, ("unknown setting 'day'", "[panel]")),
    ({"board": {"member": ["chris"]}}, ("unknown setting 'member'", "[board]")),
    ({"reminders": {"days": [7]}}, ("unknown setting 'days'", "[reminders]")),
    ({"schedule": {"send_time": "08:00"}}, ("unknown setting 'send_time'", "[schedule]")),
    ({"notify": {"template": {}}}, ("unknown setting 'template'", "[notify]")),
    (
        {"notify": {"templates": {"agenda": "x"}}},
        ("unknown setting 'agenda'", "[notify.templates]"),
    ),
    # tables that are not tables
    ({"panel": "thursday"}, ("[panel]", "must be a table")),
    ({"schedule": ["08:00"]}, ("[schedule]", "must be a table")),
    ({"notify": {"templates": "x"}}, ("[notify.templates]", "must be a table")),
    # weekday
    ({"panel": {"weekday": "thursdays"}}, ("[panel] weekday", "day name")),
    ({"panel": {"weekday": 3}}, ("[panel] weekday", "day name")),
    # occurrence
    ({"panel": {"occurrence": "fifth"}}, ("[panel] occurrence", "first, second, third")),
    ({"panel": {"occurrence": "1"}}, ("[panel] occurrence", "first, second, third")),
    ({"board": {"occurrence": 5}}, ("[board]", "occurrence")),
    ({"board": {"occurrence": 0}}, ("[board]", "occurrence")),
    ({"board": {"occurrence": -2}}, ("[board]", "occurrence")),
    ({"panel": {"occurrence": True}}, ("[panel] occurrence",)),
    ({"panel": {"occurrence": 1.0}}, ("[panel] occurrence",)),
    # months
    ({"panel": {"months": [0]}}, ("[panel]", "months", "1", "12")),
    ({"panel": {"months": [13]}}, ("[panel]", "months", "1", "12")),
    ({"board": {"months": [1, 4, 4]}}, ("[board] months",)),
    ({"board": {"months": []}}, ("[board]", "months")),
    ({"board": {"months": 1}}, ("[board] months",)),
    ({"board": {"months": ["january"]}}, ("[board] months",)),
    ({"board": {"months": [True]}}, ("[board] months",)),
    # time
    ({"panel": {"time": "25:00"}}, ("[panel] time", "HH:MM")),
    ({"panel": {"time": "10am"}}, ("[panel] time", "HH:MM")),
    ({"board": {"time": 1000}}, ("[board] time", "HH:MM")),
    ({"board": {"time": "10:00+01:00"}}, ("[board] time", "HH:MM")),
    ({"schedule": {"sending_time": "24:00"}}, ("[schedule] sending_time", "HH:MM")),
    (
        {"schedule": {"sending_time": datetime(2026, 1, 1, 8, 0)}},  # noqa: DTZ001 (TOML local)
        ("[schedule] sending_time", "HH:MM"),
    ),
    # whole numbers
    ({"panel": {"lead_working_days": 0}}, ("[panel] lead_working_days", "1 to 60")),
    ({"board": {"lead_working_days": 61}}, ("[board] lead_working_days", "1 to 60")),
    ({"panel": {"lead_working_days": True}}, ("[panel] lead_working_days", "whole number")),
    ({"panel": {"lead_working_days": "5"}}, ("[panel] lead_working_days", "whole number")),
    ({"panel": {"lead_working_days": 5.0}}, ("[panel] lead_working_days", "whole number")),
    ({"panel": {"minutes": 0}}, ("[panel] minutes", "whole number")),
    ({"board": {"minutes": 1441}}, ("[board] minutes", "whole number")),
    (
        {"reminders": {"escalate_after_working_days": 0}},
        ("[reminders] escalate_after_working_days", "whole number"),
    ),
    (
        {"reminders": {"escalate_after_working_days": False}},
        ("[reminders] escalate_after_working_days", "whole number"),
    ),
    ({"schedule": {"plan_every_minutes": 0}}, ("[schedule] plan_every_minutes", "whole number")),
    ({"schedule": {"plan_every_minutes": True}}, ("[schedule] plan_every_minutes",)),
    (
        {"schedule": {"dispatch_every_seconds": 1.5}},
        ("[schedule] dispatch_every_seconds", "whole number"),
    ),
    ({"schedule": {"dispatch_every_seconds": 0}}, ("[schedule] dispatch_every_seconds",)),
    # lists of days before
    ({"reminders": {"days_before": []}}, ("[reminders] days_before", "list of days")),
    ({"reminders": {"days_before": [-1]}}, ("[reminders] days_before", "at most 60")),
    ({"reminders": {"days_before": [61]}}, ("[reminders] days_before", "at most 60")),
    ({"reminders": {"days_before": 7}}, ("[reminders] days_before", "list of days")),
    ({"reminders": {"days_before": [True]}}, ("[reminders] days_before",)),
    ({"reminders": {"toolkit_days_before": ["7"]}}, ("[reminders] toolkit_days_before",)),
    # closed days: TOML dates only
    (
        {"schedule": {"closed_days": ["2026-12-29"]}},
        ("[schedule] closed_days", "YYYY-MM-DD", "without quotes"),
    ),
    ({"schedule": {"closed_days": date(2026, 12, 29)}}, ("[schedule] closed_days",)),
    # user lists
    ({"panel": {"members": "mel"}}, ("[panel] members", "list of user names")),
    ({"board": {"members": ["chris", 3]}}, ("[board] members", "list of user names")),
    ({"panel": {"members": ["  "]}}, ("[panel] members", "list of user names")),
    ({"reminders": {"escalate_to": "chris"}}, ("[reminders] escalate_to", "list of user names")),
    # one-line details
    ({"panel": {"location": "Room 1\nRoom 2"}}, ("[panel] location", "one line")),
    ({"board": {"link": "x" * 201}}, ("[board] link", "200 characters")),
    ({"board": {"location": 12}}, ("[board] location", "one line")),
    # Notify template ids
    ({"notify": {"templates": {"default": ""}}}, ("[notify.templates] default", "template id")),
    ({"notify": {"templates": {"panel_agenda": 7}}}, ("[notify.templates] panel_agenda",)),
]


@pytest.mark.parametrize(("data", "phrases"), ERRORS)
def test_a_mistake_is_one_sentence_naming_the_setting(
    data: dict[str, Any], phrases: tuple[str, ...]
) -> None:
    message = _error(data)
    for phrase in phrases:
        assert phrase in message, message


@pytest.mark.parametrize("body", ["panel", "board"])
def test_a_bad_meeting_time_names_its_table_once(body: str) -> None:
    # The time is checked while the meeting rule is built, and that step's errors get the
    # table's name put in front: a time error must not get it twice.
    message = _error({body: {"time": "25:00"}})
    assert message == f"[{body}] time must be a local time written HH:MM (Europe/London)"


def test_a_closed_day_with_a_time_of_day_is_refused_not_ignored() -> None:
    # A TOML date-time (2026-12-29T00:00:00) is a Python datetime, which is also a date; kept,
    # it never equals the calendar day it stands for, so the closure would silently not apply.
    message = _error({"schedule": {"closed_days": [datetime(2026, 12, 29, 0, 0)]}})  # noqa: DTZ001
    assert "[schedule] closed_days" in message


def test_the_first_of_several_unknown_settings_is_named() -> None:
    message = _error({"schedule": {"zzz": 1, "aaa": 2}})
    assert "'aaa'" in message


# The file ---------------------------------------------------------------------------


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "channelflow.toml"
    with pytest.raises(ConfigurationError) as raised:
        load_config(path)
    assert raised.value.message == f"the configuration file {path} does not exist"


def test_a_folder_instead_of_a_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_config(tmp_path)
    assert raised.value.message.startswith(f"cannot read the configuration file {tmp_path} (")


def test_invalid_toml_is_named_with_where_it_went_wrong(tmp_path: Path) -> None:
    path = tmp_path / "channelflow.toml"
    path.write_text("[panel]\nweekday = thursday\n")
    with pytest.raises(ConfigurationError) as raised:
        load_config(path)
    message = raised.value.message
    assert message.startswith(f"the configuration file {path} is not valid TOML: ")
    assert "line 2" in message
    assert "\n" not in message


def test_a_file_not_in_utf8_is_a_configuration_error(tmp_path: Path) -> None:
    # Saved as Windows-1252 by a text editor: "Café" is b"Caf\xe9".
    path = tmp_path / "channelflow.toml"
    path.write_bytes(b'[panel]\nlocation = "Caf\xe9"\n')
    with pytest.raises(ConfigurationError) as raised:
        load_config(path)
    assert str(path) in raised.value.message


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ('[schedule]\nsending_time = "25:00"\n', "[schedule] sending_time"),
        ("[panel]\nlead_working_days = 0\n", "[panel] lead_working_days"),
        ('[panel]\nmembers = "mel"\n', "[panel] members"),
        ('colour = "red"\n', "unknown setting 'colour'"),
        ('[schedule]\nclosed_days = ["2026-12-29"]\n', "[schedule] closed_days"),
    ],
)
def test_mistakes_in_a_file_start_with_its_path(tmp_path: Path, text: str, phrase: str) -> None:
    path = tmp_path / "council.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as raised:
        load_config(path)
    message = raised.value.message
    assert message.startswith(f"{path}: ")
    assert phrase in message
    assert "\n" not in message
