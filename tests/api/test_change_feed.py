"""The store's change feed on both backends: a committed change of a node's instances names the
node, a committed change of a route says so; a rolled-back one names nobody and says nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from uuid import UUID

import pytest
import sqlalchemy as sa

from takeover.localcluster import wait_until
from takeover.store import make_engine
from takeover.store.changes import ChangeFeed, watch_sqlite
from takeover.store.tables import instances
from tests.api.pool import Pool


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    """An engine of its own on the runtime's store: on SQLite the feed covers its writes only."""
    engine = make_engine(store_url)
    yield engine
    engine.dispose()


ROUTE = UUID(int=0)  # among the collected ids: a route changed


@pytest.fixture
def changed(engine: sa.Engine) -> Iterator[list[UUID]]:
    seen: list[UUID] = []
    lock = threading.Lock()

    def collect(node_ids: object) -> None:
        with lock:
            seen.extend(node_ids)  # type: ignore[arg-type]

    def route() -> None:
        collect([ROUTE])

    feed = None
    if engine.dialect.name == "sqlite":
        watch_sqlite(engine, collect, route)
    else:
        feed = ChangeFeed(engine.url, collect, route)
        feed.start()
        assert feed.connected.wait(10)
    yield seen
    if feed is not None:
        feed.close()


def test_a_committed_move_names_both_nodes_and_a_rolled_back_one_nobody(
    pool: Pool, engine: sa.Engine, changed: list[UUID]
) -> None:
    n1, n2 = pool.node("n1"), pool.node("n2")
    pool.beat(n1, cpu=0.0)
    pool.beat(n2, cpu=0.5)
    web = pool.instance("web")  # on n1, through the runtime's engine: seen by PostgreSQL's feed
    if engine.dialect.name == "postgresql":
        wait_until(lambda: {UUID(n1.id), ROUTE} <= set(changed), 5, "the placement's notifications")
    changed.clear()
    move = instances.update().where(instances.c.id == UUID(web["id"])).values(node_id=UUID(n2.id), epoch=2)
    with engine.connect() as conn:
        conn.begin()
        conn.execute(move)
        conn.rollback()
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT 1"))
    heartbeat = instances.update().where(instances.c.id == UUID(web["id"])).values(state="running")
    with engine.begin() as conn:
        conn.execute(heartbeat)  # a reported state: its route changed, not what the node should run
    wait_until(lambda: changed == [ROUTE], 5, "the route's notification, and only that")
    changed.clear()
    with engine.begin() as conn:
        conn.execute(move)
    wait_until(lambda: {UUID(n1.id), UUID(n2.id), ROUTE} <= set(changed), 5, "the move's notifications")
