"""How list and show commands print: a table that fits 80 columns, every column (wide), or JSON.

Tables show ids by their first 8 characters and times as ages; every command that takes an id
takes those short ids too (``takeover.cli.resolve``), and JSON always carries the full records.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from takeover.cli.tables import cell, out, print_table, table

SHORT_ID = 8


class Output(StrEnum):
    TABLE = "table"
    WIDE = "wide"
    JSON = "json"


OutputOption: Any = typer.Option(
    Output.TABLE, "-o", "--output", help="table (fits 80 columns), wide (every column, full ids) or json"
)


def emit(
    title: str,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    output: Output,
    wide: Sequence[str] = (),
) -> None:
    if output is Output.JSON:
        print(json.dumps(list(rows), indent=2, default=str))
        return
    out.print(render(title, rows, columns, output, wide))


def render(
    title: str,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    output: Output,
    wide: Sequence[str] = (),
) -> RenderableType:
    if output is Output.WIDE:
        return wide_view(title, rows, [*columns, *wide], out.width)
    return table(title, columns, [{c: brief(c, row.get(c)) for c in columns} for row in rows])


def wide_view(
    title: str, rows: Sequence[dict[str, Any]], columns: Sequence[str], width: int
) -> RenderableType:
    """Every column in full: a table where one fits ``width``, else one block of ``field  value``
    lines per record, so no value is cut to a few characters."""
    widths = [max([len(c), *(len(cell(row.get(c))) for row in rows)]) for c in columns]
    if sum(widths) + 3 * len(columns) + 1 <= width:
        return table(title, columns, rows)
    blocks: list[RenderableType] = [Text(title, style="italic")]
    for row in rows:
        record = Table.grid(padding=(0, 2))
        record.add_column(style="bold", no_wrap=True)
        record.add_column(overflow="fold")
        for column in columns:
            record.add_row(column, cell(row.get(column)))
        blocks += [record, Text("")]
    return Group(*blocks)


Frame = Callable[[], tuple[str, Sequence[dict[str, Any]], Sequence[str], Sequence[str]]]


def emit_watching(frame: Frame, output: Output, watch: bool, interval: float = 2.0) -> None:
    """Print ``frame()`` once, or, with ``watch``, redraw it every ``interval`` until Ctrl-C; as
    JSON, each refresh is one line holding the list (JSON Lines), for scripts to follow."""

    def drawn() -> RenderableType:
        title, rows, columns, wide = frame()
        return render(title, rows, columns, output, wide)

    if not watch:
        title, rows, columns, wide = frame()
        emit(title, rows, columns, output, wide)
        return
    try:
        if output is Output.JSON:
            while True:
                print(json.dumps(list(frame()[1]), default=str), flush=True)
                time.sleep(interval)
        if not out.is_terminal:  # a pipe or a file: each refresh printed after the last
            while True:
                out.print(drawn())
                out.file.flush()
                time.sleep(interval)
        with Live(drawn(), console=out, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(drawn(), refresh=True)
    except KeyboardInterrupt:
        return


WatchOption: Any = typer.Option(False, "--watch", "-w", help="redraw every 2 s until Ctrl-C")


def emit_one(title: str, record: dict[str, Any], output: Output) -> None:
    if output is Output.JSON:
        print(json.dumps(record, indent=2, default=str))
        return
    print_table(title, ("field", "value"), [{"field": k, "value": _flat(v)} for k, v in record.items()])


def brief(column: str, value: Any) -> Any:
    """A table cell: short ids, ages instead of timestamps."""
    if isinstance(value, str) and (column == "id" or column.endswith("_id")) and len(value) == 36:
        return value[:SHORT_ID]
    if isinstance(value, str) and (column.endswith("_at") or column == "at"):
        return age(value)
    return value


def age(stamp: str | None, now: datetime | None = None) -> str | None:
    if not stamp:
        return None
    try:
        then = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    seconds = ((now or datetime.now(UTC)) - then).total_seconds()
    size, unit = next(
        ((s, u) for u, s in (("d", 86400), ("h", 3600), ("m", 60)) if abs(seconds) >= s), (1, "s")
    )
    amount = f"{abs(seconds) / size:.0f}{unit}"
    return f"{amount} ago" if seconds >= 0 else f"in {amount}"  # an expiry is ahead


def _flat(value: Any) -> Any:
    return json.dumps(value, default=str) if isinstance(value, dict | list) else value
