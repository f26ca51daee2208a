"""Best-node selection among 10,000 and 100,000 nodes: the store's query (what the API and
the failover executor use) on SQLite and PostgreSQL, and the pure rule's linear scan.

    .venv/bin/python bench/placement.py
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from uuid import uuid4

from bench.common import database
from takeover.domain.models import Node, NodeStatus
from takeover.domain.placement import Ineligible, PlacementRequest, select_best_node
from takeover.store import Store, make_engine, migrate
from takeover.store.nodes import _node_values
from takeover.store.tables import nodes as nodes_table

REGIONS = [f"region-{i}" for i in range(10)]
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def make_nodes(count: int, rng: random.Random) -> list[Node]:
    statuses = [NodeStatus.ONLINE] * 8 + [NodeStatus.OFFLINE, NodeStatus.DRAINING]
    pool = []
    for i in range(count):
        cap = rng.choice([8, 16, 50])
        pool.append(
            Node(
                id=uuid4(),
                name=f"node-{i:06d}",
                region=rng.choice(REGIONS),
                base_url=f"http://10.0.{i // 250}.{i % 250}:7000",
                max_instances=cap,
                current_instances=rng.randint(0, cap),
                status=rng.choice(statuses),
                health_score=round(rng.uniform(0, 100), 2),
                priority=rng.randint(0, 3),
                created_at=NOW,
                last_heartbeat_at=NOW,
            )
        )
    return pool


def requests(pool: list[Node], rng: random.Random, count: int) -> list[PlacementRequest]:
    return [
        PlacementRequest(
            preferred_region=rng.choice([None, *REGIONS]),
            exclude=frozenset(n.id for n in rng.sample(pool, 3)),
            degraded_streak=5,
        )
        for _ in range(count)
    ]


def timed(
    select: Callable[[PlacementRequest], Node | Ineligible], reqs: list[PlacementRequest]
) -> tuple[float, float]:
    samples = []
    for request in reqs:
        started = time.perf_counter()
        select(request)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def select_via_store(store: Store, request: PlacementRequest) -> Node | Ineligible:
    return store.nodes.select(request.preferred_region, request.exclude)  # the store's own streak


def load(store: Store, pool: list[Node]) -> None:
    rows = [{**_node_values(n), "api_token_hash": f"{i:064d}"} for i, n in enumerate(pool)]
    with store.engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(nodes_table.insert(), rows[start : start + 5000])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    rng = random.Random(7)
    print(f"{'nodes':>8} {'where':<22} {'p50 ms':>8} {'p99 ms':>8}")
    for size in args.sizes:
        pool = make_nodes(size, rng)
        reqs = requests(pool, rng, args.queries)
        p50, p99 = timed(partial(select_best_node, pool), reqs[: max(50, args.queries // 10)])
        print(f"{size:>8} {'pure rule (scan)':<22} {p50:>8.3f} {p99:>8.3f}", flush=True)
        for backend in ("sqlite", "postgres"):
            with tempfile.TemporaryDirectory() as tmp, database(backend, Path(tmp)) as url:
                engine = make_engine(url)
                migrate(engine)
                store = Store(engine, low_score_threshold=30, degraded_streak=5)
                load(store, pool)
                if backend == "postgres":
                    with engine.begin() as conn:
                        conn.exec_driver_sql("ANALYZE nodes")
                timed(partial(select_via_store, store), reqs[:50])  # warm caches
                p50, p99 = timed(partial(select_via_store, store), reqs)
                print(f"{size:>8} {'store: ' + backend:<22} {p50:>8.3f} {p99:>8.3f}", flush=True)
                engine.dispose()


if __name__ == "__main__":
    main()
