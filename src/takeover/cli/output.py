"""How list and show commands print: a table that fits 80 columns, every column (wide), or JSON.

Tables show ids by their first 8 characters and times as ages; every command that takes an id
takes those short ids too (``takeover.cli.resolve``), and JSON always carries the full records.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import typer

from takeover.cli.tables import print_table

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
    if output is Output.WIDE:
        print_table(title, [*columns, *wide], rows)
        return
    print_table(title, columns, [{c: brief(c, row.get(c)) for c in columns} for row in rows])


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
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def _flat(value: Any) -> Any:
    return json.dumps(value, default=str) if isinstance(value, dict | list) else value
