"""`takeover instances`: list, show, create, update, delete, snapshot (names or short ids)."""

from __future__ import annotations

import sys
import time
from typing import Any

import typer

from takeover.cli import resolve
from takeover.cli.client import call
from takeover.cli.output import Output, OutputOption, WatchOption, emit_one, emit_watching
from takeover.cli.tables import out, parse_pairs

app = typer.Typer(help="Instances placed on the pool", no_args_is_help=True)
Ref = typer.Argument(help="the instance's name, id, or the start of its id")


@app.command("list")
def list_instances(output: Output = OutputOption, watch: bool = WatchOption) -> None:
    """Where each instance runs and serves, and its last snapshot."""

    def frame() -> tuple[str, list[dict[str, Any]], tuple[str, ...], tuple[str, ...]]:
        rows = call("GET", "/api/v1/instances")
        if output is not Output.JSON:
            names = resolve.node_names()
            for row in rows:
                row["node"] = names.get(row["node_id"], (row["node_id"] or "-")[:8])
                if row["state"] == "failed" and row["last_error"]:  # why, where a person looks first
                    row["state"] = f"failed: {row['last_error'].splitlines()[0]}"
        return (
            "instances",
            rows,
            ("name", "id", "node", "epoch", "state", "endpoint"),
            (
                "number",
                "owner",
                "address",
                "failover_strategy",
                "last_snapshot",
                "recovery_point",
                "last_error",
            ),
        )

    emit_watching(frame, output, watch)


@app.command("show")
def show(instance: str = Ref, output: Output = OutputOption) -> None:
    """Everything about one instance, including where it serves now (endpoint)."""
    record = resolve.instance(instance)
    emit_one(record["name"], record, output)


@app.command("snapshot")
def snapshot(
    instance: str = Ref,
    wait: bool = typer.Option(True, help="wait until the node reports the new snapshot"),
    timeout: float = typer.Option(120.0, min=1, help="seconds to wait"),
) -> None:
    """Ask the instance's node for a snapshot of its workspace now (on demand)."""
    instance_id = resolve.instance(instance)["id"]
    before = call("POST", f"/api/v1/instances/{instance_id}/snapshot")
    out.print(f"snapshot of {before['name']} requested; its node takes it as soon as it hears (its stream)")
    if not wait:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = call("GET", f"/api/v1/instances/{instance_id}")
        if now["last_snapshot"] and now["last_snapshot"] != before["last_snapshot"]:
            out.print(f"snapshot {now['last_snapshot']} stored")
            return
        if now["snapshot_error"] and now["snapshot_error"] != before["snapshot_error"]:
            out.print(f"[red]error:[/] the snapshot failed: {now['snapshot_error']}", soft_wrap=True)
            raise typer.Exit(1)
        time.sleep(0.2)
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
    image: str | None = typer.Option(None, help="run this container image (the command is then optional)"),
    mount_path: str | None = typer.Option(None, help="where the container sees its workspace (/workspace)"),
    gpus: int = typer.Option(0, min=0, help="GPUs it needs, of one model"),
    gpu_model: list[str] = typer.Option([], help="an accepted GPU model, preferred first; repeatable"),
    shared_gpus: bool = typer.Option(False, help="may share its GPUs with other shared instances"),
    rent_max_price: float | None = typer.Option(
        None, help="its failovers may rent a machine at up to this many dollars per hour"
    ),
    rent_gpu: list[str] = typer.Option([], help="a GPU model a rented machine may have; repeatable"),
    rent_spot: bool = typer.Option(False, help="rent interruptible machines (cheaper)"),
    wait: bool = typer.Option(True, help="wait until it runs, or say why it could not start (exit 1)"),
    timeout: float = typer.Option(120.0, min=1, help="seconds to wait for it to run"),
) -> None:
    """Place an instance on the best node: takeover instances create NAME -- COMMAND [ARGS...],
    or a container: takeover instances create NAME --image IMAGE [-- COMMAND [ARGS...]]"""
    if not ctx.args and image is None:
        out.print(
            "[red]error:[/] give the command after --, e.g. takeover instances create web -- python3 -m http.server,"
            " or an image with --image"
        )
        raise typer.Exit(2)
    spec: dict[str, object] = {"command": ctx.args, "env": parse_pairs(env, "env"), "workspace": workspace}
    if image is not None:
        spec["image"] = image
    if mount_path is not None:
        spec["mount_path"] = mount_path
    body = {
        "name": name,
        "spec": spec,
        "preferred_region": region,
        "failover_enabled": failover,
        "failover_strategy": strategy,
        "volume_id": volume,
    }
    if gpus or gpu_model:
        body["gpus"] = {"count": gpus or 1, "names": gpu_model, "shared": shared_gpus}
    if rent_max_price is not None:
        body["rent"] = {"max_price": rent_max_price, "gpu_names": rent_gpu, "spot": rent_spot}
    instance = call("POST", "/api/v1/instances", json=body)
    node = resolve.node_names().get(instance["node_id"], instance["node_id"])
    out.print(
        f"instance {instance['name']} ({instance['id'][:8]}) placed on {node} at epoch {instance['epoch']}"
    )
    if wait:
        _until_started(instance, timeout)


def _until_started(instance: dict[str, Any], timeout: float) -> None:
    """Until its runner reports running (where it serves) or failed (why); exit 1 unless running."""
    deadline = time.monotonic() + timeout
    while True:
        now = call("GET", f"/api/v1/instances/{instance['id']}")
        if now["state"] == "running":
            where = f" at {now['endpoint']}" if now["endpoint"] else ""
            address = f" (clients: {now['address']})" if now.get("address") else ""
            out.print(f"running{where}{address}")
            return
        if now["state"] == "failed":
            out.print(f"[red]failed to start:[/] {now['last_error'] or 'no reason reported'}", soft_wrap=True)
            raise typer.Exit(1)
        if time.monotonic() >= deadline:
            out.print(
                f"[yellow]not running after {timeout:.0f} s[/] (state: {now['state']}); "
                f"`takeover instances show {instance['name']}` says more",
                soft_wrap=True,
            )
            raise typer.Exit(1)
        time.sleep(0.5)


@app.command("update")
def update(
    instance: str = Ref,
    strategy: str | None = typer.Option(None, help="warm_pool, cpu_standby, both, regional_volume, disabled"),
    failover: bool | None = typer.Option(None, "--failover/--no-failover", help="fail over automatically"),
    region: str | None = typer.Option(None, help="preferred region for its failovers"),
    rent_max_price: float | None = typer.Option(None, help="may rent a machine at up to $/h (0: never)"),
    rent_gpu: list[str] = typer.Option([], help="a GPU model a rented machine may have; repeatable"),
    rent_spot: bool = typer.Option(False, help="rent interruptible machines (cheaper)"),
) -> None:
    """Change how an instance fails over."""
    changes = {"failover_strategy": strategy, "failover_enabled": failover, "preferred_region": region}
    body: dict[str, object] = {k: v for k, v in changes.items() if v is not None}
    if rent_max_price is not None:
        body["rent"] = (
            {"max_price": rent_max_price, "gpu_names": rent_gpu, "spot": rent_spot}
            if rent_max_price > 0
            else None
        )
    if not body:
        out.print(
            "[red]error:[/] nothing to change: give --strategy, --failover/--no-failover, --region or --rent-max-price"
        )
        raise typer.Exit(2)
    record = call("PATCH", f"/api/v1/instances/{resolve.instance(instance)['id']}", json=body)
    out.print(
        f"{record['name']}: strategy {record['failover_strategy'] or 'default'}, "
        f"automatic failover {'on' if record['failover_enabled'] else 'off'}, "
        f"preferred region {record['preferred_region'] or '-'}, "
        + (f"may rent up to ${record['rent']['max_price']}/h" if record.get("rent") else "never rents")
    )


@app.command("delete")
def delete(instance: str = Ref) -> None:
    """Remove an instance: its node stops it at its next heartbeat."""
    record = resolve.instance(instance)
    call("DELETE", f"/api/v1/instances/{record['id']}")
    out.print(f"instance {record['name']} deleted; its node stops it")


@app.command("logs")
def logs(
    instance: str = Ref,
    follow: bool = typer.Option(False, "-f", "--follow", help="keep printing new output until Ctrl-C"),
    tail: int = typer.Option(100, min=1, max=1000, help="how many of the newest chunks to start with"),
) -> None:
    """What the instance printed, on whichever node ran it (its agents ship it in heartbeats)."""
    instance_id = resolve.instance(instance)["id"]
    page = call("GET", f"/api/v1/instances/{instance_id}/logs", params={"limit": tail})
    _write(page["chunks"])
    try:
        while follow:
            time.sleep(1.0)
            page = call(
                "GET", f"/api/v1/instances/{instance_id}/logs", params={"after": page["next"], "limit": 1000}
            )
            _write(page["chunks"])
    except KeyboardInterrupt:
        return


def _write(chunks: list[dict[str, object]]) -> None:
    for chunk in chunks:
        sys.stdout.write(str(chunk["text"]))
    sys.stdout.flush()
