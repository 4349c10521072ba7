"""`channelflow toolkit load|list|rate|action add|action done`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from channelflow.cli.app import acting_user, common_options, db_option, json_option, runtime
from channelflow.cli.output import print_json, print_table
from channelflow.runtime import Runtime
from channelflow.toolkit import Toolkit
from channelflow.workflow.dates import parse_date


def _toolkit(db: str | None) -> tuple[Toolkit, Runtime]:
    rt = runtime(db)
    return Toolkit(rt.workflow), rt


@click.group("toolkit")
def toolkit() -> None:
    """The Prevent duty toolkit self-assessment.

    Benchmarks rated on a scale (red, amber, green unless the loaded file says otherwise),
    and actions whose owners review them every six months. Anyone may list it; loading and
    changing it needs a coordinator's or chair's --by.
    """


@toolkit.command("load")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--default-owner",
    metavar="USER",
    help="the user who owns actions whose owner in the file is not a user",
)
@json_option
@common_options
def load(
    file: Path, default_owner: str | None, as_json: bool, db: str | None, by: str | None
) -> None:
    """Load the self-assessment from a TOML FILE.

    Only into an empty toolkit; examples/toolkit-2019.toml shows the format.
    """
    kit, rt = _toolkit(db)
    loaded = kit.load(file, default_owner=default_owner, by=acting_user(rt, by))
    if as_json:
        print_json(
            {
                "benchmarks": loaded.benchmarks,
                "actions": loaded.actions,
                "default_owner_actions": loaded.defaulted,
            }
        )
        return
    click.echo(f"loaded {loaded.benchmarks} benchmarks and {loaded.actions} actions from {file}")
    if loaded.defaulted:
        click.echo(f"  {loaded.defaulted} actions are owned by {default_owner} (--default-owner)")


@toolkit.command("list")
@json_option
@db_option
def list_benchmarks(as_json: bool, db: str | None) -> None:
    """List the benchmarks, their ratings and their actions."""
    kit, _ = _toolkit(db)
    benchmarks = kit.list()
    if as_json:
        print_json(benchmarks)
        return
    print_table(
        "benchmarks",
        ["#", "key", "name", "rating", "comment"],
        [[b["position"], b["key"], b["name"], b["rating"], b["comment"]] for b in benchmarks],
    )
    print_table(
        "actions",
        ["id", "benchmark", "action", "owner", "review on", "completed on"],
        [
            [a["id"], b["key"], a["text"], a["owner"], a["review_on"], a["completed_on"]]
            for b in benchmarks
            for a in b["actions"]
        ],
    )


@toolkit.command("rate")
@click.argument("benchmark")
@click.argument("rating")
@click.option("--reason", metavar="TEXT", help="why the rating changes (required)")
@json_option
@common_options
def rate(
    benchmark: str,
    rating: str,
    reason: str | None,
    as_json: bool,
    db: str | None,
    by: str | None,
) -> None:
    """Give BENCHMARK (its key) a new RATING.

    RATING is on the toolkit's scale, e.g. red, amber or green.
    """
    kit, rt = _toolkit(db)
    rated = kit.rate(benchmark, rating, by=acting_user(rt, by), reason=reason)
    if as_json:
        print_json({"key": rated.key, "rating": rated.rating, "previous": rated.previous})
    else:
        click.echo(f"{rated.key}: {rated.previous or 'unrated'} -> {rated.rating}")


@toolkit.group("action")
def action() -> None:
    """Add actions against benchmarks and record their process reviews."""


@action.command("add")
@click.argument("benchmark")
@click.argument("text")
@click.option("--owner", metavar="USER", help="who owns the action (default: --by)")
@click.option("--review-on", metavar="DATE", help="when its process review falls (YYYY-MM-DD)")
@json_option
@common_options
def add_action(
    benchmark: str,
    text: str,
    owner: str | None,
    review_on: str | None,
    as_json: bool,
    db: str | None,
    by: str | None,
) -> None:
    """Add an action with TEXT against BENCHMARK (its key)."""
    review = parse_date(review_on, what="--review-on") if review_on else None
    kit, rt = _toolkit(db)
    added = kit.add_action(benchmark, text, owner=owner, review_on=review, by=acting_user(rt, by))
    if as_json:
        print_json(added)
        return
    click.echo(f"added action {added['id']} to {added['benchmark']}, owned by {added['owner']}")
    _echo_review(added)


@action.command("done")
@click.argument("action_id", metavar="ID", type=int)
@click.option("--on", "on", metavar="DATE", help="when the review was done (default today)")
@click.option("--complete", is_flag=True, help="the action is finished: no more reviews")
@json_option
@common_options
def done(
    action_id: int,
    on: str | None,
    complete: bool,
    as_json: bool,
    db: str | None,
    by: str | None,
) -> None:
    """Record action ID's process review as done; the next falls six months on."""
    day = parse_date(on, what="--on") if on else None
    kit, rt = _toolkit(db)
    changed = kit.action_done(action_id, by=acting_user(rt, by), on=day, complete=complete)
    if as_json:
        print_json(changed)
        return
    if changed["completed_on"] is not None:
        click.echo(f"action {changed['id']} completed on {changed['completed_on']}")
    else:
        click.echo(f"action {changed['id']} reviewed")
    _echo_review(changed)


def _echo_review(action: dict[str, Any]) -> None:
    if action["review_on"] is not None:
        click.echo(f"  next review: {action['review_on']}")


def register(group: click.Group) -> None:
    group.add_command(toolkit)
