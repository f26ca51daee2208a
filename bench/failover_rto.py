"""Recovery time per strategy: from SIGKILL of a node to its instance answering HTTP on another.

Real processes on loopback: a control plane on SQLite and three agents in one region sharing
a volume root, 1 s heartbeats, offline_after 3 s. Each run places a fresh counter with the
strategy, optionally copies a blob of --workspace-mb into its workspace (or its volume), waits
until the data is protected (a snapshot after the write; for warm_pool also the standby synced
to it), kills the node that runs it, and polls every 20 ms until the instance answers at its
new endpoint. The killed agent is restarted between runs.

    .venv/bin/python -m bench.failover_rto --runs 10 --strategy cpu_standby warm_pool regional_volume
    .venv/bin/python -m bench.failover_rto --runs 10 --strategy cpu_standby --workspace-mb 1024
    .venv/bin/python -m bench.failover_rto --runs 10 --runtime container --strategy cpu_standby warm_pool

``--runtime container`` runs the counter image under Podman instead (a keeper stops the killed
node's container at its fence deadline). ``--timings lan`` uses LAN_TIMINGS (0.25 s heartbeats,
offline after 1.25 s); ``--transport http`` makes the agents send one request per heartbeat
instead of holding a stream (which also brings pushed desired state).

    .venv/bin/python -m bench.failover_rto --runs 10 --timings lan --transport stream http \
        --strategy warm_pool regional_volume
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT  # noqa: F401  (puts the repository on sys.path)
from takeover.domain.snapshots import SnapshotRef
from takeover.localcluster import FAST_TIMINGS, LocalCluster, wait_until

AGENTS = ("a", "b", "c")
# For a LAN: a heartbeat every 0.25 s; a node with no acknowledged heartbeat for 0.75 s stops its
# instances (SIGKILL 0.125 s after SIGTERM); the control plane waits 1.25 s (> 0.75 + 0.25).
LAN_TIMINGS = {
    **FAST_TIMINGS,
    "TAKEOVER_HEARTBEAT_INTERVAL": "0.25",
    "TAKEOVER_FENCE_AFTER": "0.75",
    "TAKEOVER_FENCE_MARGIN": "0.25",
    "TAKEOVER_OFFLINE_AFTER": "1.25",
    "TAKEOVER_MONITOR_INTERVAL": "0.1",
}


def protected(cluster: LocalCluster, inst: dict[str, Any], strategy: str, since: float) -> bool:
    """The data written before ``since`` would survive the kill."""
    if strategy == "regional_volume":
        return True
    now = cluster.instance(inst["id"])
    snap = now["last_snapshot"]
    if not snap or SnapshotRef.parse(snap).taken_at.timestamp() <= since:
        return False
    if strategy == "warm_pool":
        standby = now["standby_snapshot"]
        return bool(standby) and SnapshotRef.parse(standby).taken_at.timestamp() > since
    return True


def place(cluster: LocalCluster, name: str, strategy: str, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fresh counter with ``strategy`` (on a volume of its own for regional_volume), once it
    serves; and what it was created with."""
    extra: dict[str, Any] = {"failover_strategy": strategy}
    if strategy == "regional_volume":
        volume = cluster.api.post(
            "/api/v1/failover/regional-volume/create", json={"region": "local", "size_gb": 2, "name": f"v{n}"}
        ).json()
        extra["volume_id"] = volume["volume_id"]
    inst = cluster.create_counter(name, **extra)
    placed = wait_until(lambda: cluster.serving(inst["id"]), 60, "the counter to serve", interval=0.02)
    return placed, extra


def bring_back(cluster: LocalCluster, victim: str, instance_id: str, extra: dict[str, Any]) -> None:
    """Between runs: the killed agent started again and online; the run's instance, its
    workspace on the victim and its volume gone."""
    cluster.start_agent(victim)
    wait_until(lambda: (cluster.node(victim) or {}).get("status") == "online", 30, f"{victim} back")
    cluster.api.delete(f"/api/v1/instances/{instance_id}")
    shutil.rmtree(cluster.agents[victim].data_dir / "workspaces" / instance_id, ignore_errors=True)
    if "volume_id" in extra:
        cluster.api.delete(f"/api/v1/failover/regional-volume/{extra['volume_id']}")


def one_run(cluster: LocalCluster, strategy: str, n: int, blob: Path | None) -> tuple[float, float, float]:
    """(detection s, serving again s, failover record total s) for one kill."""
    inst, extra = place(cluster, f"{strategy}-{n}", strategy, n)
    victim = cluster.node_name(inst["node_id"])
    assert victim is not None
    if blob is not None:
        if strategy == "regional_volume":
            where = cluster.root / "volumes" / extra["volume_id"]
        else:
            where = cluster.agents[victim].data_dir / "workspaces" / inst["id"]
        shutil.copyfile(blob, where / "blob.bin")
        os.utime(where / "blob.bin", (time.time() - 10, time.time() - 10))
    cluster.hit(inst["id"])
    since = time.time()
    wait_until(
        lambda: protected(cluster, inst, strategy, since), 300, "the data to be protected", interval=0.2
    )
    killed = time.monotonic()
    cluster.kill_agent(victim)
    offline = serving = None
    while serving is None:
        now = time.monotonic()
        if offline is None and (cluster.node(victim) or {}).get("status") == "offline":
            offline = now
        if cluster.serving(inst["id"], epoch=2):
            serving = now
        if now - killed > 300:
            raise TimeoutError(f"run {n}: not serving 300 s after the kill")
        time.sleep(0.02)
    failover = cluster.failovers(inst["id"])[-1]
    assert [a["strategy"] for a in failover["attempt_log"]][-1] == strategy, failover["attempt_log"]
    bring_back(cluster, victim, inst["id"], extra)
    return (offline or serving) - killed, serving - killed, failover["timings"]["total_ms"] / 1000


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument(
        "--strategy",
        nargs="+",
        default=["cpu_standby"],
        choices=["cpu_standby", "warm_pool", "regional_volume"],
    )
    parser.add_argument("--workspace-mb", type=int, default=0, help="random data in each workspace")
    parser.add_argument("--runtime", choices=["process", "container"], default="process")
    parser.add_argument("--timings", choices=["fast", "lan"], default="fast")
    parser.add_argument("--transport", nargs="+", choices=["stream", "http"], default=["stream"])
    args = parser.parse_args()
    base = LAN_TIMINGS if args.timings == "lan" else FAST_TIMINGS
    timings = {**base, "TAKEOVER_SYNC_INTERVAL": "1", "TAKEOVER_BRAKE_MIN_NODES": "10"}
    print("timings: " + ", ".join(f"{k.removeprefix('TAKEOVER_').lower()}={v}" for k, v in timings.items()))
    print(f"workspace: counter + {args.workspace_mb} MB of random bytes; runtime: {args.runtime}")
    summary = []
    for transport in args.transport:
        summary += run_all(args, timings, transport)
    print()
    print(
        f"{'transport':9s} {'strategy':16s} {'detection':>16s} {'serving again':>20s} {'after detection':>22s}"
    )
    for name, results in summary:
        detected = [r[0] for r in results]
        served = [r[1] for r in results]
        after = [r[1] - r[0] for r in results]
        print(
            f"{name:26s} median {statistics.median(detected):5.2f} s   "
            f"median {statistics.median(served):6.2f} s p95 {percentile(served, 95):6.2f} s   "
            f"median {statistics.median(after):5.2f} s p95 {percentile(after, 95):5.2f} s"
        )


def run_all(
    args: argparse.Namespace, timings: dict[str, str], transport: str
) -> list[tuple[str, list[tuple[float, float, float]]]]:
    summary = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-rto-") as tmp,
        LocalCluster(Path(tmp), timings=timings, containers=args.runtime == "container") as cluster,
    ):
        blob = None
        if args.workspace_mb:
            blob = Path(tmp) / "blob.bin"
            with open(blob, "wb") as f:
                for _ in range(args.workspace_mb):
                    f.write(os.urandom(1 << 20))
        cluster.start_control_plane()
        for name in AGENTS:
            cluster.start_agent(
                name, NODE_VOLUME_ROOT=str(cluster.root / "volumes"), NODE_TRANSPORT=transport
            )
        for strategy in args.strategy:
            results = []
            for n in range(args.runs):
                detect, serve, record = one_run(cluster, strategy, n, blob)
                results.append((detect, serve, record))
                print(
                    f"{transport:9s} {strategy:16s} run {n + 1:2d}: offline after {detect:5.2f} s, serving after {serve:6.2f} s "
                    f"({serve - detect:5.2f} s after detection; failover record {record:5.2f} s)",
                    flush=True,
                )
            summary.append((f"{transport:9s} {strategy}", results))
    return summary


if __name__ == "__main__":
    main()
