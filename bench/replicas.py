"""Control-plane replicas on one PostgreSQL behind HAProxy (deploy/haproxy.cfg).

- Leader takeover: three replicas; SIGKILL the leader, time until a survivor reports it leads
  (its /metrics, polled every 20 ms), restart the killed one; --kills times.
- Heartbeat throughput through HAProxy with one, two and three replicas: wrk (C) sends
  heartbeats as --nodes nodes; every process (wrk, HAProxy, the replicas, PostgreSQL) shares
  this machine's cores, so more replicas add contention as much as capacity here.

    .venv/bin/python -m bench.replicas --kills 10 --duration 10
    .venv/bin/python -m bench.replicas --kills 10 --lease redis --takeover-only

With --lease redis the replicas elect their leader in Redis through three Sentinels (a master
and one replica); the Redis master is then SIGKILLed three times as well.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import database, register, start, stop
from bench.heartbeats import lua_script, run_wrk
from takeover.localcluster import FAST_TIMINGS, wait_until
from tests.e2e.balancer import haproxy, leads
from tests.redisserver import Sentinels

SERVE = {**FAST_TIMINGS, "TAKEOVER_LOG_LEVEL": "warning", "TAKEOVER_ADMIN_TOKEN": "admin-secret"}


def replica(root: Path, store: str, n: int, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    data = root / f"replica{n}"
    data.mkdir(exist_ok=True)
    settings = {**SERVE, "TAKEOVER_DATABASE_URL": store, "TAKEOVER_REPLICA_ID": f"replica{n}", **env}
    return start(data, **settings)


@contextmanager
def lease_backend(lease: str) -> Iterator[tuple[dict[str, str], Sentinels | None]]:
    """The replicas' settings for ``lease``: the store's row, or Redis found through three Sentinels."""
    if lease == "store":
        yield {}, None
        return
    sentinels = Sentinels()
    try:
        sentinels.start()
        yield sentinels.lease_env, sentinels
    finally:
        sentinels.stop()


def takeovers(kills: int, ttl: str, lease: str) -> tuple[list[float], list[float]]:
    """Seconds from SIGKILL to a new leader: of the leading replica, then (Redis) of Redis's master."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        database("postgres", Path(tmp)) as store,
        lease_backend(lease) as (env, sentinels),
    ):
        root = Path(tmp)
        running = {n: replica(root, store, n, TAKEOVER_LEASE_TTL=ttl, **env) for n in (1, 2, 3)}
        times, redis_times = [], []
        try:
            for _ in range(kills):
                leader = wait_until(
                    lambda: next((n for n, (_, url) in running.items() if leads(url)), None), 30, "a leader"
                )
                process, _ = running.pop(leader)
                process.kill()
                process.wait()
                killed = time.monotonic()
                wait_until(lambda: any(leads(url) for _, url in running.values()), 60, "a new leader", 0.02)
                times.append(time.monotonic() - killed)
                running[leader] = replica(root, store, leader, TAKEOVER_LEASE_TTL=ttl, **env)
            for _ in range(3 if sentinels else 0):
                assert sentinels is not None
                master = next(s for s in sentinels.servers if s.port == sentinels.master_port())
                master.kill()
                killed = time.monotonic()
                time.sleep(0.5)  # the leader's next renewal fails: its /metrics says so
                wait_until(lambda: any(leads(url) for _, url in running.values()), 60, "a leader again", 0.02)
                redis_times.append(time.monotonic() - killed)
                master.start()  # Sentinel makes it a replica of the new master
                wait_until(lambda: len(sentinels.replicas()) == 1, 30, "the old master to replicate")
                time.sleep(2 * Sentinels.FAILOVER_TIMEOUT_MS / 1000)  # Sentinel's pause between failovers
        finally:
            for process, _ in running.values():
                stop(process)
        return times, redis_times


def throughput(replicas: int, nodes: int, duration: int, connections: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, database("postgres", Path(tmp)) as store:
        root = Path(tmp)
        running = [replica(root, store, n) for n in range(1, replicas + 1)]
        urls = [url for _, url in running] + ["http://127.0.0.1:9"] * (3 - replicas)  # unused: down
        try:
            with haproxy(urls, root) as lb:
                registered = register(lb, nodes)
                script = lua_script(registered, root / "hb.lua")
                run_wrk(lb, script, 2, connections)  # warm-up
                return run_wrk(lb, script, duration, connections)
        finally:
            for process, _ in running:
                stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--ttl", default="3", help="TAKEOVER_LEASE_TTL, seconds")
    parser.add_argument("--lease", choices=["store", "redis"], default="store", help="TAKEOVER_LEASE_BACKEND")
    parser.add_argument("--takeover-only", action="store_true", help="skip the heartbeat throughput")
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    times, redis_times = takeovers(args.kills, args.ttl, args.lease)
    print(
        f"leader SIGKILL -> a survivor leads (lease in {args.lease}, ttl {args.ttl} s, {args.kills} kills): "
        f"median {statistics.median(times):.2f} s, min {min(times):.2f} s, max {max(times):.2f} s"
    )
    if redis_times:
        print(
            f"Redis master SIGKILL -> a replica leads again (Sentinel down-after 1 s, {len(redis_times)} kills): "
            + ", ".join(f"{t:.2f}" for t in redis_times)
            + " s"
        )
    if args.takeover_only:
        return
    print(
        f"heartbeats through HAProxy, {args.nodes} nodes, {args.connections} connections, {args.duration} s, "
        f"{os.cpu_count()} cores shared by everything:"
    )
    for replicas in (1, 2, 3):
        r = throughput(replicas, args.nodes, args.duration, args.connections)
        print(
            f"  {replicas} replica(s): {r['rps']:6.0f} heartbeats/s, p50 {r['p50_ms']:.1f} ms, "
            f"p99 {r['p99_ms']:.1f} ms, errors {r['errors']:.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
