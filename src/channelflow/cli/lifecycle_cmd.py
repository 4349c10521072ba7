"""`channelflow lifecycle`: the referral state machine as JSON or a diagram."""

from __future__ import annotations

import click

from channelflow.cli.app import common_options
from channelflow.states import REFERRAL_LIFECYCLE
from channelflow.states.render import FORMATS


@click.command("lifecycle")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(FORMATS)),
    default="json",
    show_default=True,
    help="JSON, or a Mermaid or Graphviz DOT diagram",
)
@click.option("--json", "as_json", is_flag=True, help="same as --format json")
@common_options
def lifecycle(fmt: str, as_json: bool, db: str | None, by: str | None) -> None:
    """Print the referral lifecycle: states, events, who may fire them, what they need."""
    click.echo(FORMATS["json" if as_json else fmt](REFERRAL_LIFECYCLE), nl=False)


def register(group: click.Group) -> None:
    group.add_command(lifecycle)
