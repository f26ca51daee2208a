"""The control plane's store fails over under Patroni while agents, workloads and API writes run.

A `takeover serve` on a Patroni-managed PostgreSQL pair (synchronous mode, etcd v3 as the DCS,
ttl 10 s, loop_wait 1 s), reached by the multi-host URL; four agents and two counters through
it, a client asking each counter every 50 ms, a writer creating API tokens all along. The
primary's machine (Patroni and PostgreSQL) is SIGKILLed; per run it prints how long no write
was acknowledged, the writes acknowledged and lost, and the counters' unanswered requests.

    .venv/bin/python -m bench.store_failover --runs 3
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import psycopg

import bench.common  # noqa: F401  (puts the repository on sys.path for tests.*)
from takeover.localcluster import FAST_TIMINGS, LocalCluster, wait_until
from tests.e2e.serving import Askers, fleet
from tests.e2e.test_replicas import acknowledged_writes, lost_writes
from tests.patroni import PatroniCluster


def run(root: Path) -> str:
    store = PatroniCluster().start()
    try:
        with psycopg.connect(store.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE takeover")
        with LocalCluster(root) as cluster:
            cluster.start_control_plane(env={"TAKEOVER_DATABASE_URL": store.url("takeover")})
            serving = fleet(cluster)
            cluster.witnessed()
            askers = Askers({name: str(s["endpoint"]) for name, s in serving.items()})
            with askers.asking(), acknowledged_writes(cluster.url) as acked:
                wait_until(lambda: len(acked) >= 5, 20, "writes")
                primary = store.primary()
                assert primary is not None
                primary.kill()
                killed = time.monotonic()
                wait_until(lambda: acked[-1][0] > killed, 60, "a write on the new primary")
                time.sleep(3 * float(FAST_TIMINGS["TAKEOVER_OFFLINE_AFTER"]))
            lost = len(lost_writes(cluster, acked))
            gap = max(b[0] - a[0] for a, b in itertools.pairwise(acked))
            missed = sum(len(askers.missed.get(name, [])) for name in serving)
            failovers = sum(len(cluster.failovers(str(s["id"]))) for s in serving.values())
            return (
                f"no write acknowledged for {gap:.2f} s; {len(acked)} acknowledged, {lost} lost; "
                f"counters unanswered {missed} times; failovers {failovers}"
            )
    finally:
        store.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for n in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="takeover-bench-") as root:
            print(f"run {n}: {run(Path(root))}", flush=True)


if __name__ == "__main__":
    main()
