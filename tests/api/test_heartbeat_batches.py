"""Heartbeat batches of several replicas applied at once: one lock order, so no deadlock.

Three replicas behind HAProxy deadlocked on PostgreSQL when their batches named the same nodes
in different orders (each updated rows in batch order); the losing agents got a 503."""

from __future__ import annotations

import threading
from uuid import UUID

from takeover.control.services import hash_token
from takeover.domain.heartbeat import Heartbeat
from takeover.main import Runtime
from tests.api.pool import Pool


def test_batches_naming_the_same_nodes_in_opposite_orders_both_apply(pool: Pool, runtime: Runtime) -> None:
    handles = [pool.node(f"n{i}") for i in range(30)]
    batch = [(hash_token(h.token), Heartbeat(UUID(h.id), 0.1, 0.1, 5.0)) for h in handles]
    errors: list[BaseException] = []
    for _ in range(10):
        start = threading.Barrier(2)

        def apply(order: list[tuple[str, Heartbeat]], start: threading.Barrier) -> None:
            start.wait()
            try:
                results = runtime.store.nodes.apply_heartbeats(order, runtime.services.clock.now())
                errors.extend(r for r in results if isinstance(r, Exception))
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=apply, args=(o, start)) for o in (batch, batch[::-1])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
