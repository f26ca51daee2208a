"""`takeover events [-f]`: the audit log (admin), oldest first, and with -f as it grows."""

from __future__ import annotations

import time
from typing import Any

import typer

from takeover.cli.client import call
from takeover.cli.output import Output, OutputOption, emit
from takeover.cli.tables import out


def events(
    kind: str | None = typer.Option(None, help="only kinds starting so, e.g. failover. or node.offline"),
    limit: int = typer.Option(20, "-n", "--limit", min=1, max=1000, help="how many of the newest to show"),
    follow: bool = typer.Option(False, "-f", "--follow", help="keep printing new events until Ctrl-C"),
    output: Output = OutputOption,
) -> None:
    """What happened: registrations, placements, failovers, brakes, tokens."""
    rows = _newest(kind, limit)
    names = _names() if output is not Output.JSON else {}
    for row in rows:
        row["about"] = names.get(row["subject"], "")
    if not follow:
        emit("events", rows, ("at", "kind", "about", "message"), output, wide=("id", "subject"))
        return
    last = rows[-1]["id"] if rows else 0
    for row in rows:
        _line(row)
    try:
        while True:
            time.sleep(1.0)
            fresh = [row for row in _newest(kind, 1000) if row["id"] > last]
            if any(row["subject"] not in names for row in fresh):
                names = _names()  # a node or instance new since the last look
            for row in fresh:
                row["about"] = names.get(row["subject"], "")
                _line(row)
                last = row["id"]
    except KeyboardInterrupt:
        return


def _names() -> dict[str, str]:
    """Each node's, instance's and (recent) failover's id -> what a person calls it."""
    found = {n["id"]: f"node {n['name']}" for n in call("GET", "/api/v1/nodes")}
    instances = {i["id"]: i["name"] for i in call("GET", "/api/v1/instances")}
    found.update({i: f"instance {name}" for i, name in instances.items()})
    for f in call("GET", "/api/v1/failovers"):
        found[f["id"]] = f"failover of {instances.get(f['instance_id'], f['instance_id'][:8])}"
    return found


def _newest(kind: str | None, limit: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = call("GET", "/api/v1/events", params={"limit": limit, "kind": kind})
    return sorted(rows, key=lambda r: r["id"])


def _line(row: dict[str, Any]) -> None:
    about = f"{row['about']}: " if row.get("about") else ""
    out.print(f"{row['at']}  {row['kind']:<24} {about}{row['message']}", soft_wrap=True, highlight=False)
