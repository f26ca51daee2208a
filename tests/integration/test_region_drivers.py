"""The same groups through asyncio (psycopg's AsyncConnection) and through SQLAlchemy engines."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
import sqlalchemy

from takeover.regions import MultiRegion, ReadOnlyRegion, RegionEvent
from tests.integration.conftest import READ, regions
from tests.pgcluster import PostgresCluster

pytestmark = pytest.mark.postgres


def test_asyncio_connections_and_transactions_fail_over_without_threads(cluster: PostgresCluster) -> None:
    async def main(r: MultiRegion) -> None:
        async with r.atransaction("emp", write=True) as conn:
            assert isinstance(conn, psycopg.AsyncConnection)
            await conn.execute("INSERT INTO item VALUES ('a', 1)")
            await conn.execute("INSERT INTO item VALUES ('b', 2)")
        await asyncio.to_thread(cluster.wait_replicated)
        cluster.primary.kill()
        rows = await asyncio.gather(
            *(r.aquery_with_failover("emp", "SELECT count(*) FROM item") for _ in range(5))
        )
        assert rows == [[(3,)]] * 5
        async with r.aconnection("emp", write=False) as conn:
            assert await (await conn.execute("SELECT pg_is_in_recovery()")).fetchone() == (True,)
        with pytest.raises(ReadOnlyRegion):
            await r.aquery_with_failover("emp", "DELETE FROM item")

    with regions(cluster) as r:
        asyncio.run(main(r))
        assert r.group("emp").book.current == "replica1"


def test_sqlalchemy_engines_get_the_same_failover_and_guards(cluster: PostgresCluster) -> None:
    with regions(cluster, sqlalchemy=True) as r:
        with r.transaction("emp", write=True) as conn:
            assert isinstance(conn, sqlalchemy.Connection)
            conn.exec_driver_sql("INSERT INTO item VALUES ('a', 1)")
            conn.exec_driver_sql("INSERT INTO item VALUES ('b', 2)")
        r.query_with_failover("emp", "UPDATE item SET qty = 4 WHERE code = %s", ("7530110",))
        cluster.wait_replicated()
        cluster.primary.kill()
        assert r.query_with_failover("emp", READ, ("7530110",)) == [(4,)]
        assert r.group("emp").book.current == "replica1"
        with pytest.raises(ReadOnlyRegion):
            r.query_with_failover("emp", "UPDATE item SET qty = 5 WHERE code = %s", ("7530110",))
        with pytest.raises(sqlalchemy.exc.InternalError) as refused:  # the session guard on the server
            r.query_with_failover("emp", "SELECT nextval('s')", write=False)
        assert isinstance(refused.value.orig, psycopg.errors.ReadOnlySqlTransaction)
        assert r.query_with_failover("emp", "SELECT count(*) FROM item") == [(3,)]  # the connection lives on
        assert r.check(everything=True) == {
            ("emp", "primary"): r.group("emp").book.regions["primary"].last_error,
            ("emp", "replica1"): None,
            ("emp", "replica2"): None,
        }
        with pytest.raises(TypeError, match="use the sync API"):
            asyncio.run(r.group("emp").aquery("SELECT 1"))
        assert asyncio.run(r.aquery_with_failover("emp", "SELECT 1")) == [(1,)]  # on a thread


def test_a_hung_server_behind_sqlalchemy_is_cut_too(cluster: PostgresCluster) -> None:
    events: list[RegionEvent] = []
    with regions(cluster, sqlalchemy=True, max_failures=5, connect_timeout=400, stall_check_after=150) as r:
        r.on_failover(events.append)
        assert r.query_with_failover("emp", READ, ("7530110",)) == [(3,)]
        cluster.primary.pause()
        try:
            assert r.query_with_failover("emp", READ, ("7530110",)) == [(3,)]
            assert [e.reason for e in events] == ["not answering: no answer within 400 ms"]
        finally:
            cluster.primary.resume()
