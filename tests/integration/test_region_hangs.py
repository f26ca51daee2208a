"""A region whose server stops answering (SIGSTOP: the port accepts, nothing replies).

libpq waits on a kept connection forever and psycopg's connect at least 2 s; the group cuts a
stalled query once a fresh connection under the deadline also gets no answer, takes the region
down at once, and sends nothing more there until a probe sees it answer again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest

from takeover.localcluster import wait_until
from takeover.regions import MultiRegion, ReadOnlyRegion, RegionEvent
from tests.integration.conftest import READ, regions, sample
from tests.pgcluster import PostgresCluster

pytestmark = pytest.mark.postgres
HANG: dict[str, Any] = {"max_failures": 5, "connect_timeout": 400, "stall_check_after": 150}


def test_a_query_stuck_on_a_hung_primary_is_cut_and_later_ones_never_wait(cluster: PostgresCluster) -> None:
    events: list[RegionEvent] = []
    with regions(cluster, **HANG) as r:
        r.on_failover(events.append)
        assert r.query_with_failover("emp", READ, ["7530110"]) == [(3,)]  # a kept connection to it
        cluster.primary.pause()
        try:
            started = time.monotonic()
            assert r.query_with_failover("emp", READ, ["7530110"]) == [(3,)]
            assert time.monotonic() - started < 10  # generous; bench/regions.py measures it
            [event] = events  # one hang took it down: not max_failures of them
            assert (event.from_region, event.to_region) == ("primary", "replica1")
            assert event.reason == "not answering: no answer within 400 ms"
            before = sample(r, "queries_total", region="primary")
            for _ in range(20):
                assert r.query_with_failover("emp", READ, ["7530110"]) == [(3,)]
            assert (
                sample(r, "queries_total", region="primary") == before
            )  # nothing more went to the hung server
            with pytest.raises(ReadOnlyRegion):
                r.query_with_failover("emp", "UPDATE item SET qty = 1 WHERE code = %s", ["7530110"])
        finally:
            cluster.primary.resume()
        r.start()
        wait_until(lambda: r.group("emp").book.current == "primary", 20, "the failback once it answers")
        r.query_with_failover("emp", "UPDATE item SET qty = 1 WHERE code = %s", ["7530110"])


def test_a_new_process_does_not_wait_two_seconds_per_connection(cluster: PostgresCluster) -> None:
    cluster.primary.pause()
    try:
        with regions(cluster, **HANG) as r:
            assert r.query_with_failover("emp", READ, ["7530110"]) == [(3,)]
            state = r.group("emp").book.regions["primary"]
            assert not state.up
            assert state.last_error == "no answer within 400 ms"
    finally:
        cluster.primary.resume()


def test_a_slow_query_on_a_live_server_is_left_alone(cluster: PostgresCluster) -> None:
    events: list[RegionEvent] = []
    with regions(cluster, **HANG) as r:
        r.on_failover(events.append)
        assert r.query_with_failover("emp", "SELECT pg_sleep(0.8), 1") == [("", 1)]
        assert events == []
        assert r.group("emp").book.regions["primary"].up


def test_a_write_stuck_on_a_hung_primary_fails_and_is_not_sent_elsewhere(cluster: PostgresCluster) -> None:
    with regions(cluster, follow_writable=True, **HANG) as r:
        r.query_with_failover("emp", "SELECT 1")
        cluster.replicas[1].promote()  # a second writable region exists
        r.check(everything=True)
        cluster.primary.pause()
        try:
            with pytest.raises(psycopg.OperationalError):
                r.query_with_failover("emp", "UPDATE item SET qty = 6 WHERE code = %s", ["7530110"])
            with psycopg.connect(cluster.replicas[1].dsn) as conn:
                assert conn.execute(READ, ["7530110"]).fetchone() == (3,)  # its outcome is unknown
            r.query_with_failover("emp", "UPDATE item SET qty = 6 WHERE code = %s", ["7530110"])  # a new call
            with psycopg.connect(cluster.replicas[1].dsn) as conn:
                assert conn.execute(READ, ["7530110"]).fetchone() == (6,)
        finally:
            cluster.primary.resume()


def test_asyncio_queries_are_cut_the_same_way(cluster: PostgresCluster) -> None:
    async def main(r: MultiRegion) -> None:
        assert await r.aquery_with_failover("emp", READ, ["7530110"]) == [(3,)]
        cluster.primary.pause()
        assert await r.aquery_with_failover("emp", READ, ["7530110"]) == [(3,)]

    with regions(cluster, **HANG) as r:
        try:
            asyncio.run(main(r))
            assert r.group("emp").book.current == "replica1"
        finally:
            cluster.primary.resume()
