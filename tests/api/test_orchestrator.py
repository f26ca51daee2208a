"""Document 002's orchestrator API without agents: strategies, readiness, dry runs, bad input."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.pool import Pool
from tests.api.test_bad_input import MISSING, dump


def test_the_strategies_are_listed_with_time_and_cost(client: TestClient) -> None:
    listed = client.get("/api/v1/failover/strategies").json()["strategies"]
    assert [s["id"] for s in listed] == ["warm_pool", "cpu_standby", "both", "regional_volume", "disabled"]
    assert all(s["recovery_time"] and s["cost"] and s["steps"] for s in listed)


def test_status_recommends_what_is_missing(pool: Pool, client: TestClient) -> None:
    n1 = pool.node("n1")
    pool.beat(n1)
    web = pool.instance("web", failover_strategy="both")
    status = client.get(f"/api/v1/failover/status/{web['id']}").json()
    assert status["effective_strategy"] == "both"
    assert status["warm_pool"]["enabled"] is True
    assert status["recommended_action"] == "add another online node: no standby could be chosen"
    readiness = client.get(f"/api/v1/failover/readiness/{web['id']}").json()
    assert readiness["overall_ready"] is False
    assert readiness["cpu_standby_status"] == {"latest_snapshot": None, "other_nodes": 0}


def test_a_dry_run_changes_nothing(pool: Pool, client: TestClient) -> None:
    n1, n2 = pool.node("n1"), pool.node("n2")
    pool.beat(n1, cpu=0.0)
    pool.beat(n2, cpu=0.5)
    web = pool.instance("web")
    before = dump(pool)
    result = client.post(f"/api/v1/failover/test/{web['id']}?dry_run=true&strategy=warm_pool").json()
    assert result["dry_run"] is True
    assert result["would_succeed"] is False
    assert result["strategy"] == "warm_pool"
    plain = client.post(f"/api/v1/failover/test/{web['id']}").json()  # dry_run is the default
    assert plain["would_try"] == "cpu_standby"
    assert dump(pool) == before


def test_the_instance_strategy_can_be_changed_and_is_checked(pool: Pool, client: TestClient) -> None:
    n1 = pool.node("n1")
    pool.beat(n1)
    web = pool.instance("web")
    changed = client.patch(f"/api/v1/instances/{web['id']}", json={"failover_strategy": "snapshot_restore"})
    assert changed.status_code == 200
    assert changed.json()["failover_strategy"] == "cpu_standby"
    assert client.get(f"/api/v1/failover/status/{web['id']}").json()["effective_strategy"] == "cpu_standby"


def test_volumes_are_created_listed_found_and_deleted(pool: Pool, client: TestClient) -> None:
    for name, labels in (
        ("gpu-1", {"gpu_name": "RTX_4090", "price_per_hour": 0.45}),
        ("gpu-2", {"gpu_name": "RTX_3090", "price_per_hour": 0.25}),
    ):
        pool.beat(pool.node(name, region="eu", labels=labels))
    created = client.post(
        "/api/v1/failover/regional-volume/create", json={"region": "eu", "size_gb": 50, "name": "v"}
    )
    volume_id = created.json()["volume_id"]
    assert created.json() == {"success": True, "volume_id": volume_id, "region": "eu", "size_gb": 50}
    listed = client.get("/api/v1/failover/regional-volume/list").json()
    assert listed["count"] == 1
    assert listed["volumes"][0]["status"] == "available"
    found = client.get("/api/v1/failover/regional-volume/search/eu?gpu_name=RTX_4090&max_price=0.5").json()
    assert found["found"] is True
    assert found["offer"]["gpu_name"] == "RTX_4090"
    assert client.get("/api/v1/failover/regional-volume/search/eu?max_price=0.1").json() == {
        "found": False,
        "offer": None,
    }
    web = pool.instance("web", volume_id=volume_id, failover_strategy="regional_volume")
    assert pool.get(f"/api/v1/failover/regional-volume/{volume_id}")["attached_to"] == web["id"]
    assert client.delete(f"/api/v1/failover/regional-volume/{volume_id}").status_code == 409
    assert client.delete(f"/api/v1/instances/{web['id']}").status_code == 204
    assert client.delete(f"/api/v1/failover/regional-volume/{volume_id}").status_code == 204
    assert client.get(f"/api/v1/failover/regional-volume/{volume_id}").status_code == 404


def test_bad_orchestrator_requests_are_clear_and_change_nothing(pool: Pool, client: TestClient) -> None:
    n1 = pool.node("n1", region="eu")
    pool.beat(n1)
    web = pool.instance("web")
    volume = client.post(
        "/api/v1/failover/regional-volume/create", json={"region": "eu", "size_gb": 1, "name": "v"}
    )
    before = dump(pool)
    cases: list[tuple[str, str, Any, int, str]] = [
        (
            "POST",
            "/api/v1/failover/execute",
            {"machine_id": web["id"], "force_strategy": "magic"},
            422,
            "force_strategy",
        ),
        ("POST", "/api/v1/failover/execute", {"machine_id": MISSING}, 404, ""),
        ("POST", "/api/v1/failover/execute", {"machine_id": "123"}, 422, "machine_id"),
        ("POST", "/api/v1/failover/execute", {"machine_id": web["id"], "ssh_port": 0}, 422, "ssh_port"),
        ("GET", f"/api/v1/failover/readiness/{MISSING}", None, 404, ""),
        ("GET", f"/api/v1/failover/status/{MISSING}", None, 404, ""),
        ("POST", f"/api/v1/failover/test/{web['id']}?strategy=nope", None, 422, "strategy"),
        ("POST", f"/api/v1/failover/test/{MISSING}", None, 404, ""),
        (
            "POST",
            "/api/v1/failover/regional-volume/create",
            {"region": "eu", "size_gb": 0, "name": "x"},
            422,
            "size_gb",
        ),
        (
            "POST",
            "/api/v1/failover/regional-volume/create",
            {"region": "eu", "size_gb": 1, "name": "v"},
            409,
            "name",
        ),
        ("POST", "/api/v1/failover/regional-volume/failover", {"volume_id": MISSING}, 404, ""),
        (
            "POST",
            "/api/v1/failover/regional-volume/failover",
            {"volume_id": volume.json()["volume_id"]},
            409,
            "not attached",
        ),
        ("GET", "/api/v1/failover/regional-volume/search/eu?max_price=-1", None, 422, "max_price"),
        ("GET", f"/api/v1/failover/regional-volume/{MISSING}", None, 404, ""),
        ("DELETE", f"/api/v1/failover/regional-volume/{MISSING}", None, 404, ""),
        ("PATCH", f"/api/v1/instances/{web['id']}", {"failover_strategy": "fast"}, 422, "failover_strategy"),
        (
            "POST",
            "/api/v1/instances",
            {"name": "x", "spec": {"command": ["a"]}, "volume_id": MISSING},
            404,
            "",
        ),
        (
            "POST",
            "/api/v1/instances",
            {"name": "x", "spec": {"command": ["a"]}, "failover_strategy": "x"},
            422,
            "failover_strategy",
        ),
    ]
    for method, path, body, status, field in cases:
        response = client.request(method, path, json=body)
        assert response.status_code == status, (
            f"{method} {path} {body}: {response.status_code} {response.text}"
        )
        if field:
            assert field in response.text, f"{method} {path} does not name {field}: {response.text}"
    assert dump(pool) == before


def test_region_group_decisions_compare_and_set(pool: Pool, client: TestClient) -> None:
    assert client.get("/api/v1/region-groups/emp").status_code == 404
    first = client.put("/api/v1/region-groups/emp", json={"current_region": "rj", "expected_epoch": 0})
    assert first.status_code == 200
    assert (first.json()["epoch"], first.json()["updated_by"]) == (1, "admin")
    stale = client.put("/api/v1/region-groups/emp", json={"current_region": "sc", "expected_epoch": 0})
    assert stale.status_code == 409
    assert "is at epoch 1 (region rj)" in stale.json()["detail"]
    before = dump(pool)
    for body, field in (
        ({"current_region": "../x"}, "current_region"),
        ({"current_region": "sc", "expected_epoch": -1}, "expected_epoch"),
        ({"region": "sc"}, "current_region"),
    ):
        response = client.put("/api/v1/region-groups/emp", json=body)
        assert response.status_code == 422
        assert field in response.text
    assert client.put("/api/v1/region-groups/bad%20name", json={"current_region": "sc"}).status_code == 422
    assert dump(pool) == before
    assert [g["current_region"] for g in client.get("/api/v1/region-groups").json()] == ["rj"]
