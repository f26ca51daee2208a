"""takeover.regions against a real PostgreSQL primary and two streaming replicas."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from takeover.localcluster import ADMIN_TOKEN, TAKEOVER, LocalCluster, wait_until
from takeover.regions import (
    AllRegionsFailed,
    MultiRegion,
    ReadOnlyRegion,
    RegionEvent,
    load_config,
)
from takeover.testing import FakeClock
from tests.conftest import make_runtime
from tests.integration.conftest import READ, regions, sample
from tests.pgcluster import PostgresCluster

pytestmark = pytest.mark.postgres


def test_reads_continue_on_a_replica_and_writes_are_refused_there(cluster: PostgresCluster) -> None:
    events: list[RegionEvent] = []
    with regions(cluster) as r:
        r.on_failover(events.append)
        assert r.query_with_failover("emp", READ, ["7530110"]) == [(3,)]
        r.query_with_failover("emp", "UPDATE item SET qty = 4 WHERE code = %s", ["7530110"])
        cluster.wait_replicated()

        cluster.primary.kill()
        started = time.monotonic()
        assert r.query_with_failover("emp", READ, ["7530110"]) == [(4,)]  # the first read after the kill
        elapsed = time.monotonic() - started
        assert r.group("emp").book.current == "replica1"
        [event] = events
        assert (event.from_region, event.to_region) == ("primary", "replica1")
        assert "1 failures within 60s" in event.reason
        assert elapsed < 2

        with pytest.raises(ReadOnlyRegion, match="a write needs a writable region"):
            r.query_with_failover("emp", "UPDATE item SET qty = 5 WHERE code = %s", ["7530110"])
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):  # the server's own guard
            r.query_with_failover("emp", "SELECT nextval('s')", write=False)
        assert r.query_with_failover("emp", READ, ["7530110"]) == [(4,)]

        assert sample(r, "queries_success_total", region="primary") == 2
        assert sample(r, "queries_failed_total", region="primary") == 1
        assert sample(r, "queries_total", region="primary") == 3
        assert sample(r, "queries_success_total", region="replica1") == 2
        assert sample(r, "queries_total", region="replica1") == 3  # and the nextval its server refused
        assert sample(r, "queries_failed_total", region="replica1") == 0
        assert sample(r, "failovers_total", **{"from": "primary", "to": "replica1"}) == 1
        assert sample(r, "region_health", region="primary") == 0
        assert sample(r, "current_region", region="replica1") == 2


def test_the_primary_comes_back_and_takes_the_group_after_the_delay(cluster: PostgresCluster) -> None:
    failbacks: list[RegionEvent] = []
    with regions(cluster) as r:
        r.on_failback(failbacks.append)
        r.start()
        cluster.primary.kill()
        r.query_with_failover("emp", READ, ["7530110"])
        assert r.group("emp").book.current == "replica1"
        cluster.primary.start_existing()
        back_at = time.monotonic()
        wait_until(lambda: failbacks, 20, "the failback")
        assert time.monotonic() - back_at >= 0.5  # failback_delay of continuous health
        assert (failbacks[0].from_region, failbacks[0].to_region) == ("replica1", "primary")
        r.query_with_failover("emp", "UPDATE item SET qty = 9 WHERE code = %s", ["7530110"])
        assert r.query_with_failover("emp", READ, ["7530110"]) == [(9,)]


def test_without_auto_failback_the_operator_fails_back(cluster: PostgresCluster) -> None:
    with regions(cluster, auto_failback=False) as r:
        r.start()
        cluster.primary.kill()
        r.query_with_failover("emp", READ, ["7530110"])
        cluster.primary.start_existing()
        wait_until(lambda: r.group("emp").book.regions["primary"].up, 20, "the primary to be seen up")
        time.sleep(0.8)
        assert r.group("emp").book.current == "replica1"
        event = r.failback("emp")
        assert event is not None
        assert r.group("emp").book.current == "primary"


def test_the_chain_reaches_the_tertiary_and_then_names_every_failed_region(cluster: PostgresCluster) -> None:
    all_failed: list[RegionEvent] = []
    with regions(cluster) as r:
        r.on_all_regions_failed(all_failed.append)
        cluster.primary.kill()
        cluster.replicas[0].kill()
        assert r.query_with_failover("emp", READ, ["7530110"]) == [(3,)]
        assert r.group("emp").book.current == "replica2"
        cluster.replicas[1].kill()
        with pytest.raises(AllRegionsFailed) as error:
            r.query_with_failover("emp", READ, ["7530110"])
        message = str(error.value)
        for name, site in (("primary", "site-1"), ("replica1", "site-2"), ("replica2", "site-3")):
            assert f"{name} ({site}):" in message
        assert "Connection refused" in message or "connection" in message.lower()
        assert len(all_failed) == 1


def test_writes_follow_a_promoted_replica(cluster: PostgresCluster) -> None:
    with regions(cluster, follow_writable=True) as r:
        cluster.primary.kill()
        r.query_with_failover("emp", READ, ["7530110"])
        with pytest.raises(ReadOnlyRegion):
            r.query_with_failover("emp", "UPDATE item SET qty = 7 WHERE code = %s", ["7530110"])
        cluster.replicas[0].promote()
        r.check(everything=True)
        r.query_with_failover("emp", "UPDATE item SET qty = 7 WHERE code = %s", ["7530110"])
        with psycopg.connect(cluster.replicas[0].dsn) as conn:
            assert conn.execute(READ, ["7530110"]).fetchone() == (7,)


def test_several_statements_on_one_connection_say_whether_they_write(cluster: PostgresCluster) -> None:
    with regions(cluster) as r:
        with r.transaction("emp", write=True) as conn:
            conn.execute("INSERT INTO item VALUES ('a', 1)")
            conn.execute("INSERT INTO item VALUES ('b', 2)")
        with r.connection("emp", write=False) as conn:
            assert conn.execute("SELECT count(*) FROM item").fetchone() == (3,)
        status = r.status()[0]
        assert status["current_region"] == "primary"
        assert [x["healthy"] for x in status["regions"]] == [True, True, True]


def test_takeover_serve_reports_the_connections_health(cluster: PostgresCluster, tmp_path: Path) -> None:
    path = tmp_path / "regions.yaml"
    regions_yaml = {
        "groups": [
            {
                "group_id": "emp",
                "failover_policy": {"health_check_interval": 100, "max_failures": 1},
                "regions": [
                    {
                        "connection_id": m.name,
                        "region": f"site-{n}",
                        "priority": n,
                        "dsn": m.dsn,
                        "read_only": n > 1,
                    }
                    for n, m in enumerate(cluster.members, start=1)
                ],
            }
        ]
    }
    path.write_text(yaml.safe_dump(regions_yaml))
    runtime = make_runtime(f"sqlite:///{tmp_path / 't.db'}", FakeClock(), tmp_path, regions_config=str(path))
    with TestClient(runtime.app) as client:
        everything = client.get("/health/connections")
        assert everything.status_code == 200
        assert [c["connection_id"] for c in everything.json()["connections"]] == [
            "primary",
            "replica1",
            "replica2",
        ]
        assert client.get("/health/connections/nope").status_code == 404
        cluster.primary.kill()
        wait_until(
            lambda: client.get("/health/connections/primary").status_code == 503, 10, "the primary seen down"
        )
        assert client.get("/health/connections/replica1").json()["connections"][0]["current"] is True
        assert client.get("/health/connections").status_code == 503
    runtime.store.engine.dispose()


def test_processes_follow_one_shared_decision_set_from_the_cli(
    cluster: PostgresCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LocalCluster(tmp_path / "cp") as control:
        url = control.start_control_plane()
        monkeypatch.setenv("TAKEOVER_TOKEN", ADMIN_TOKEN)
        config = tmp_path / "regions.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "shared": {"url": url},
                    "groups": [
                        {
                            "group_id": "emp",
                            "failover_policy": {"health_check_interval": 100},
                            "regions": [
                                {"connection_id": m.name, "region": f"site-{n}", "priority": n, "dsn": m.dsn}
                                for n, m in enumerate(cluster.members, start=1)
                            ],
                        }
                    ],
                }
            )
        )
        env = {**os.environ, "TAKEOVER_URL": url, "COLUMNS": "250", "TAKEOVER_REGIONS_CONFIG": str(config)}

        def db(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*TAKEOVER, "db", *args], env=env, capture_output=True, text=True, timeout=60, check=False
            )

        first = MultiRegion(load_config(config), registry=CollectorRegistry())
        second = MultiRegion(load_config(config), registry=CollectorRegistry())
        try:

            def both_on(region: str) -> bool:
                for process in (first, second):
                    process.check()
                return all(p.group("emp").book.current == region for p in (first, second))

            status = db("status")
            assert status.returncode == 0, status.stderr
            assert "replica2" in status.stdout
            moved = db("failover", "emp", "replica2")
            assert moved.returncode == 0, moved.stderr
            assert "emp -> replica2 (epoch 1)" in moved.stdout
            wait_until(lambda: both_on("replica2"), 10, "both processes on replica2")
            assert first.query_with_failover("emp", "SELECT 1") == [(1,)]

            first.failover("emp", "replica1")  # one process decides: the other follows
            wait_until(lambda: both_on("replica1"), 10, "both processes on replica1")

            back = db("failback", "emp")
            assert back.returncode == 0, back.stderr
            assert "emp -> primary" in back.stdout
            wait_until(lambda: both_on("primary"), 10, "both processes back on the primary")

            cluster.replicas[0].kill()
            checked = db("check")
            assert checked.returncode == 1
            assert "down emp/replica1" in checked.stdout
        finally:
            first.close()
            second.close()


def test_asyncio_code_gets_the_same_failover(cluster: PostgresCluster) -> None:
    async def main(r: MultiRegion) -> list[tuple[Any, ...]]:
        cluster.primary.kill()
        return await r.aquery_with_failover("emp", READ, ["7530110"])

    with regions(cluster) as r:
        assert asyncio.run(main(r)) == [(3,)]
        assert r.group("emp").book.current == "replica1"


def test_a_lagging_replica_gets_no_reads(cluster: PostgresCluster) -> None:
    lagging = cluster.replicas[0]
    with psycopg.connect(lagging.dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    with regions(cluster, max_lag=200) as r:
        r.query_with_failover("emp", "UPDATE item SET qty = 8 WHERE code = %s", ["7530110"])
        time.sleep(0.5)
        r.check(everything=True)
        status = {x["connection_id"]: x for x in r.status()[0]["regions"]}
        assert status["replica1"]["lag_s"] > 0.2
        assert status["replica2"]["lag_s"] == 0
        cluster.primary.kill()
        assert r.query_with_failover("emp", READ, ["7530110"]) == [(8,)]  # replica2, never the stale replica1
        assert r.group("emp").book.current == "replica2"  # the failover skipped the lagging one too
        with psycopg.connect(lagging.dsn) as conn:
            assert conn.execute(READ, ["7530110"]).fetchone() == (3,)  # what replica1 would have said


def test_a_write_whose_connection_broke_is_not_run_again_elsewhere(cluster: PostgresCluster) -> None:
    """Its outcome is unknown (it may have committed), so the caller gets the error."""
    with regions(cluster, follow_writable=True) as r:
        r.query_with_failover("emp", "SELECT 1")  # a kept connection to the primary
        cluster.replicas[1].promote()  # a second writable region exists
        r.check(everything=True)
        cluster.primary.kill()
        with pytest.raises(psycopg.OperationalError):
            r.query_with_failover("emp", "UPDATE item SET qty = 6 WHERE code = %s", ["7530110"])
        with psycopg.connect(cluster.replicas[1].dsn) as conn:
            assert conn.execute(READ, ["7530110"]).fetchone() == (3,)  # not applied on the other site
        r.query_with_failover(
            "emp", "UPDATE item SET qty = 6 WHERE code = %s", ["7530110"]
        )  # a new call: fine
        with psycopg.connect(cluster.replicas[1].dsn) as conn:
            assert conn.execute(READ, ["7530110"]).fetchone() == (6,)


def test_reads_can_be_spread_over_the_replicas(cluster: PostgresCluster) -> None:
    with regions(cluster, read_balance="round_robin") as r:
        ports = {r.query_with_failover("emp", "SELECT inet_server_port()")[0][0] for _ in range(6)}
        assert ports == {m.port for m in cluster.members}
        r.query_with_failover("emp", "UPDATE item SET qty = 2 WHERE code = %s", ["7530110"])  # primary only
        with psycopg.connect(cluster.primary.dsn) as conn:
            assert conn.execute(READ, ["7530110"]).fetchone() == (2,)
