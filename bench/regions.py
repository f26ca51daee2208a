"""takeover.regions against raw psycopg and libpq's multi-host strings, on one real cluster.

A PostgreSQL primary and two streaming replicas on loopback (the tests' fixture). Measures:
- the per-query cost of query_with_failover over raw psycopg, SELECT 1 on a kept connection:
  wall time, and the client CPU each spends per query (the group's extra work is all client
  CPU, and CPU time is far less noisy on a shared 2-core machine than wall time);
- after SIGKILL of the primary, the time to the first successful read: through the group
  (which retries on the next region in the same call), and through libpq's multi-host
  conninfo (host=a,b target_session_attrs=any), reconnecting as an application would;
- after SIGSTOP of the primary and its backends (hung: the port accepts, nothing answers), the
  first successful read and the reads after it, through the group (connect_timeout 500 ms,
  stall_check_after 200 ms) and through libpq with connect_timeout=1 (psycopg and libpq make
  that 2 s), a new connection per read as an application would have to.

    .venv/bin/python -m bench.regions --queries 500 --rounds 100 [--instructions]

``--instructions`` also counts the client's instructions per query under valgrind (Debian's
valgrind package), which no other load on the machine changes.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry

from bench.common import ROOT  # puts the repository on sys.path
from takeover.regions import GroupConfig, MultiRegion, MultiRegionConfig, PolicyConfig, RegionConfig
from tests.pgcluster import PostgresCluster

HANG_POLICY = {"connect_timeout": 500, "stall_check_after": 200}


def group(cluster: PostgresCluster, **policy: Any) -> MultiRegion:
    regions = [
        RegionConfig(connection_id=m.name, region=m.name, priority=n, dsn=m.dsn, read_only=n > 1)
        for n, m in enumerate(cluster.members, start=1)
    ]
    config = MultiRegionConfig(
        groups=[
            GroupConfig(
                group_id="g", regions=regions, failover_policy=PolicyConfig(**{"max_failures": 1, **policy})
            )
        ]
    )
    return MultiRegion(config, registry=CollectorRegistry())


def per_query(queries: int, run: Callable[[], object]) -> tuple[float, float]:
    """Wall and client CPU microseconds per query."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(queries):
        run()
    return (time.perf_counter() - wall) / queries * 1e6, (time.process_time() - cpu) / queries * 1e6


def overhead(cluster: PostgresCluster, queries: int, rounds: int) -> None:
    """Rounds of the three, in rotating order; each round yields the group's difference to
    each baseline, and the median difference cancels the drift of a shared machine far better
    than two medians. The baselines run on the very connection the group uses: which core a
    server backend lands on (beside the client or not) moves a loopback round trip by more than
    the group's whole cost, and stays so for the run."""
    regions = group(cluster)
    with regions.connection("g", write=False) as raw:  # given back: the group's only connection
        kept = raw.cursor()
    runs: dict[str, Callable[[], object]] = {
        "conn.execute": lambda: raw.execute("SELECT 1").fetchall(),  # what psycopg's docs show
        "kept cursor": lambda: kept.execute("SELECT 1").fetchall(),  # what the group does inside
        "group": lambda: regions.query_with_failover("g", "SELECT 1"),
    }
    for run in runs.values():
        per_query(500, run)  # warm: prepared statements, caches
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for n in range(rounds):
        for name in names[n % 3 :] + names[: n % 3]:
            w, c = per_query(queries, runs[name])
            wall[name].append(w)
            cpu[name].append(c)
    regions.close()
    print(f"SELECT 1, {rounds} rounds of {queries} queries each, query_with_failover against raw psycopg:")
    for baseline in ("conn.execute", "kept cursor"):
        base = statistics.median(wall[baseline])
        extra = [g - r for g, r in zip(wall["group"], wall[baseline], strict=True)]
        extra_cpu = statistics.median(g - r for g, r in zip(cpu["group"], cpu[baseline], strict=True))
        q1, median, q3 = statistics.quantiles(extra, n=4)
        print(
            f"  vs {baseline:12s} {base:6.1f} us: {median:+5.1f} us per query ({100 * median / base:+.1f} %; "
            f"quartiles {q1:+.1f} / {q3:+.1f} us), client CPU {extra_cpu:+.1f} us"
        )


def _loop(mode: str, dsn: str, queries: int) -> None:
    """The child run under callgrind: ``queries`` SELECT 1, raw or through a one-region group."""
    if mode in ("conn.execute", "kept cursor"):
        raw = psycopg.connect(dsn, autocommit=True)
        kept = raw.cursor()
        for _ in range(queries):
            (raw if mode == "conn.execute" else kept).execute("SELECT 1").fetchall()
        return
    region = RegionConfig(connection_id="p", region="p", priority=1, dsn=dsn)
    with MultiRegion(
        MultiRegionConfig(groups=[GroupConfig(group_id="g", regions=[region])]), registry=CollectorRegistry()
    ) as regions:
        for _ in range(queries):
            regions.query_with_failover("g", "SELECT 1")


def instructions(cluster: PostgresCluster) -> None:
    """Client instructions per query under valgrind's callgrind: the same count on every run,
    whatever else the machine does. Two lengths per mode, so start-up cancels out."""
    counted: dict[tuple[str, int], int] = {}
    modes = ("conn.execute", "kept cursor", "group")
    for mode in modes:
        for queries in (1000, 3000):
            done = subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    "--callgrind-out-file=/dev/null",
                    sys.executable,
                    "-m",
                    "bench.regions",
                    "--child",
                    mode,
                    cluster.primary.dsn,
                    str(queries),
                ],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            found = re.search(r"Collected : (\d+)", done.stderr)
            assert found is not None, done.stderr[-2000:]
            counted[(mode, queries)] = int(found.group(1))
    per = {m: (counted[(m, 3000)] - counted[(m, 1000)]) / 2000 for m in modes}
    print("client instructions per query (callgrind), query_with_failover", f"{per['group']:,.0f}:")
    for baseline in modes[:2]:
        extra = per["group"] - per[baseline]
        print(
            f"  vs {baseline:12s} {per[baseline]:,.0f}: {extra:+,.0f} ({100 * extra / per[baseline]:+.1f} %)"
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


def first_reads_after_hang(cluster: PostgresCluster, through: str) -> tuple[float, float]:
    """Milliseconds to the first successful read after SIGSTOP, and the median of the next 20."""
    members = cluster.members
    multi = (
        f"host={','.join('127.0.0.1' for _ in members)} port={','.join(str(m.port) for m in members)} "
        "user=postgres dbname=postgres target_session_attrs=any connect_timeout=1"
    )
    regions = group(cluster, **HANG_POLICY) if through == "group" else None

    def read() -> None:
        if regions is not None:
            regions.query_with_failover("g", "SELECT 1")
        else:  # a kept connection would wait forever: the application must reconnect
            with psycopg.connect(multi, autocommit=True) as conn:
                conn.execute("SELECT 1")

    read()  # a kept connection to the primary for the group
    cluster.primary.pause()
    try:
        first = per_query(1, read)[0] / 1000
        after = statistics.median(per_query(1, read)[0] / 1000 for _ in range(20 if regions else 3))
    finally:
        cluster.primary.resume()
        if regions is not None:
            regions.close()
    return first, after


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--hangs", type=int, default=5)
    parser.add_argument("--instructions", action="store_true", help="also count them under callgrind")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "DSN", "QUERIES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _loop(args.child[0], args.child[1], int(args.child[2]))
        return
    cluster = PostgresCluster().start()
    try:
        overhead(cluster, args.queries, args.rounds)
        if args.instructions:
            instructions(cluster)
        for through in ("group", "libpq"):
            runs = [first_reads_after_hang(cluster, through) for _ in range(args.hangs)]
            firsts, afters = [r[0] for r in runs], [r[1] for r in runs]
            print(
                f"primary SIGSTOP -> first successful read via {through:5s}: median {statistics.median(firsts):6.1f} ms, "
                f"max {max(firsts):6.1f} ms; reads after it: median {statistics.median(afters):6.1f} ms "
                f"({args.hangs} hangs)"
            )
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
