"""The store checker (`takeover check`): quiet on a pool that went through a failover, and
naming each row when an invariant is broken."""

from __future__ import annotations

import sqlalchemy as sa

from takeover.main import Runtime
from takeover.store.invariants import violations
from tests.api.pool import Pool


def test_a_pool_after_a_failover_holds_every_invariant(pool: Pool, runtime: Runtime) -> None:
    _, n2, web = pool.two_nodes_running_web()
    pool.elapse(6)  # n1 silent past offline_after
    pool.beat(n2)
    pool.cycle()
    assert violations(runtime.store.engine) == []
    assert violations(runtime.store.engine, settled=True) == [
        f"instance {web['id']}: a failover is still open"
    ]
    pool.beat_twice(n2)
    pool.cycle()
    assert violations(runtime.store.engine, settled=True) == []


def test_each_broken_invariant_is_named(pool: Pool, runtime: Runtime) -> None:
    pool.two_nodes_running_web()
    pool.cycle()  # the controllers take the lease
    engine = runtime.store.engine
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE nodes SET current_instances = 3 WHERE name = 'n1'"))
        conn.execute(sa.text("UPDATE instances SET epoch = 0"))
        conn.execute(sa.text("UPDATE leases SET holder = ''"))
    assert violations(engine) == [
        "node n1: 3 slots taken, 1 instances on it",
        "instance web: epoch 0 after 0 completed failovers",
        "lease controllers: epoch 1, holder ''",
    ]
