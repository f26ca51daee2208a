"""`takeover nodes`: list, show, join-token, register, drain, maintenance, activate, delete (names or
short ids)."""

from __future__ import annotations

from typing import Any

import typer

from takeover.cli import jointokens, resolve
from takeover.cli.client import call
from takeover.cli.output import Output, OutputOption, WatchOption, emit_one, emit_watching
from takeover.cli.tables import out, parse_pairs

app = typer.Typer(help="Nodes of the pool", no_args_is_help=True)
app.add_typer(jointokens.app, name="join-token")
Ref = typer.Argument(help="the node's name, id, or the start of its id")


@app.command("list")
def list_nodes(
    status: str | None = None,
    region: str | None = None,
    output: Output = OutputOption,
    watch: bool = WatchOption,
) -> None:
    """Every node with its health score, load and capacity."""

    def frame() -> tuple[str, list[dict[str, Any]], tuple[str, ...], tuple[str, ...]]:
        rows = call("GET", "/api/v1/nodes", params={"status": status, "region": region})
        if output is not Output.JSON:
            for row in rows:
                row["instances"] = f"{row['current_instances']}/{row['max_instances']}"
                row["score"] = row["health_score"] if row["heard"] in ("live", "late") else "-"
                if row["status"] == "online" and row["heard"] in ("late", "silent"):
                    ago = row["heard_ago_s"]
                    row["status"] = f"{row['heard']} {ago:.0f}s" if ago is not None else "silent, never heard"
                row.update(gpu_columns(row.get("gpus") or []))
                row["runs"] = runs(row)
        return "nodes", rows, NODE_COLUMNS, NODE_WIDE

    emit_watching(frame, output, watch)


NODE_COLUMNS = ("name", "id", "region", "status", "score", "instances", "gpus", "last_heartbeat_at")
NODE_WIDE = (
    "cpu_load",
    "memory_load",
    "avg_latency_ms",
    "gpu_util",
    "gpu_memory",
    "gpu_temp",
    "runs",
    "priority",
    "base_url",
    "labels",
)


def runs(node: dict[str, Any]) -> str:
    """What it runs besides processes: containers, or its own image (a rented machine)."""
    if node.get("containers", True):
        return "processes, containers"
    return f"processes, {node['image']} itself" if node.get("image") else "processes only"


def gpu_columns(gpus: list[dict[str, Any]]) -> dict[str, str]:
    """A node's GPUs in a few characters: "2x NVIDIA A100", mean utilization, memory, hottest."""
    if not gpus:
        return {"gpus": "-", "gpu_util": "-", "gpu_memory": "-", "gpu_temp": "-"}
    models: dict[str, int] = {}
    for gpu in gpus:
        models[gpu["name"]] = models.get(gpu["name"], 0) + 1
    used = sum(g["memory_used_mb"] for g in gpus) / 1024
    total = sum(g["memory_total_mb"] for g in gpus) / 1024
    return {
        "gpus": ", ".join(f"{n}x {model}" for model, n in sorted(models.items())),
        "gpu_util": f"{100 * sum(g['utilization'] for g in gpus) / len(gpus):.0f}%",
        "gpu_memory": f"{used:.1f}/{total:.1f} GiB",
        "gpu_temp": f"{max(g['temperature_c'] for g in gpus):.0f} C",
    }


@app.command("show")
def show(node: str = Ref, output: Output = OutputOption) -> None:
    """One node: status, score and its parts, capacity, labels, last heartbeat."""
    record = resolve.node(node)
    emit_one(record["name"], record, output)


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


def _set_status(node: str, status: str) -> dict[str, object]:
    result: dict[str, object] = call(
        "PATCH", f"/api/v1/nodes/{resolve.node(node)['id']}", json={"status": status}
    )
    return result


@app.command("drain")
def drain(
    node: str = Ref, maintenance: bool = typer.Option(False, help="mark as maintenance instead of draining")
) -> None:
    """Stop placing on a node and move its instances off."""
    result = _set_status(node, "maintenance" if maintenance else "draining")
    out.print(f"node {result['name']} is {result['status']}; its instances are moving off")


@app.command("maintenance")
def maintenance(node: str = Ref) -> None:
    """Planned work: as drain, recorded as maintenance."""
    result = _set_status(node, "maintenance")
    out.print(f"node {result['name']} is in maintenance; its instances are moving off")


@app.command("activate")
def activate(node: str = Ref) -> None:
    """Leave draining or maintenance: the node takes new instances again."""
    if resolve.node(node)["status"] == "offline":
        out.print(f"[red]error:[/] node {node} is offline: it is online again once its agent heartbeats")
        raise typer.Exit(1)
    result = _set_status(node, "online")
    out.print(f"node {result['name']} is {result['status']} and takes new instances")


@app.command("delete")
def delete(node: str = Ref) -> None:
    """Remove a node that runs nothing (drain it first); its token stops working."""
    record = resolve.node(node)
    call("DELETE", f"/api/v1/nodes/{record['id']}")
    out.print(f"node {record['name']} deleted")
