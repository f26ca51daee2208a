"""Names and short ids wherever the CLI takes an id: the API takes full UUIDs only."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import typer

from takeover.cli.client import call
from takeover.cli.tables import out


def pick(kind: str, ref: str, records: Iterable[dict[str, Any]], names: bool = True) -> dict[str, Any]:
    """The one record whose id, name or number is ``ref``, or whose id starts with it."""
    records = list(records)
    ref_id = ref.lower()
    exact = [
        r
        for r in records
        if r["id"] == ref_id or (names and r.get("name") == ref) or str(r.get("number", "")) == ref
    ]
    found = exact or ([r for r in records if r["id"].startswith(ref_id)] if len(ref_id) >= 3 else [])
    if len(found) == 1:
        return found[0]
    if not found:
        out.print(f"[red]error:[/] no {kind} named {ref!r} or with an id starting so")
    else:
        ids = ", ".join(r["id"][:12] for r in found)
        out.print(f"[red]error:[/] {ref!r} matches several {kind}s ({ids}): give more of the id")
    raise typer.Exit(1)


def instance(ref: str) -> dict[str, Any]:
    return pick("instance", ref, call("GET", "/api/v1/instances"))


def node(ref: str) -> dict[str, Any]:
    return pick("node", ref, call("GET", "/api/v1/nodes"))


def failover(ref: str) -> dict[str, Any]:
    """A full id is asked for directly: the list holds only the newest 500."""
    try:
        return dict(call("GET", f"/api/v1/failovers/{UUID(ref)}"))
    except ValueError:
        return pick("failover", ref, call("GET", "/api/v1/failovers"), names=False)


def node_names() -> dict[str, str]:
    """Node id -> name, for tables that show where things run."""
    return {n["id"]: n["name"] for n in call("GET", "/api/v1/nodes")}
