"""takeover.regions against raw psycopg and libpq's multi-host strings, on one real cluster.

A PostgreSQL primary and two streaming replicas on loopback (the tests' fixture). Measures:
- the per-query cost of query_with_failover over raw psycopg, SELECT 1 on a kept connection;
- after SIGKILL of the primary, the time to the first successful read: through the group
  (which retries on the next region in the same call), and through libpq's multi-host
  conninfo (host=a,b target_session_attrs=any), reconnecting as an application would.

    .venv/bin/python -m bench.regions --queries 5000
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg
from prometheus_client import CollectorRegistry

from bench.common import ROOT  # noqa: F401  (puts the repository on sys.path)
from takeover.regions import GroupConfig, MultiRegion, MultiRegionConfig, PolicyConfig, RegionConfig
from tests.pgcluster import PostgresCluster


def group(cluster: PostgresCluster) -> MultiRegion:
    regions = [
        RegionConfig(connection_id=m.name, region=m.name, priority=n, dsn=m.dsn, read_only=n > 1)
        for n, m in enumerate(cluster.members, start=1)
    ]
    config = MultiRegionConfig(
        groups=[GroupConfig(group_id="g", regions=regions, failover_policy=PolicyConfig(max_failures=1))]
    )
    return MultiRegion(config, registry=CollectorRegistry())


def per_query(queries: int, run: object) -> float:
    started = time.perf_counter()
    for _ in range(queries):
        run()  # type: ignore[operator]
    return (time.perf_counter() - started) / queries * 1e6


def overhead(cluster: PostgresCluster, queries: int, rounds: int) -> None:
    raw = psycopg.connect(cluster.primary.dsn, autocommit=True)
    regions = group(cluster)
    raw_us, group_us = [], []
    for _ in range(rounds):  # interleaved, so drift on this noisy machine hits both
        raw_us.append(per_query(queries, lambda: raw.execute("SELECT 1").fetchall()))
        group_us.append(per_query(queries, lambda: regions.query_with_failover("g", "SELECT 1")))
    raw.close()
    regions.close()
    r, g = statistics.median(raw_us), statistics.median(group_us)
    print(
        f"SELECT 1, {queries} queries x {rounds} rounds (medians): raw psycopg {r:.1f} us, "
        f"query_with_failover {g:.1f} us, overhead {100 * (g - r) / r:+.1f} %"
    )


def first_read_after_kill(through: str) -> float:
    cluster = PostgresCluster().start()
    try:
        if through == "group":
            regions = group(cluster)
            regions.query_with_failover("g", "SELECT 1")
            cluster.primary.kill()
            started = time.perf_counter()
            regions.query_with_failover("g", "SELECT 1")
            elapsed = time.perf_counter() - started
            regions.close()
            return elapsed
        members = cluster.members
        multi = (
            f"host={','.join('127.0.0.1' for _ in members)} port={','.join(str(m.port) for m in members)} "
            "user=postgres dbname=postgres target_session_attrs=any connect_timeout=2"
        )
        conn = psycopg.connect(multi, autocommit=True)
        conn.execute("SELECT 1")
        cluster.primary.kill()
        started = time.perf_counter()
        while True:
            try:
                conn.execute("SELECT 1")
                break
            except psycopg.OperationalError:
                conn = psycopg.connect(multi, autocommit=True)  # the application reconnects
        return time.perf_counter() - started
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kills", type=int, default=5)
    args = parser.parse_args()
    cluster = PostgresCluster().start()
    try:
        overhead(cluster, args.queries, args.rounds)
    finally:
        cluster.stop()
    for through in ("group", "libpq"):
        times = [first_read_after_kill(through) * 1000 for _ in range(args.kills)]
        print(
            f"primary SIGKILL -> first successful read via {through:5s}: median {statistics.median(times):6.1f} ms, "
            f"max {max(times):6.1f} ms ({args.kills} kills)"
        )


if __name__ == "__main__":
    main()
