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
    start_empty: bool = typer.Option(
        False,
        "--start-empty",
        help="admin only: if no snapshot can be restored, start it with an empty workspace (its data is lost)",
    ),
) -> None:
    """Ask the control plane to move an instance; prints the failover id to follow."""
    body = {
        "instance_id": instance_id,
        "reason": reason,
        "target_node_id": resolve_node(target) if target else None,
        "start_empty": start_empty,
    }
    failover = call("POST", "/api/v1/failovers", json=body)
    out.print(f"failover {failover['id']} {failover['status']}")


@app.command("strategy")
def set_strategy(
    instance_id: str,
    strategy: str = typer.Argument(
        help="warm_pool, cpu_standby (snapshot_restore), both, regional_volume, disabled"
    ),
) -> None:
    """Choose how this instance fails over."""
    instance = call("PATCH", f"/api/v1/instances/{instance_id}", json={"failover_strategy": strategy})
    out.print(f"{instance['name']} fails over with {instance['failover_strategy']}")


@app.command("strategies")
def strategies() -> None:
    """The strategies, with their recovery time and cost."""
    rows = call("GET", "/api/v1/failover/strategies")["strategies"]
    print_table("strategies", ("id", "name", "recovery_time", "cost"), rows)


@app.command("readiness")
def readiness(instance_id: str) -> None:
    """Could each strategy fail this instance over now, and what to do if not."""
    ready = call("GET", f"/api/v1/failover/readiness/{instance_id}")
    status = call("GET", f"/api/v1/failover/status/{instance_id}")
    rows = [
        {"strategy": name, "ready": ready[f"{name}_ready"], "details": ready[f"{name}_status"]}
        for name in ("warm_pool", "cpu_standby", "regional_volume")
    ]
    print_table(
        f"{ready['effective_strategy']}: overall ready {ready['overall_ready']}",
        ("strategy", "ready", "details"),
        rows,
    )
    if status["recommended_action"]:
        out.print(f"recommended: {status['recommended_action']}", soft_wrap=True)


@app.command("execute")
def execute(
    instance_id: str,
    strategy: str | None = typer.Option(None, help="force a strategy for this failover"),
    dry_run: bool = typer.Option(False, "--dry-run", help="only say what would be tried"),
) -> None:
    """Fail over now and wait for the outcome (document 002's execute)."""
    if dry_run:
        result = call(
            "POST", f"/api/v1/failover/test/{instance_id}", params={"dry_run": True, "strategy": strategy}
        )
        out.print(
            f"would try {result['would_try']}; would succeed: {result['would_succeed']}"
            + (f" ({result['recommended_action']})" if result.get("recommended_action") else ""),
            soft_wrap=True,
        )
        return
    result = call(
        "POST", "/api/v1/failover/execute", json={"machine_id": instance_id, "force_strategy": strategy}
    )
    if not result["success"]:
        out.print(f"[red]failover {result['failover_id']} failed:[/] {result['error']}", soft_wrap=True)
        raise typer.Exit(1)
    out.print(
        f"failover {result['failover_id']}: {result['strategy_succeeded']} on {result['new_node_name']}, "
        f"serving at {result['new_ssh_host']}:{result['new_ssh_port']}, {result['total_ms']:.0f} ms",
        soft_wrap=True,
    )
