"""`takeover instances`: list and create."""

from __future__ import annotations

import typer

from takeover.cli.client import call
from takeover.cli.tables import out, parse_pairs, print_table

app = typer.Typer(help="Instances placed on the pool", no_args_is_help=True)


@app.command("list")
def list_instances() -> None:
    rows = call("GET", "/api/v1/instances")
    print_table("instances", ("name", "id", "owner", "node_id", "epoch", "state", "failover_enabled"), rows)


@app.command("create", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def create(
    ctx: typer.Context,
    name: str,
    region: str | None = typer.Option(None, help="preferred region"),
    env: list[str] = typer.Option([], help="KEY=value, repeatable"),
    workspace: str | None = typer.Option(None, help="workspace directory name on the node"),
    failover: bool = typer.Option(True, help="fail over automatically when its node dies"),
) -> None:
    """Place an instance on the best node: takeover instances create NAME -- COMMAND [ARGS...]"""
    if not ctx.args:
        out.print(
            "[red]error:[/] give the command after --, e.g. takeover instances create web -- python -m http.server"
        )
        raise typer.Exit(2)
    spec = {"command": ctx.args, "env": parse_pairs(env, "env"), "workspace": workspace}
    body = {"name": name, "spec": spec, "preferred_region": region, "failover_enabled": failover}
    instance = call("POST", "/api/v1/instances", json=body)
    out.print(
        f"instance {instance['name']} ({instance['id']}) placed on node {instance['node_id']} at epoch {instance['epoch']}"
    )
