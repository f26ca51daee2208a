"""Heartbeat batches of several replicas applied at once: one lock order, so no deadlock.

Three replicas behind HAProxy deadlocked on PostgreSQL when their batches named the same nodes
in different orders (each updated rows in batch order); the losing agents got a 503. Instance
rows are written by two parts of a batch (what runners report, what standbys synced): they
too are written in one order, or a report in one batch and a sync in another cross."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from takeover.control.values import hash_token
from takeover.domain.heartbeat import Heartbeat, InstanceReport
from takeover.domain.models import InstanceState
from takeover.localcluster import wait_until
from takeover.main import Runtime
from takeover.store import make_engine
from takeover.store.tables import instances, node_scores, nodes
from tests.api.pool import NodeHandle, Pool

Batch = list[tuple[str, Heartbeat]]
# Row locks are PostgreSQL's: SQLite has one lock for the whole database.
ROW_LOCKS = pytest.mark.parametrize(
    "store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def apply_at_once(runtime: Runtime, batches: list[Batch]) -> list[BaseException]:
    """Each batch in its own thread, started together, as replicas would; what failed."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(batches))

    def apply(batch: Batch) -> None:
        start.wait()
        try:
            results = runtime.store.nodes.apply_heartbeats(batch, runtime.services.clock.now())
            errors.extend(r for r in results if isinstance(r, Exception))
        except BaseException as error:  # noqa: BLE001 - raised again by the test's own thread
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


def _blocked_on_a_lock(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        waiting = conn.execute(
            sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        ).scalar_one()
    return bool(waiting)


@contextmanager
def batch_in_thread(runtime: Runtime, batch: Batch) -> Iterator[list[BaseException]]:
    """The batch runs in a thread while the block holds its locks; its errors, once it ended."""
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: errors.extend(apply_at_once(runtime, [batch])))
    thread.start()
    wait_until(lambda: _blocked_on_a_lock(runtime.store.engine), 10, "the batch to wait for a lock")
    try:
        yield errors
    finally:
        thread.join()


@ROW_LOCKS
def test_a_batch_waits_for_an_instance_without_holding_its_node(pool: Pool, runtime: Runtime) -> None:
    """Placements lock an instance, then nodes; a batch takes them in the same order."""
    n1, _, web = pool.two_nodes_running_web()
    report = InstanceReport(UUID(web["id"]), web["epoch"], InstanceState.RUNNING, last_snapshot="new")
    batch = [(hash_token(n1.token), Heartbeat(UUID(n1.id), 0.1, 0.1, 5.0, (report,)))]
    with runtime.store.engine.connect() as other:
        placing = other.begin()  # as FailoverRepository.place: the instance first, then a node
        other.execute(sa.select(instances.c.id).where(instances.c.id == UUID(web["id"])).with_for_update())
        with batch_in_thread(runtime, batch) as errors:
            # the batch waits for the instance holding nothing of ours: the node is free at once
            # (holding it, the batch would deadlock with us and PostgreSQL abort one of the two)
            other.execute(sa.text("SET LOCAL lock_timeout = '500ms'"))
            other.execute(nodes.update().where(nodes.c.id == UUID(n1.id)).values(current_instances=1))
            placing.commit()
    assert errors == []


@ROW_LOCKS
def test_a_batch_that_loses_a_deadlock_is_run_again(pool: Pool, runtime: Runtime) -> None:
    low, high = sorted((pool.node("n1"), pool.node("n2")), key=lambda n: UUID(n.id))
    batch = [(hash_token(n.token), Heartbeat(UUID(n.id), 0.1, 0.1, 5.0)) for n in (low, high)]
    with runtime.store.engine.connect() as other:
        crossing = other.begin()  # the high node, then the low one: against the batch's order
        other.execute(sa.select(nodes.c.id).where(nodes.c.id == UUID(high.id)).with_for_update())
        with batch_in_thread(runtime, batch) as errors:
            other.execute(nodes.update().where(nodes.c.id == UUID(low.id)).values(priority=1))
            crossing.commit()  # PostgreSQL broke the cycle by aborting the batch, which waited first
    assert errors == []


@ROW_LOCKS
def test_a_batch_does_not_wait_for_writes_that_only_name_its_node(pool: Pool, runtime: Runtime) -> None:
    """A score sample (every node, every minute) or an instance placed on a node holds a key-share
    lock on the node until it commits; a heartbeat changes no key, so it must not wait for them
    (it did, with FOR UPDATE: at 100,000 nodes the sample held every batch for its whole length)."""
    n1 = pool.node("n1")
    batch = [(hash_token(n1.token), Heartbeat(UUID(n1.id), 0.1, 0.1, 5.0))]
    errors: list[BaseException] = []
    # a session of its own, without the replica's stall limits: the sample is busy, not idle
    sampler = make_engine(runtime.store.engine.url.render_as_string(hide_password=False))
    with sampler.connect() as other:
        sampling = other.begin()
        other.execute(node_scores.insert().values(node_id=UUID(n1.id), at=pool.clock.now(), score=50.0))
        thread = threading.Thread(target=lambda: errors.extend(apply_at_once(runtime, [batch])))
        thread.start()
        thread.join(timeout=10)
        applied = not thread.is_alive()
        sampling.rollback()
        thread.join()
    sampler.dispose()
    assert applied, "the heartbeat waited for the score sample's transaction"
    assert errors == []


def test_the_gap_between_a_node_s_heartbeats_is_measured_for_choosing_timings(
    pool: Pool, runtime: Runtime
) -> None:
    node = pool.node("n1")
    pool.beat(node)  # its first: no gap yet
    pool.clock.advance(0.6)
    pool.beat(node)
    pool.clock.advance(2.5)
    pool.beat(node)
    registry = runtime.services.metrics.registry
    assert registry.get_sample_value("takeover_heartbeat_gap_seconds_count") == 2
    assert registry.get_sample_value("takeover_heartbeat_gap_seconds_sum") == pytest.approx(3.1)
    assert registry.get_sample_value("takeover_heartbeat_gap_seconds_bucket", {"le": "0.75"}) == 1
