"""Output and argument helpers shared by the CLI commands."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

# A pipe or a file has no width: tables there are as wide as their content, never cut to 80.
out = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 10_000)


def table(title: str, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> Table:
    drawn = Table(title=title)
    for column in columns:
        drawn.add_column(column)
    for row in rows:
        drawn.add_row(*(cell(row.get(c)) for c in columns))
    return drawn


def print_table(title: str, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    out.print(table(title, columns, rows))


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def parse_pairs(items: Sequence[str], what: str) -> dict[str, str]:
    """KEY=value options into a dict; a malformed one stops the command with its name."""
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            out.print(f"[red]error:[/] {what} {item!r} is not KEY=value")
            raise typer.Exit(2)
        pairs[key] = value
    return pairs
