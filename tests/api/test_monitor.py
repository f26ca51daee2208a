from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from takeover.control.executor import ExecutorOutcome
from takeover.domain.errors import Contended, FencedOut
from takeover.testing import FakeClock
from tests.api.pool import Pool
from tests.conftest import make_runtime


def test_check_offline_runs_the_leaders_check_now(pool: Pool, client: TestClient) -> None:
    n1, n2 = pool.node("n1"), pool.node("n2")
    pool.beat(n1, cpu=0.0)
    web = pool.instance("web")
    pool.elapse(6)
    pool.beat(n2)
    body = client.post("/api/v1/nodes/check-offline").json()
    assert body["offline_nodes"] == ["n1"]
    assert [f["instance_id"] for f in body["failovers"]] == [web["id"]]
    assert client.post("/api/v1/nodes/check-offline").json()["offline_nodes"] == []


def test_check_offline_is_refused_while_another_replica_leads(pool: Pool, client: TestClient) -> None:
    pool.runtime.store.coordinator.acquire(
        "controllers", "other-replica", timedelta(seconds=60), pool.clock.now()
    )
    response = client.post("/api/v1/nodes/check-offline")
    assert response.status_code == 409
    assert "other-replica" in response.json()["detail"]


def test_most_of_a_region_going_silent_pauses_its_failovers_until_an_admin_resumes(
    pool: Pool, client: TestClient
) -> None:
    nodes = [pool.node(f"a{i}", region="a") for i in range(4)]
    other = pool.node("b0", region="b")
    for n in nodes:
        pool.beat(n)
    instances = [pool.instance(f"i{i}", preferred_region="a") for i in range(3)]
    pool.elapse(6)
    pool.beat(nodes[3])
    pool.beat(other)
    outcome = pool.cycle()
    assert outcome.monitor is not None
    assert list(outcome.monitor.paused_regions) == ["a"]
    assert outcome.monitor.failovers == []
    assert [p["region"] for p in pool.get("/api/v1/regions/paused")] == ["a"]
    assert 'takeover_region_failovers_paused{region="a"} 1.0' in client.get("/metrics").text
    assert pool.cycle().monitor.failovers == []  # type: ignore[union-attr]

    assert client.post("/api/v1/regions/a/resume").status_code == 204
    assert client.post("/api/v1/regions/a/resume").status_code == 404
    pool.beat(nodes[3])
    pool.beat(other)
    opened = pool.cycle().monitor.failovers  # type: ignore[union-attr]
    on_dead = {i["id"] for i in instances if i["node_id"] != nodes[3].id}
    assert {str(f.instance_id) for f in opened} == on_dead


def test_the_brake_releases_itself_when_the_region_heartbeats_again(pool: Pool) -> None:
    nodes = [pool.node(f"a{i}", region="a") for i in range(3)]
    for n in nodes:
        pool.beat(n)
    pool.elapse(6)
    assert pool.cycle().monitor.paused_regions  # type: ignore[union-attr]
    for n in nodes:
        pool.beat(n)
    assert pool.cycle().monitor.resumed_regions == ["a"]  # type: ignore[union-attr]
    assert pool.get("/api/v1/regions/paused") == []


def test_automatic_failovers_are_rate_limited(store_url: str, clock: FakeClock, tmp_path: Path) -> None:
    runtime = make_runtime(store_url, clock, tmp_path, failover_rate=0.1, failover_burst=2)
    pool = Pool(TestClient(runtime.app, headers={"Authorization": "Bearer admin-secret"}), runtime, clock)
    dead, alive = pool.node("dead"), pool.node("alive")
    pool.beat(dead, cpu=0.0)
    pool.beat(alive, cpu=1.0, memory=1.0)  # so busy that all five go to "dead" despite the spreading
    for i in range(5):
        pool.instance(f"i{i}")
    pool.elapse(6)
    pool.beat(alive)
    outcome = pool.cycle().monitor
    assert outcome is not None
    assert (len(outcome.failovers), outcome.rate_limited) == (2, 3)
    clock.advance(10)
    pool.beat(alive)
    assert len(pool.cycle().monitor.failovers) == 1  # type: ignore[union-attr]
    runtime.store.engine.dispose()


def test_a_node_scoring_low_for_n_heartbeats_loses_its_instances(pool: Pool) -> None:
    sick, fine = pool.node("sick"), pool.node("fine")
    pool.beat(sick, cpu=0.0)
    pool.beat(fine, cpu=0.5)
    web = pool.instance("web")
    for _ in range(4):
        pool.beat(sick, cpu=1.0, memory=1.0, latency=500)  # score 0 < 30
    assert pool.cycle().monitor.failovers == []  # type: ignore[union-attr]
    pool.beat(sick, cpu=1.0, memory=1.0, latency=500)  # 5th in a row
    opened = pool.cycle().monitor.failovers  # type: ignore[union-attr]
    assert [(str(f.instance_id), f.reason.value) for f in opened] == [(web["id"], "health_degraded")]


def test_a_deposed_leaders_writes_are_refused(pool: Pool) -> None:
    store, clock = pool.runtime.store, pool.clock
    node = pool.node("n1")
    old = store.coordinator.acquire("controllers", "old", timedelta(seconds=5), clock.now())
    assert old is not None
    clock.advance(6)
    new = store.coordinator.acquire("controllers", "new", timedelta(seconds=5), clock.now())
    assert new is not None
    assert new.epoch == old.epoch + 1
    with pytest.raises(FencedOut):
        store.nodes.mark_offline([UUID(node.id)], clock.now(), old)
    assert pool.get(f"/api/v1/nodes/{node.id}")["status"] == "online"
    store.nodes.mark_offline([UUID(node.id)], clock.now(), new)
    assert pool.get(f"/api/v1/nodes/{node.id}")["status"] == "offline"


def test_a_deposed_leader_claims_no_failover(pool: Pool, client: TestClient) -> None:
    """A leader woken from a pause must not take failovers its successor works on."""
    _, _, web = pool.two_nodes_running_web()
    assert client.post("/api/v1/failovers", json={"instance_id": web["id"]}).status_code == 202
    store, clock = pool.runtime.store, pool.clock
    old = store.coordinator.acquire("controllers", "old", timedelta(seconds=5), clock.now())
    assert old is not None
    clock.advance(6)
    new = store.coordinator.acquire("controllers", "new", timedelta(seconds=5), clock.now())
    with pytest.raises(FencedOut):
        store.failovers.claim("old", clock.now(), timedelta(seconds=30), old)
    claimed = store.failovers.claim("new", clock.now(), timedelta(seconds=30), new)
    assert [str(f.instance_id) for f in claimed] == [web["id"]]


def test_a_replica_that_loses_the_lease_stops_acting(pool: Pool) -> None:
    assert pool.cycle().leader
    pool.clock.advance(11)  # lease_ttl 10 s passed without renewal
    pool.runtime.store.coordinator.acquire("controllers", "usurper", timedelta(seconds=60), pool.clock.now())
    outcome = pool.cycle()
    assert not outcome.leader
    assert outcome.monitor is None


def test_a_cycle_that_lost_a_deadlock_runs_again_at_once(
    store_url: str, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = make_runtime(store_url, clock, tmp_path, monitor_interval=10.0, lease_ttl=30.0)
    controllers = runtime.controllers
    assert controllers is not None
    cycles: list[int] = []

    def executor_cycle(_now: object, _token: object) -> ExecutorOutcome:
        cycles.append(len(cycles))
        if len(cycles) == 1:
            raise Contended("store unavailable: deadlock detected")
        return ExecutorOutcome()

    monkeypatch.setattr(controllers._executor, "run_cycle", executor_cycle)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(controllers.run(stop))
        for _ in range(100):  # 5 s, half the interval: only a wake-up runs the second cycle
            if len(cycles) >= 2:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await task

    asyncio.run(run())
    assert len(cycles) >= 2


def test_a_failed_manual_failover_holds_back_no_node_failure_failover(pool: Pool, client: TestClient) -> None:
    """An operator's failover that failed (here aborted) must not delay the automatic one when the
    node then dies: failover_retry_after is for automatic failovers failing in a loop."""
    _, n2, web = pool.two_nodes_running_web()
    manual = client.post("/api/v1/failovers", json={"instance_id": web["id"]}).json()
    aborted = client.post(f"/api/v1/failovers/{manual['id']}/complete", json={"success": False})
    assert aborted.json()["status"] == "failed"
    pool.elapse(6)  # n1 silent past offline_after; well within failover_retry_after (30 s)
    pool.beat(n2)
    body = client.post("/api/v1/nodes/check-offline").json()
    assert body["offline_nodes"] == ["n1"]
    assert [(f["instance_id"], f["reason"]) for f in body["failovers"]] == [(web["id"], "node_failure")]
