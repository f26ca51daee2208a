"""`takeover demo`: a pool of three real agents on loopback loses a node and recovers, live.

`--rent`: a pool of one, whose counters (containers of an image built offline) come back on
machines rented from a fake of Vast.ai's API (takeover.testing.fakevast: nothing is rented).
Each machine boots the counter's image with Podman, fetches the agent from the control plane
and runs the counter beside it, served at a mapped port; given back once idle.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from takeover.examples.image import COUNTER_IMAGE, RENTABLE_IMAGE
from takeover.localcluster import ADMIN_TOKEN, FAST_TIMINGS, LocalCluster, wait_until

if TYPE_CHECKING:
    from takeover.testing.fakevast import FakeVast
    from takeover.testing.machines import Podman

console = Console()
_STATUS_STYLE = {"online": "green", "offline": "red", "draining": "yellow", "maintenance": "yellow"}


@dataclass
class Recovery:
    killed_at: float
    offline_at: float | None = None
    serving_at: dict[str, float] = field(default_factory=dict)


def demo(
    keep_running: bool = typer.Option(False, "--keep-running", help="leave the pool up to explore"),
    instances: int = typer.Option(3, min=1, max=12, help="counter instances to place"),
    timeout: float = typer.Option(45.0, min=5, help="seconds to wait for the recovery"),
    containers: bool = typer.Option(
        False, "--containers", help="run the counters as containers (Podman, an image built offline)"
    ),
    rent: bool = typer.Option(
        False,
        "--rent",
        help="one node only: its counters come back on machines rented from a fake marketplace",
    ),
    pause: bool = typer.Option(
        False,
        "--pause",
        help="wait for Enter before the SIGKILL, and again before stopping, to watch it in the web console",
    ),
) -> None:
    """Start a control plane and 3 agents, place counters, SIGKILL a node, watch them come back."""
    root = Path(tempfile.mkdtemp(prefix="takeover-demo-"))
    started = time.monotonic()
    try:
        try:
            cluster = LocalCluster(root, containers=containers or rent)
            boot = cluster.rentable_image() if rent else None
        except (FileNotFoundError, subprocess.CalledProcessError) as exc:
            detail = (
                exc.stderr.decode(errors="replace").strip()
                if isinstance(exc, subprocess.CalledProcessError)
                else exc
            )
            console.print(f"[red]error:[/] cannot set up containers: {detail}")
            raise typer.Exit(2) from None
        if containers or rent:
            image = RENTABLE_IMAGE if rent else COUNTER_IMAGE
            console.print(f"counters run as containers of {image} under Podman (runc)")
        with cluster, ExitStack() as stack:
            market = stack.enter_context(_fake_market(root, instances, boot)) if boot else None
            ok = _run(cluster, instances, timeout, market, pause)
            console.print(f"\n[bold]demo finished in {time.monotonic() - started:.1f} s[/]")
            if keep_running:
                _explore(cluster)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if not ok:
        raise typer.Exit(1)


def _fake_market(root: Path, count: int, boot: Podman) -> FakeVast:
    """A fake of Vast.ai's API on loopback (nothing is rented): its machines boot the image."""
    from takeover.testing.fakevast import FakeVast, offer  # a server: loaded for --rent only

    offers = [offer(n, dph_total=round(0.25 + n / 20, 2)) for n in range(1, count + 3)]
    return FakeVast(root / "fake-vast", offers, boot=boot)


def _run(
    cluster: LocalCluster, count: int, timeout: float, market: FakeVast | None = None, pause: bool = False
) -> bool:
    timings = ", ".join(f"{k.removeprefix('TAKEOVER_').lower()}={v}s" for k, v in FAST_TIMINGS.items())
    console.print(f"[bold]takeover demo[/] in {cluster.root}\n[dim]timings: {timings}[/]")
    agent_env = {"TAKEOVER_SNAPSHOT_DIR": str(cluster.snapshot_dir), "SNAPSHOT_INTERVAL": "1"}
    serve_env = market.serve_env("local", agent_env, TAKEOVER_RENT_IDLE_GRACE="3") if market else {}
    url = cluster.start_control_plane(env={**serve_env, "TAKEOVER_SCORE_SAMPLE_INTERVAL": "2"})
    console.print(f"control plane on {url} (SQLite); web console: {url}/ui (token {ADMIN_TOKEN})")
    nodes = 1 if market else 3
    for n in range(1, nodes + 1):
        cluster.start_agent(f"node-{n}")
    console.print(f"{nodes} agent(s) registered: " + ", ".join(f"node-{n}" for n in range(1, nodes + 1)))
    extra: dict[str, Any] = {}
    if market is not None:
        console.print(
            f"a [bold]fake[/] of Vast.ai's API on {market.url} (nothing is rented, nothing is paid): "
            "a rented machine there boots the counter's image, fetches the agent from the control "
            "plane and runs the counter beside it; the counters may rent at up to $1/h"
        )
        extra = {"rent": {"max_price": 1.0}, "spec": {"image": RENTABLE_IMAGE, "command": ["/app/serve"]}}
    ids, acked = _serving_counters(cluster, count, extra)
    victim, moving = _victim(cluster, ids)
    if pause:
        console.input(f"open {url}/ui, then press Enter to SIGKILL {victim} ")
    recovery = _kill_and_watch(cluster, ids, victim, moving, timeout)
    ok = _report(cluster, moving, acked, recovery)
    if market is not None:
        _rented(cluster, ids)
    if pause:  # the console shows the failover only while the pool is still up
        console.input(f"the failover is in the console at {url}/ui/failovers; press Enter to stop the pool ")
    return ok


def _serving_counters(
    cluster: LocalCluster, count: int, extra: dict[str, Any]
) -> tuple[list[str], dict[str, int]]:
    """The counters placed, sent requests and snapshotted; what each acknowledged."""
    placed = [cluster.create_counter(f"counter-{n}", **extra) for n in range(1, count + 1)]
    ids = [p["id"] for p in placed]
    wait_until(lambda: all(cluster.serving(i) for i in ids), 30, "the counters to serve")
    acked: dict[str, int] = {}
    for n, instance_id in enumerate(ids, start=1):
        for _ in range(5 * n):
            acked[instance_id] = cluster.hit(instance_id)
    since = time.time()
    for instance_id in ids:
        cluster.snapshot_after(instance_id, since)
    console.print(_tables(cluster, ids))
    console.print("each counter answered its requests; a snapshot of each count is in the store\n")
    return ids, acked


def _victim(cluster: LocalCluster, ids: list[str]) -> tuple[str, list[str]]:
    """The node holding the most counters, and those."""
    held: dict[str, list[str]] = {}
    for instance_id in ids:
        held.setdefault(cluster.node_name(cluster.instance(instance_id)["node_id"]) or "?", []).append(
            instance_id
        )
    victim = max(held, key=lambda name: len(held[name]))
    return victim, held[victim]


def _kill_and_watch(
    cluster: LocalCluster, ids: list[str], victim: str, moving: list[str], timeout: float
) -> Recovery:
    if cluster.containers:
        console.print(
            f"[bold red]SIGKILL {victim}[/]'s agent: the keepers of its {len(moving)} container(s) "
            "stop them at the node's fence deadline"
        )
    else:
        console.print(f"[bold red]SIGKILL {victim}[/] (its agent and its {len(moving)} workload(s))")
    recovery = Recovery(time.monotonic())
    cluster.kill_agent(victim)
    with Live(_tables(cluster, ids), console=console, refresh_per_second=4) as live:
        while time.monotonic() - recovery.killed_at < timeout:
            now = time.monotonic()
            if recovery.offline_at is None and (cluster.node(victim) or {}).get("status") == "offline":
                recovery.offline_at = now
            for instance_id in moving:
                if instance_id not in recovery.serving_at and cluster.serving(instance_id, epoch=2):
                    recovery.serving_at[instance_id] = now
            live.update(_tables(cluster, ids))
            if len(recovery.serving_at) == len(moving):
                break
            time.sleep(0.25)
    return recovery


def _rented(cluster: LocalCluster, ids: list[str]) -> None:
    """The machines rented, then given back once the counters are deleted and they are idle."""
    console.print(_machines(cluster))
    for instance_id in ids:
        cluster.api.delete(f"/api/v1/instances/{instance_id}")
    console.print("counters deleted: each machine goes back once idle for 3 s (TAKEOVER_RENT_IDLE_GRACE)")
    try:
        wait_until(lambda: not cluster.api.get("/api/v1/provider/machines").json(), 30, "idle machines to go")
    except TimeoutError:
        console.print("[red]a rented machine is still held 30 s later[/]")
    console.print(_machines(cluster))


def _machines(cluster: LocalCluster) -> Table:
    table = Table(title="rented machines (takeover provider machines --ended)")
    for column in ("machine", "node", "state", "price", "cost", "runs", "why it ended"):
        table.add_column(column)
    for m in cluster.api.get("/api/v1/provider/machines?ended=true").json():
        if m["machine_id"] is None:
            continue
        table.add_row(
            str(m["machine_id"]),
            m["node_name"] or "-",
            m["state"],
            f"${m['price_per_hour']}/h",
            f"${m['cost_so_far']:.4f}",
            ", ".join(m["instances"]) or "-",
            m["error"] or "-",
        )
    return table


def _report(cluster: LocalCluster, moving: list[str], acked: dict[str, int], rec: Recovery) -> bool:
    table = Table()
    for column in (
        "instance",
        "new node",
        "serving after",
        "count acked / now",
        "snapshot age",
        "failover steps",
    ):
        table.add_column(column)
    ok = len(rec.serving_at) == len(moving)
    for instance_id in moving:
        inst = cluster.instance(instance_id)
        serving = rec.serving_at.get(instance_id)
        try:  # serving comes first; the leader's next cycle records the failover completed
            failovers = cluster.ended_failovers(instance_id, timeout=5 if serving else 0)
        except TimeoutError:
            failovers = cluster.failovers(instance_id)
        f = failovers[-1] if failovers else {}
        now_count = _count(inst) if serving else None
        ok = ok and now_count == acked[instance_id]
        total = f.get("timings", {}).get("total_ms")
        table.add_row(
            inst["name"],
            cluster.node_name(inst["node_id"]) or "-",
            f"{serving - rec.killed_at:.2f} s" if serving else "[red]not yet[/]",
            f"{acked[instance_id]} / {now_count if now_count is not None else '-'}",
            f"{f['backup_age_s']:.2f} s" if f.get("backup_age_s") is not None else "-",
            f"{f.get('status', '-')} in {total:.0f} ms" if total is not None else f.get("status", "-"),
        )
    console.print("\n[bold]recovery, measured from the SIGKILL[/]")  # after Live's last frame
    console.print(table)
    if rec.offline_at is not None:
        console.print(f"detection: node offline {rec.offline_at - rec.killed_at:.2f} s after the kill")
    console.print(
        "[green]every counter serves again on a live node with its count intact[/]"
        if ok
        else "[red]not every counter recovered with its count; see the logs in the demo directory[/]"
    )
    return ok


def _count(inst: dict[str, Any]) -> int | None:
    try:
        value: int = httpx.get(f"http://{inst['endpoint']}/count", timeout=2).json()["count"]
        return value
    except (httpx.HTTPError, ValueError, KeyError, TypeError):  # not the counter's JSON
        return None


def _tables(cluster: LocalCluster, ids: list[str]) -> Group:
    nodes = Table(title="nodes", min_width=60)
    for column in ("node", "status", "health", "instances"):
        nodes.add_column(column)
    for n in sorted(cluster.api.get("/api/v1/nodes").json(), key=lambda n: n["name"]):
        style = _STATUS_STYLE.get(n["status"], "")
        nodes.add_row(
            n["name"],
            f"[{style}]{n['status']}[/]",
            f"{n['health_score']:.1f}",
            f"{n['current_instances']}/{n['max_instances']}",
        )
    instances = Table(title="instances", min_width=60)
    for column in ("instance", "node", "epoch", "state", "endpoint", "count"):
        instances.add_column(column)
    for instance_id in ids:
        inst = cluster.instance(instance_id)
        count = _count(inst) if inst["endpoint"] else None
        instances.add_row(
            inst["name"],
            cluster.node_name(inst["node_id"]) or "-",
            str(inst["epoch"]),
            inst["state"],
            inst["endpoint"] or "-",
            str(count) if count is not None else "-",
        )
    return Group(nodes, instances)


def _explore(cluster: LocalCluster) -> None:
    console.print(
        f"\nthe pool stays up until Ctrl-C. In another shell:\n"
        f"  export TAKEOVER_URL={cluster.url} TAKEOVER_TOKEN={ADMIN_TOKEN}\n"
        f"  takeover nodes list; takeover instances list; takeover failover list\n"
        f"logs and data: {cluster.root}"
    )
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopping")
