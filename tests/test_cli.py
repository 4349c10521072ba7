"""Acceptance tests: the `channelflow` command as a user types it, every bad input included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from channelflow.states import REFERRAL_LIFECYCLE
from tests.cli_helpers import Cli, run_subprocess

SUBJECT = "Zebedee Quillfeather"
ADD = (
    "referral",
    "add",
    "--received",
    "2026-11-02",
    "--sector",
    "education",
    "--concern",
    "extreme_right_wing",
    "--subject-name",
    SUBJECT,
    "--dob",
    "2011-02-03",
)
STAFF = (
    ("pat", "police"),
    ("cora", "coordinator"),
    ("chris", "chair"),
    ("mel", "member"),
    ("lee", "lead"),
    ("ada", "auditor"),
)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path) -> Iterator[Cli]:
    command = Cli(capsys, database_url, tmp_path / "audit.key")
    assert command("init").code == 0
    for name, role in STAFF:
        assert command("user", "add", name, "--role", role, "--by", "admin").code == 0
    return command


@pytest.fixture
def referral(cli: Cli) -> str:
    outcome = cli(*ADD, "--by", "cora", "--json")
    assert outcome.code == 0
    return str(outcome.json()["reference"])


def test_init_is_safe_to_run_twice(cli: Cli) -> None:
    again = cli("init", "--json")
    assert again.code == 0
    assert again.json()["created"] is False
    assert again.json()["admin"] is None
    users = cli("user", "list", "--json").json()
    assert [u["name"] for u in users if u["role"] == "admin"] == ["admin"]


def test_a_new_user_moves_a_referral_from_received_to_closed(cli: Cli, referral: str) -> None:
    assert referral.startswith("CF-2026-")
    steps = [
        ("screen", "pat", ["--set", "outcome=proceed"]),
        ("refer_to_panel", "cora", []),
        ("adjourn", "chris", ["--reason", "school report awaited"]),
        ("accept", "chris", ["--set", "consent=parental", "--set", "lead=lee"]),
        ("start_intervention", "cora", ["--set", "support_plan=SP-7"]),
        ("review", "chris", ["--set", "outcome=progressing"]),
        ("exit", "chris", ["--set", "summary=objectives met"]),
    ]
    for version, (event, actor, extra) in enumerate(steps, start=2):
        fired = cli("referral", "fire", referral, event, "--by", actor, *extra, "--json")
        assert fired.code == 0, fired.err
        assert fired.json()["version"] == version
    shown = cli("referral", "show", referral, "--by", "cora", "--json").json()
    assert shown["state"] == "closed"
    assert [h["event"] for h in shown["history"]] == ["open"] + [s[0] for s in steps]
    assert [d["kind"] for d in shown["due_reviews"]] == ["post_exit_6m", "post_exit_12m"]
    verified = cli("audit", "verify", "--json")
    assert verified.code == 0
    assert verified.json()["ok"] is True


def test_show_json_has_the_documented_keys_and_personal_details_only_for_allowed_roles(
    cli: Cli, referral: str
) -> None:
    coordinator = cli("referral", "show", referral, "--by", "cora", "--json").json()
    for key in (
        "reference",
        "state",
        "version",
        "lead",
        "received_on",
        "panel_on",
        "next_review_on",
        "closed_on",
        "due_reviews",
        "history",
    ):
        assert key in coordinator
    assert coordinator["personal"]["full_name"] == SUBJECT
    auditor = cli("referral", "show", referral, "--by", "ada", "--json")
    assert auditor.code == 0
    assert "personal" not in auditor.json()
    assert SUBJECT not in auditor.out


def test_list_shows_no_personal_details_and_filters_by_state(cli: Cli, referral: str) -> None:
    listed = cli("referral", "list", "--by", "cora", "--json")
    assert listed.code == 0
    assert [row["reference"] for row in listed.json()] == [referral]
    assert SUBJECT not in listed.out
    assert "2011-02-03" not in listed.out
    assert cli("referral", "list", "--by", "cora", "--state", "closed", "--json").json() == []
    assert cli("referral", "list", "--by", "cora", "--limit", "1", "--json").code == 0


def test_events_lists_what_the_user_may_fire_now(cli: Cli, referral: str) -> None:
    police = cli("referral", "events", referral, "--by", "pat", "--json").json()
    assert [e["event"] for e in police] == ["screen"]
    assert police[0]["requires"] == ["outcome"]
    coordinator = cli("referral", "events", referral, "--by", "cora", "--json").json()
    assert [e["event"] for e in coordinator] == ["screen", "close"]


def test_stale_version_is_a_concurrent_change(cli: Cli, referral: str) -> None:
    stale = cli(
        "referral",
        "fire",
        referral,
        "screen",
        "--by",
        "pat",
        "--set",
        "outcome=proceed",
        "--if-version",
        "7",
    )
    assert stale.code == 5
    assert "changed by someone else" in stale.err
    assert cli("referral", "show", referral, "--by", "cora", "--json").json()["version"] == 1


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("referral", "fire", "{ref}", "fly", "--by", "pat"), 2, "unknown event"),
        (
            ("referral", "fire", "{ref}", "screen", "--by", "pat", "--set", "outcome=maybe"),
            2,
            "must be one of",
        ),
        (
            ("referral", "fire", "{ref}", "screen", "--by", "pat", "--set", "outcome"),
            2,
            "KEY=VALUE",
        ),
        (
            ("referral", "fire", "{ref}", "screen", "--by", "pat", "--set", "colour=red"),
            2,
            "does not take",
        ),
        (
            (
                "referral",
                "fire",
                "{ref}",
                "screen",
                "--by",
                "pat",
                "--set",
                "outcome=proceed",
                "--at",
                "2999-01-01",
            ),
            2,
            "in the future",
        ),
        (
            (
                "referral",
                "fire",
                "{ref}",
                "screen",
                "--by",
                "pat",
                "--set",
                "outcome=proceed",
                "--at",
                "yesterday",
            ),
            2,
            "--at must be a date",
        ),
        (("referral", "fire", "{ref}", "screen", "--by", "pat"), 4, "needs --set outcome"),
        (("referral", "fire", "{ref}", "accept", "--by", "chris"), 4, "not allowed"),
        (
            ("referral", "fire", "{ref}", "screen", "--by", "chris", "--set", "outcome=proceed"),
            4,
            "may not",
        ),
        (("referral", "fire", "CF-2026-9999", "screen", "--by", "pat"), 3, "no referral"),
        (("referral", "fire", "{ref}", "screen", "--by", "nobody"), 3, "no user"),
        (("referral", "fire", "{ref}", "screen"), 2, "--by"),
        (("referral", "show", "{ref}", "--by", "admin"), 4, "may not read"),
        (("referral", "show", "CF-2026-9999", "--by", "cora"), 3, "no referral"),
        (("referral", "list", "--by", "cora", "--state", "limbo"), 2, "unknown state"),
        (("referral", "list", "--by", "cora", "--limit", "0"), 2, "--limit"),
        (("referral", "list", "--by", "cora", "--limit", "many"), 2, "--limit"),
        ((*ADD[:-2], "--dob", "03/02/2011", "--by", "cora"), 2, "--dob must be a date"),
        ((*ADD[:2], "--received", "2999-01-01", *ADD[4:], "--by", "cora"), 2, "in the future"),
        ((*ADD[:4], "--sector", "astrology", *ADD[6:], "--by", "cora"), 2, "unknown sector"),
        ((*ADD, "--by", "lee"), 4, "may not"),
        (("user", "add", "eve", "--role", "wizard", "--by", "admin"), 2, "unknown role"),
        (("user", "add", "eve", "--role", "member", "--by", "cora"), 4, "may not"),
        (("user", "add", "cora", "--role", "member", "--by", "admin"), 2, "already exists"),
        (("user", "add", "Eve Smith", "--role", "member", "--by", "admin"), 2, "user name"),
        (
            ("user", "add", "eve", "--role", "member", "--email", "nope", "--by", "admin"),
            2,
            "email",
        ),
        (("lifecycle", "--format", "png"), 2, "Invalid value"),
        (("referral", "frobnicate"), 2, "No such command"),
    ],
)
def test_bad_input_gets_one_clear_sentence_its_exit_code_and_changes_nothing(
    cli: Cli, referral: str, args: tuple[str, ...], code: int, message: str
) -> None:
    before = cli("audit", "verify", "--json").json()["count"]
    outcome = cli(*(arg.replace("{ref}", referral) for arg in args))
    assert outcome.code == code, outcome.err
    assert message in outcome.err
    assert outcome.err.count("error:") == 1
    assert SUBJECT not in outcome.err
    assert cli("audit", "verify", "--json").json()["count"] == before
    assert cli("referral", "show", referral, "--by", "cora", "--json").json()["version"] == 1


def test_a_refused_permission_is_logged_in_the_access_log_not_the_history(
    cli: Cli, referral: str, database_url: str
) -> None:
    from sqlalchemy import text

    from channelflow.store.db import open_engine

    assert (
        cli("referral", "fire", referral, "screen", "--by", "mel", "--set", "outcome=proceed").code
        == 4
    )
    engine = open_engine(database_url)
    with engine.connect() as connection:
        denied = connection.execute(
            text("SELECT actor, action, entity_id FROM access_log WHERE allowed = false")
        ).all()
    engine.dispose()
    assert [tuple(row) for row in denied] == [("mel", "referral.fire:screen", referral)]


def test_lifecycle_json_is_the_declared_machine(cli: Cli) -> None:
    machine = cli("lifecycle", "--format", "json").json()
    assert machine["initial"] == "received"
    assert machine["states"] == list(REFERRAL_LIFECYCLE.states)
    pairs = {(t["event"], t["source"], t["dest"]) for t in machine["transitions"]}
    assert ("withdraw_consent", "accepted", "closed") in pairs
    assert ("withdraw_consent", "intervention", "closed") in pairs
    assert len(pairs) == sum(len(spec.sources) for spec in REFERRAL_LIFECYCLE.events)
    for transition in machine["transitions"]:
        assert set(transition) == {"event", "source", "dest", "roles", "requires"}
        assert isinstance(transition["source"], str)
    decline = next(t for t in machine["transitions"] if t["event"] == "decline")
    assert decline["roles"] == ["chair"]
    assert decline["requires"] == ["route", "reason"]


def test_lifecycle_diagrams_name_every_transition(cli: Cli) -> None:
    mermaid = cli("lifecycle", "--format", "mermaid").out
    dot = cli("lifecycle", "--format", "dot").out
    assert mermaid.startswith("stateDiagram-v2\n")
    assert dot.startswith('digraph "referral" {')
    assert dot.rstrip().endswith("}")
    for spec in REFERRAL_LIFECYCLE.events:
        for source in spec.sources:
            assert f"{source} --> {spec.dest} : {spec.name}" in mermaid
            assert f'"{source}" -> "{spec.dest}" [label="{spec.name}' in dot


def test_commands_on_an_uninitialised_database_say_to_run_init(tmp_path: Path) -> None:
    outcome = run_subprocess("referral", "list", "--by", "cora", "--db", "empty.db", cwd=tmp_path)
    assert outcome.code == 2
    assert "channelflow init" in outcome.err


def test_an_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    outcome = run_subprocess(
        "user", "list", "--db", "postgresql+psycopg://postgres@127.0.0.1:1/none", cwd=tmp_path
    )
    assert outcome.code == 1
    assert "cannot open the postgresql database" in outcome.err


def test_an_unsupported_database_url_is_bad_input(tmp_path: Path) -> None:
    outcome = run_subprocess("user", "list", "--db", "mysql://root@localhost/x", cwd=tmp_path)
    assert outcome.code == 2
    assert "unsupported database" in outcome.err


def test_the_readme_main_command_loads_the_demo_with_every_state(tmp_path: Path) -> None:
    outcome = run_subprocess("init", "--demo", "--json", cwd=tmp_path)
    assert outcome.code == 0, outcome.err
    by_state = __import__("json").loads(outcome.out)["demo"]["by_state"]
    assert sum(by_state.values()) == 40
    assert all(by_state[state] >= 1 for state in REFERRAL_LIFECYCLE.states)
    assert (tmp_path / "channelflow.db").exists()
    assert (tmp_path / "channelflow.key").exists()
    again = run_subprocess("init", "--demo", cwd=tmp_path)
    assert again.code == 2
    assert "empty case register" in again.err
    assert run_subprocess("audit", "verify", cwd=tmp_path).code == 0


def test_the_demo_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    outcomes = [
        run_subprocess("init", "--demo", "--seed", "7", "--json", cwd=d).out
        for d in (first, second)
    ]
    summaries = [__import__("json").loads(o)["demo"] for o in outcomes]
    assert summaries[0] == summaries[1]


def test_user_commands_run_without_by(cli: Cli) -> None:
    assert cli("user", "list").code == 0
    assert cli("lifecycle").code == 0
    assert cli("audit", "verify").code == 0


def test_the_dot_diagram_renders_with_graphviz(tmp_path: Path) -> None:
    import shutil
    import subprocess

    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("Graphviz `dot` is not installed")
    diagram = run_subprocess("lifecycle", "--format", "dot", cwd=tmp_path).out
    rendered = subprocess.run(
        [dot, "-Tsvg"], input=diagram, capture_output=True, text=True, check=False
    )
    assert rendered.returncode == 0, rendered.stderr
    assert "<svg" in rendered.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--at", "0001-01-01T00:00+14:00"), "before 1900"),
        (("--at", "1899-12-31"), "before 1900"),
    ],
)
def test_event_times_out_of_range_are_bad_input(
    cli: Cli, referral: str, args: tuple[str, ...], message: str
) -> None:
    outcome = cli(
        "referral", "fire", referral, "screen", "--by", "pat", "--set", "outcome=proceed", *args
    )
    assert outcome.code == 2
    assert message in outcome.err


def test_out_of_range_dates_and_limits_are_bad_input(cli: Cli) -> None:
    ancient = cli(
        *ADD[:2], "--received", "0001-01-01", *ADD[4:-2], "--dob", "0001-01-01", "--by", "cora"
    )
    assert ancient.code == 2
    assert "before 1900" in ancient.err
    huge = cli("referral", "list", "--by", "cora", "--limit", "99999999999999999999")
    assert huge.code == 2
    assert "--limit" in huge.err


def test_bad_set_and_unknown_lead_do_not_repeat_what_was_typed(cli: Cli, referral: str) -> None:
    typed = cli("referral", "fire", referral, "screen", "--by", "pat", "--set", SUBJECT)
    assert typed.code == 2
    assert SUBJECT not in typed.err
    for event, actor, values in (
        ("screen", "pat", ["outcome=proceed"]),
        ("refer_to_panel", "cora", []),
    ):
        extra = [item for value in values for item in ("--set", value)]
        assert cli("referral", "fire", referral, event, "--by", actor, *extra).code == 0
    lead = cli(
        "referral",
        "fire",
        referral,
        "accept",
        "--by",
        "chris",
        "--set",
        "consent=parental",
        "--set",
        f"lead={SUBJECT}",
    )
    assert lead.code == 3
    assert SUBJECT not in lead.err


def test_a_role_that_may_not_fire_cannot_probe_which_references_exist(cli: Cli) -> None:
    missing = cli(
        "referral", "fire", "CF-2026-9999", "screen", "--by", "mel", "--set", "outcome=proceed"
    )
    assert missing.code == 4
