"""`takeover instances`: list, show, create, snapshot."""

from __future__ import annotations

import time

import typer

from takeover.cli.client import call
from takeover.cli.tables import out, parse_pairs, print_table

app = typer.Typer(help="Instances placed on the pool", no_args_is_help=True)


@app.command("list")
def list_instances() -> None:
    rows = call("GET", "/api/v1/instances")
    columns = ("name", "id", "owner", "node_id", "epoch", "state", "endpoint", "last_snapshot", "last_error")
    print_table("instances", columns, rows)


@app.command("show")
def show(instance_id: str) -> None:
    """Everything about one instance, including where it serves now (endpoint)."""
    instance = call("GET", f"/api/v1/instances/{instance_id}")
    print_table(instance["name"], ("field", "value"), [{"field": k, "value": v} for k, v in instance.items()])


@app.command("snapshot")
def snapshot(
    instance_id: str,
    wait: bool = typer.Option(True, help="wait until the node reports the new snapshot"),
    timeout: float = typer.Option(120.0, min=1, help="seconds to wait"),
) -> None:
    """Ask the instance's node for a snapshot of its workspace now (on demand)."""
    before = call("POST", f"/api/v1/instances/{instance_id}/snapshot")
    out.print(f"snapshot of {before['name']} requested; its node takes it after its next heartbeat")
    if not wait:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = call("GET", f"/api/v1/instances/{instance_id}")
        if now["last_snapshot"] and now["last_snapshot"] != before["last_snapshot"]:
            out.print(f"snapshot {now['last_snapshot']} stored")
            return
        time.sleep(0.5)
    out.print(f"[red]error:[/] no new snapshot reported within {timeout:.0f} s")
    raise typer.Exit(1)


@app.command("create", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def create(
    ctx: typer.Context,
    name: str,
    region: str | None = typer.Option(None, help="preferred region"),
    env: list[str] = typer.Option([], help="KEY=value, repeatable"),
    workspace: str | None = typer.Option(None, help="workspace directory name on the node"),
    failover: bool = typer.Option(True, help="fail over automatically when its node dies"),
    strategy: str | None = typer.Option(None, help="warm_pool, cpu_standby, both, regional_volume, disabled"),
    volume: str | None = typer.Option(None, help="a regional volume id to use as the workspace"),
) -> None:
    """Place an instance on the best node: takeover instances create NAME -- COMMAND [ARGS...]"""
    if not ctx.args:
        out.print(
            "[red]error:[/] give the command after --, e.g. takeover instances create web -- python -m http.server"
        )
        raise typer.Exit(2)
    spec = {"command": ctx.args, "env": parse_pairs(env, "env"), "workspace": workspace}
    body = {
        "name": name,
        "spec": spec,
        "preferred_region": region,
        "failover_enabled": failover,
        "failover_strategy": strategy,
        "volume_id": volume,
    }
    instance = call("POST", "/api/v1/instances", json=body)
    out.print(
        f"instance {instance['name']} ({instance['id']}) placed on node {instance['node_id']} at epoch {instance['epoch']}"
    )
