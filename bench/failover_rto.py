"""Recovery time: from SIGKILL of a node to its instance answering HTTP on another node.

Real processes on loopback: a control plane on SQLite and three agents, 1 s heartbeats,
offline_after 3 s. Each run places a fresh counter, waits for a snapshot, kills the node that
runs it, and polls every 20 ms until the instance answers at its new endpoint. The killed agent
is then restarted (it rejoins with its saved credentials) for the next run.

    .venv/bin/python -m bench.failover_rto --runs 10
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import ROOT  # noqa: F401  (puts the repository on sys.path)
from takeover.domain.snapshots import SnapshotRef
from takeover.localcluster import FAST_TIMINGS, LocalCluster, wait_until


def one_run(cluster: LocalCluster, n: int) -> tuple[float, float, float]:
    """(detection s, serving again s, failover record total s) for one kill."""
    inst = cluster.create_counter(f"rto-{n}")
    wait_until(lambda: cluster.serving(inst["id"]), 30, "the counter to serve", interval=0.02)
    cluster.hit(inst["id"])
    since = time.time()

    def snapshotted() -> bool:
        snap = cluster.instance(inst["id"])["last_snapshot"]
        return bool(snap) and SnapshotRef.parse(snap).taken_at.timestamp() > since

    wait_until(snapshotted, 20, "a snapshot")
    victim = cluster.node_name(cluster.instance(inst["id"])["node_id"])
    assert victim is not None
    killed = time.monotonic()
    cluster.kill_agent(victim)
    offline = serving = None
    while serving is None:
        now = time.monotonic()
        if offline is None and (cluster.node(victim) or {}).get("status") == "offline":
            offline = now
        if cluster.serving(inst["id"], epoch=2):
            serving = now
        if now - killed > 60:
            raise TimeoutError(f"run {n}: not serving 60 s after the kill")
        time.sleep(0.02)
    total_ms = cluster.failovers(inst["id"])[-1]["timings"]["total_ms"]
    cluster.start_agent(victim)
    wait_until(lambda: (cluster.node(victim) or {}).get("status") == "online", 30, f"{victim} back")
    cluster.api.delete(f"/api/v1/instances/{inst['id']}")
    return (offline or serving) - killed, serving - killed, total_ms / 1000


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    timings = ", ".join(f"{k.removeprefix('TAKEOVER_').lower()}={v}" for k, v in FAST_TIMINGS.items())
    print(f"timings: {timings}")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-rto-") as tmp, LocalCluster(Path(tmp)) as cluster:
        cluster.start_control_plane()
        for name in ("a", "b", "c"):
            cluster.start_agent(name)
        for n in range(args.runs):
            detect, serve, record = one_run(cluster, n)
            results.append((detect, serve, record))
            print(
                f"run {n + 1:2d}: offline after {detect:5.2f} s, serving after {serve:5.2f} s "
                f"(failover record: {record:4.2f} s from its creation)"
            )
    for label, index in (("detection", 0), ("serving again", 1), ("failover record", 2)):
        values = [r[index] for r in results]
        print(
            f"{label:16s} median {statistics.median(values):5.2f} s   p95 {percentile(values, 95):5.2f} s   "
            f"min {min(values):5.2f} s   max {max(values):5.2f} s"
        )


if __name__ == "__main__":
    main()
