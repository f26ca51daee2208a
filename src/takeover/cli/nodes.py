"""`takeover nodes`: list, register, drain."""

from __future__ import annotations

import typer

from takeover.cli.client import call
from takeover.cli.tables import out, parse_pairs, print_table

app = typer.Typer(help="Nodes of the pool", no_args_is_help=True)
COLUMNS = (
    "name",
    "id",
    "region",
    "status",
    "health_score",
    "current_instances",
    "max_instances",
    "last_heartbeat_at",
)


@app.command("list")
def list_nodes(status: str | None = None, region: str | None = None) -> None:
    print_table("nodes", COLUMNS, call("GET", "/api/v1/nodes", params={"status": status, "region": region}))


@app.command("register")
def register(
    name: str,
    region: str = typer.Option(..., help="region of the node, e.g. br-south"),
    base_url: str = typer.Option(..., help="where the node's agent is reachable"),
    max_instances: int = typer.Option(50, help="capacity (NODE_MAX_INSTANCES)"),
    priority: int = typer.Option(0, help="tie-breaker for premium nodes"),
    label: list[str] = typer.Option([], help="key=value, repeatable"),
) -> None:
    """Register a node and print its token once (NODE_ID / NODE_TOKEN for its agent)."""
    labels = parse_pairs(label, "label")
    body = {
        "name": name,
        "region": region,
        "base_url": base_url,
        "max_instances": max_instances,
        "priority": priority,
        "labels": labels,
    }
    node = call("POST", "/api/v1/nodes", json=body)
    out.print(f"registered node {node['name']}")
    print(f"NODE_ID={node['id']}\nNODE_TOKEN={node['api_token']}")


@app.command("drain")
def drain(
    node: str, maintenance: bool = typer.Option(False, help="mark as maintenance instead of draining")
) -> None:
    """Stop placing on a node and move its instances off (NODE is a name or an id)."""
    node_id = resolve_node(node)
    status = "maintenance" if maintenance else "draining"
    result = call("PATCH", f"/api/v1/nodes/{node_id}", json={"status": status})
    out.print(f"node {result['name']} is {result['status']}; its instances are moving off")


def resolve_node(name_or_id: str) -> str:
    for node in call("GET", "/api/v1/nodes"):
        if name_or_id in (node["id"], node["name"]):
            return str(node["id"])
    out.print(f"[red]error:[/] no node named or with id {name_or_id!r}")
    raise typer.Exit(1)
