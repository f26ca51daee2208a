"""Document 002's orchestrator API without agents: strategies, readiness, dry runs, bad input."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import sqlalchemy as sa
from fastapi.testclient import TestClient

from takeover.store.tables import instances, volumes
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
    assert created.json() == {
        "success": True,
        "volume_id": volume_id,
        "number": 1,
        "name": created.json()["name"],
        "region": "eu",
        "size_gb": 50,
    }
    listed = client.get("/api/v1/failover/regional-volume/list").json()
    assert listed["count"] == 1
    assert listed["volumes"][0]["status"] == "available"
    found = client.get("/api/v1/failover/regional-volume/search/eu?gpu_name=RTX_4090&max_price=0.5").json()
    assert found["found"] is True
    assert found["offer"]["gpu_name"] == "RTX_4090"
    assert client.get("/api/v1/failover/regional-volume/search/eu?max_price=0.1").json() == {
        "found": False,
        "offer": None,
        "offers": [],
        "count": 0,
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
        ("POST", "/api/v1/failover/execute", {"machine_id": "123"}, 404, "instance 123 not found"),
        ("POST", "/api/v1/failover/execute", {"machine_id": "web"}, 422, "machine_id"),
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
    for method, path, body, written, field in cases:
        # document 002's error table: invalid parameters are a 400 under /failover/
        status = 400 if written == 422 and path.startswith("/api/v1/failover/") else written
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


def document_002_examples() -> list[tuple[str, str, Any]]:
    """(method, path, body or None) of every example in docs/api.md's 'as written' section."""
    import json
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    section = doc.split("### Document 002's examples, as written", 1)[1].split("\n## ", 1)[0]
    found: list[tuple[str, str, Any]] = []
    for match in re.finditer(r"`(GET|POST|DELETE) (/api/v1/[^`]+)`(?:\n```json\n(.+?)\n```)?", section, re.S):
        method, path, body = match.groups()
        found.append((method, path, json.loads(body) if body else None))
    return found


def test_document_002_examples_are_accepted_as_written(pool: Pool, client: TestClient) -> None:
    """Its integer ids, its fields, its bodies without a name: none is refused as invalid."""
    examples = document_002_examples()
    assert len(examples) == 13
    pool.beat(pool.node("n1", region="US", labels={"gpu_name": "RTX_4090", "price_per_hour": 0.45}))
    pool.beat(pool.node("n2", region="US", labels={"gpu_name": "RTX_3090", "price_per_hour": 0.3}))
    volume = client.post("/api/v1/failover/regional-volume/create", json={"region": "US", "size_gb": 1})
    assert volume.status_code == 200, volume.text
    machine = pool.instance("web", volume_id=volume.json()["number"])  # a number where the id goes
    with pool.runtime.store.engine.begin() as conn:  # the document's own numbers for the two
        conn.execute(sa.update(instances).where(instances.c.id == UUID(machine["id"])).values(number=123))
        conn.execute(
            sa.update(volumes).where(volumes.c.id == UUID(volume.json()["volume_id"])).values(number=12345)
        )
    pool.runtime.services.orchestrator.execute_timeout = 0.2
    answers = {}
    for method, path, body in examples:
        response = client.request(method, path, json=body)
        assert response.status_code not in (400, 422), f"{method} {path} {body}: {response.text}"
        assert response.status_code < 500, f"{method} {path}: {response.text}"
        answers[(method, path, json_key(body))] = response
    execute = next(r for (m, p, _), r in answers.items() if p.endswith("/execute"))
    assert set(execute.json()["not_acted_on"]) == {
        "gpu_instance_id",
        "ssh_host",
        "ssh_port",
        "workspace_path",
    }
    assert client.get("/api/v1/instances/123").json()["id"] == machine["id"]
    named = [r.json()["name"] for (m, p, _), r in answers.items() if p.endswith("/create")]
    assert named[0] == "my-volume"
    assert named[1].startswith("volume-us-")


def json_key(body: Any) -> str:
    import json

    return json.dumps(body, sort_keys=True)


def test_invalid_parameters_under_failover_are_400_naming_the_field(client: TestClient) -> None:
    bad = client.post("/api/v1/failover/execute", json={"machine_id": "not-an-id"})
    assert bad.status_code == 400
    assert bad.json()["detail"][0]["loc"][:2] == ["body", "machine_id"]
    elsewhere = client.post("/api/v1/failovers", json={"instance_id": "not-an-id"})
    assert elsewhere.status_code == 422  # FastAPI's convention outside document 002's endpoints


def test_a_nul_in_a_query_under_failover_is_a_400_too(client: TestClient) -> None:
    response = client.get("/api/v1/failover/regional-volume/search/US?gpu_name=a%00b")
    assert response.status_code == 400
    assert response.json()["detail"][0]["loc"] == ["query", "gpu_name"]
