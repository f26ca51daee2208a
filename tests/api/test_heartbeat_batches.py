"""Heartbeat batches of several replicas applied at once: one lock order, so no deadlock.

Three replicas behind HAProxy deadlocked on PostgreSQL when their batches named the same nodes
in different orders (each updated rows in batch order); the losing agents got a 503. Instance
rows are written by two parts of a batch (what runners report, what standbys synced): they
too are written in one order, or a report in one batch and a sync in another cross."""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

from takeover.control.services import hash_token
from takeover.domain.heartbeat import Heartbeat, InstanceReport
from takeover.domain.models import InstanceState
from takeover.main import Runtime
from takeover.store.tables import instances
from tests.api.pool import NodeHandle, Pool

Batch = list[tuple[str, Heartbeat]]


def apply_at_once(runtime: Runtime, batches: list[Batch]) -> list[BaseException]:
    """Each batch in its own thread, started together, as replicas would; what failed."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(batches))

    def apply(batch: Batch) -> None:
        start.wait()
        try:
            results = runtime.store.nodes.apply_heartbeats(batch, runtime.services.clock.now())
            errors.extend(r for r in results if isinstance(r, Exception))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=apply, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_batches_naming_the_same_nodes_in_opposite_orders_both_apply(pool: Pool, runtime: Runtime) -> None:
    handles = [pool.node(f"n{i}") for i in range(30)]
    batch = [(hash_token(h.token), Heartbeat(UUID(h.id), 0.1, 0.1, 5.0)) for h in handles]
    for _ in range(10):
        assert apply_at_once(runtime, [batch, batch[::-1]]) == []


def test_a_report_in_one_batch_and_a_standby_sync_in_another_both_apply(pool: Pool, runtime: Runtime) -> None:
    a, b, c, d = (pool.node(name) for name in "abcd")
    x, y = (pool.instance(name) for name in ("x", "y"))
    with runtime.store.engine.begin() as conn:  # x runs on a with its standby on b; y on c, standby d
        for instance, node, standby in ((x, a, b), (y, c, d)):
            conn.execute(
                instances.update()
                .where(instances.c.id == UUID(instance["id"]))
                .values(node_id=UUID(node.id), standby_node_id=UUID(standby.id), state="running")
            )

    def beat(
        node: NodeHandle, runs: dict[str, Any] | None = None, syncs: dict[str, Any] | None = None, n: int = 0
    ) -> tuple[str, Heartbeat]:
        reports = (
            (InstanceReport(UUID(runs["id"]), runs["epoch"], InstanceState.RUNNING, last_snapshot=f"s{n}"),)
            if runs
            else ()
        )
        standbys = ((UUID(syncs["id"]), f"s{n}"),) if syncs else ()
        return hash_token(node.token), Heartbeat(UUID(node.id), 0.1, 0.1, 5.0, reports, standbys)

    for n in range(20):  # each batch writes one instance as reported, then the other as synced
        first = [beat(a, runs=x, n=n), beat(d, syncs=y, n=n)]
        second = [beat(c, runs=y, n=n), beat(b, syncs=x, n=n)]
        assert apply_at_once(runtime, [first, second]) == []
