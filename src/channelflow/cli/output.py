"""Printing results: JSON for scripts, rich tables for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    # Piped output is not cut to 80 columns: scripts and files get whole values.
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def interactive(as_json: bool) -> bool:
    return not as_json and sys.stdout.isatty()


@contextmanager
def progress_bar(label: str, total: int, *, show: bool) -> Iterator[Any]:
    """Yields ``advance_to(completed)``; a no-op unless ``show`` (a terminal, no --json)."""
    if not show:
        yield lambda completed: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=total)
        yield lambda completed: progress.update(task, completed=completed)
