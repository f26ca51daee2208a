"""Routes through the API on both stores: the runner a client may be sent to, only at the
current epoch; a blocking query that answers when a route changes; owners see their own."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from takeover.control import routes as routes_module
from takeover.main import Runtime
from takeover.testing import FakeClock
from tests.api.pool import NodeHandle, Pool
from tests.api.test_console import console
from tests.conftest import make_runtime, new_store_url


def serve(pool: Pool, node: NodeHandle, port: int) -> None:
    """``node`` reports what it should run as running, on ``port``."""
    pool.beat(node)
    response = pool.client.post(
        f"/api/v1/nodes/{node.id}/heartbeat",
        json={
            "cpu_load": 0.1,
            "memory_load": 0.1,
            "instances": [
                {"id": i, "epoch": e, "state": "running", "port": port} for i, e in node.running.items()
            ],
        },
        headers={"Authorization": f"Bearer {node.token}"},
    )
    assert response.status_code == 200, response.text


def routes(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/routes", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["X-Takeover-Index"] == body["index"]
    return body


def test_a_route_points_at_the_runner_of_the_current_epoch_only(pool: Pool) -> None:
    n1, n2, web = pool.two_nodes_running_web()
    assert routes(pool.client)["routes"][0]["target"] is None  # running, but reported no port yet
    serve(pool, n1, 20001)
    [route] = routes(pool.client)["routes"]
    assert (route["name"], route["epoch"], route["target"]) == ("web", 1, "127.0.0.1:20001")
    assert (
        pool.client.post(
            "/api/v1/failovers", json={"instance_id": web["id"], "target_node_id": n2.id}
        ).status_code
        == 202
    )
    for _ in range(10):  # the handover: n1 releases, n2 takes it at epoch 2
        pool.cycle()
        pool.beat(n1)
        moved = routes(pool.client)["routes"][0]
        assert moved["target"] in (None, "127.0.0.1:20001")
        assert moved["target"] is None or moved["epoch"] == 1  # the old address never at the new epoch
        if moved["epoch"] == 2:
            break
        pool.beat(n2)
    serve(pool, n2, 20002)
    [route] = routes(pool.client)["routes"]
    assert (route["epoch"], route["target"]) == (2, "127.0.0.1:20002")


def test_a_watch_answers_when_a_route_changes_and_waits_while_none_does(pool: Pool) -> None:
    n1, _, _ = pool.two_nodes_running_web()
    first = routes(pool.client)
    started = time.monotonic()
    same = routes(pool.client, index=first["index"], wait=0.5)
    assert time.monotonic() - started >= 0.5
    assert same == first
    answered: list[dict[str, Any]] = []
    watcher = threading.Thread(
        target=lambda: answered.append(routes(pool.client, index=first["index"], wait=60))
    )
    watcher.start()
    time.sleep(0.5)
    assert answered == []  # still waiting: nothing changed
    serve(pool, n1, 20001)
    watcher.join(timeout=10)  # the commit woke it, long before the minute is out
    assert not watcher.is_alive()
    assert answered[0]["index"] != first["index"]
    assert answered[0]["routes"][0]["target"] == "127.0.0.1:20001"


def test_owners_see_their_own_routes_and_prometheus_gets_the_serving_ones(
    pool: Pool, runtime: Runtime
) -> None:
    n1, _, _ = pool.two_nodes_running_web()
    serve(pool, n1, 20001)
    made = pool.client.post("/api/v1/tokens", json={"role": "user", "subject": "alice"}).json()
    alice = TestClient(runtime.app, headers={"Authorization": f"Bearer {made['token']}"})
    assert (
        alice.post(
            "/api/v1/instances", json={"name": "hers", "spec": {"command": ["sleep", "60"]}}
        ).status_code
        == 201
    )
    assert [r["name"] for r in routes(alice)["routes"]] == ["hers"]
    assert sorted(r["name"] for r in routes(pool.client)["routes"]) == ["hers", "web"]
    targets = alice.get("/api/v1/routes/prometheus").json()
    assert targets == []  # hers does not serve yet
    [target] = pool.client.get("/api/v1/routes/prometheus").json()
    assert target["targets"] == ["127.0.0.1:20001"]
    assert target["labels"]["instance_name"] == "web"
    assert target["labels"]["epoch"] == "1"


def test_a_bad_watch_is_refused_naming_the_parameter(pool: Pool) -> None:
    for params, field in (
        ({"wait": 301}, "wait"),
        ({"wait": "soon"}, "wait"),
        ({"index": "x" * 65}, "index"),
    ):
        response = pool.client.get("/api/v1/routes", params=params)
        assert response.status_code == 422, response.text
        assert field in response.text


def test_the_stable_address_is_where_users_look(tmp_path: Path) -> None:
    clock = FakeClock()
    runtime = make_runtime(
        f"sqlite:///{tmp_path / 'a.db'}", clock, tmp_path, route_address="{name}.apps.test"
    )
    pool = Pool(TestClient(runtime.app, headers={"Authorization": "Bearer admin-secret"}), runtime, clock)
    _, _, web = pool.two_nodes_running_web()
    assert pool.get(f"/api/v1/instances/{web['id']}")["address"] == "web.apps.test"
    assert pool.get("/api/v1/routes")["routes"][0]["address"] == "web.apps.test"
    assert "web.apps.test" in console(runtime, "admin-secret").get(f"/ui/instances/{web['id']}").text
    n2 = pool.node("n3")
    opened = pool.client.post("/api/v1/failovers", json={"instance_id": web["id"], "target_node_id": n2.id})
    failover = runtime.store.failovers.get(UUID(opened.json()["id"]))
    answer = runtime.services.orchestrator.response(failover)  # document 002's FailoverResponse
    assert answer["stable_address"] == "web.apps.test"


@pytest.mark.postgres
def test_a_watch_on_one_replica_wakes_when_another_commits(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only PostgreSQL's NOTIFY can wake it: the fallback re-read is a minute away here."""
    monkeypatch.setattr(routes_module, "RECHECK", 60.0)
    url, clock = new_store_url("postgres", request, tmp_path), FakeClock()
    watched, writer = make_runtime(url, clock, tmp_path / "a"), make_runtime(url, clock, tmp_path / "b")
    pool = Pool(TestClient(writer.app, headers={"Authorization": "Bearer admin-secret"}), writer, clock)
    n1, _, _ = pool.two_nodes_running_web()
    with TestClient(
        watched.app, headers={"Authorization": "Bearer admin-secret"}
    ) as replica:  # its feed runs
        first = routes(replica)
        answered: list[dict[str, Any]] = []
        watcher = threading.Thread(
            target=lambda: answered.append(routes(replica, index=first["index"], wait=60))
        )
        watcher.start()
        time.sleep(1)
        serve(pool, n1, 20001)
        watcher.join(timeout=20)
        assert not watcher.is_alive(), "the other replica's commit did not wake the watch"
    assert answered[0]["routes"][0]["target"] == "127.0.0.1:20001"
    for runtime in (watched, writer):
        runtime.store.engine.dispose()
