"""`takeover failover`: list and start."""

from __future__ import annotations

import typer

from takeover.cli.client import call
from takeover.cli.nodes import resolve_node
from takeover.cli.tables import out, print_table

app = typer.Typer(help="Failovers", no_args_is_help=True)


@app.command("list")
def list_failovers(instance: str | None = None, status: str | None = None) -> None:
    rows = call("GET", "/api/v1/failovers", params={"instance_id": instance, "status": status})
    for row in rows:
        row["total_ms"] = row["timings"].get("total_ms")
    print_table("failovers", ("id", "instance_id", "reason", "status", "attempts", "total_ms", "error"), rows)


@app.command("start")
def start(
    instance_id: str,
    target: str | None = typer.Option(None, help="target node name or id (admin only)"),
    reason: str = typer.Option("manual", help="manual, load_balance, maintenance or health_degraded"),
) -> None:
    """Ask the control plane to move an instance; prints the failover id to follow."""
    body = {
        "instance_id": instance_id,
        "reason": reason,
        "target_node_id": resolve_node(target) if target else None,
    }
    failover = call("POST", "/api/v1/failovers", json=body)
    out.print(f"failover {failover['id']} {failover['status']}")
