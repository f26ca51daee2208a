"""Bad input gets a 4xx that names the problem, and the database is left exactly as it was."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from takeover.store.tables import metadata
from tests.api.pool import NodeHandle, Pool

MISSING = "00000000-0000-0000-0000-000000000000"


def dump(pool: Pool) -> dict[str, list[Any]]:
    with pool.runtime.store.engine.connect() as conn:
        return {
            t.name: sorted(map(repr, conn.execute(sa.select(t)).all()))
            for t in metadata.sorted_tables
            if t.name != "leases"
        }


@pytest.fixture
def seeded(pool: Pool) -> tuple[NodeHandle, NodeHandle, dict[str, Any]]:
    a, b = pool.node("a"), pool.node("b")
    pool.beat(a)
    pool.beat(b)
    return a, b, pool.instance("web")


def cases(
    a: NodeHandle, b: NodeHandle, inst: dict[str, Any]
) -> list[tuple[str, str, Any, dict[str, str], int, str]]:
    as_a = {"Authorization": f"Bearer {a.token}"}
    hb = f"/api/v1/nodes/{a.id}/heartbeat"
    node = {"name": "n", "region": "r", "base_url": "http://127.0.0.1:1"}
    return [
        ("POST", hb, {"cpu_load": 1.5, "memory_load": 0.1}, as_a, 422, "cpu_load"),
        ("POST", hb, {"cpu_load": -0.1, "memory_load": 0.1}, as_a, 422, "cpu_load"),
        ("POST", hb, {"cpu_load": "high", "memory_load": 0.1}, as_a, 422, "cpu_load"),
        ("POST", hb, {"cpu_load": 0.1}, as_a, 422, "memory_load"),
        (
            "POST",
            hb,
            {"cpu_load": 0.1, "memory_load": 0.1, "avg_latency_ms": -1},
            as_a,
            422,
            "avg_latency_ms",
        ),
        (
            "POST",
            hb,
            {"cpu_load": 0.1, "memory_load": 0.1, "instances": [{"id": "x", "epoch": 1, "state": "running"}]},
            as_a,
            422,
            "id",
        ),
        (
            "POST",
            hb,
            {
                "cpu_load": 0.1,
                "memory_load": 0.1,
                "instances": [{"id": inst["id"], "epoch": 1, "state": "dancing"}],
            },
            as_a,
            422,
            "state",
        ),
        ("POST", hb, {"cpu_load": 0.1, "memory_load": 0.1, "cpu": 1}, as_a, 422, "cpu"),
        ("POST", f"/api/v1/nodes/{b.id}/heartbeat", {"cpu_load": 0.1, "memory_load": 0.1}, as_a, 403, ""),
        (
            "POST",
            "/api/v1/nodes/not-a-uuid/heartbeat",
            {"cpu_load": 0.1, "memory_load": 0.1},
            as_a,
            422,
            "node_id",
        ),
        ("POST", "/api/v1/nodes", {**node, "name": "a"}, {}, 409, "name"),
        ("POST", "/api/v1/nodes", {**node, "base_url": "not a url"}, {}, 422, "base_url"),
        ("POST", "/api/v1/nodes", {**node, "max_instances": 0}, {}, 422, "max_instances"),
        ("POST", "/api/v1/nodes", {**node, "name": "has space"}, {}, 422, "name"),
        ("POST", "/api/v1/nodes", {**node, "labels": {"k": {"nested": 1}}}, {}, 422, "labels"),
        ("GET", f"/api/v1/nodes/{MISSING}", None, {}, 404, ""),
        ("PATCH", f"/api/v1/nodes/{MISSING}", {"priority": 1}, {}, 404, ""),
        ("PATCH", f"/api/v1/nodes/{a.id}", {"status": "gone"}, {}, 422, "status"),
        ("DELETE", f"/api/v1/nodes/{a.id}", None, {}, 409, ""),
        ("POST", "/api/v1/nodes/select", {"exclude": ["nope"]}, {}, 422, "exclude"),
        ("POST", "/api/v1/instances", {"name": "x", "spec": {"command": []}}, {}, 422, "command"),
        (
            "POST",
            "/api/v1/instances",
            {"name": "x", "spec": {"command": ["a"], "workspace": "../etc"}},
            {},
            422,
            "workspace",
        ),
        (
            "POST",
            "/api/v1/instances",
            {"name": "x", "spec": {"command": ["a"], "env": {"1BAD": "v"}}},
            {},
            422,
            "env",
        ),
        ("POST", "/api/v1/instances", {"name": "x", "spec": {"image": "Not/A Ref"}}, {}, 422, "image"),
        (
            "POST",
            "/api/v1/instances",
            {"name": "x", "spec": {"image": "busybox@sha256:12"}},
            {},
            422,
            "digest",
        ),
        (
            "POST",
            "/api/v1/instances",
            {"name": "x", "spec": {"image": "busybox", "mount_path": "data"}},
            {},
            422,
            "not an absolute path",
        ),
        (
            "POST",
            "/api/v1/instances",
            {"name": "x", "spec": {"image": "busybox", "mount_path": "/"}},
            {},
            422,
            "mount_path",
        ),
        (
            "POST",
            hb,
            {
                "cpu_load": 0.1,
                "memory_load": 0.1,
                "instances": [{"id": inst["id"], "epoch": 1, "state": "running", "image_digest": "latest"}],
            },
            as_a,
            422,
            "image_digest",
        ),
        ("POST", "/api/v1/instances", {"name": "web", "spec": {"command": ["a"]}}, {}, 409, "name"),
        ("POST", "/api/v1/instances", {"spec": {"command": ["a"]}}, {}, 422, "name"),
        ("GET", f"/api/v1/instances/{MISSING}", None, {}, 404, ""),
        ("POST", f"/api/v1/instances/{inst['id']}/assign", {"node_id": MISSING}, {}, 404, ""),
        ("POST", f"/api/v1/instances/{MISSING}/snapshot", None, {}, 404, ""),
        ("POST", f"/api/v1/instances/{inst['id']}/snapshot", None, {}, 409, "only a running one"),
        (
            "POST",
            hb,
            {
                "cpu_load": 0.1,
                "memory_load": 0.1,
                "instances": [{"id": inst["id"], "epoch": 1, "state": "running", "port": 0}],
            },
            as_a,
            422,
            "port",
        ),
        (
            "POST",
            hb,
            {
                "cpu_load": 0.1,
                "memory_load": 0.1,
                "instances": [{"id": inst["id"], "epoch": 1, "state": "running", "restored_from": "../x"}],
            },
            as_a,
            422,
            "restored_from",
        ),
        ("POST", "/api/v1/failovers", {"instance_id": MISSING}, {}, 404, ""),
        (
            "POST",
            "/api/v1/failovers",
            {"instance_id": inst["id"], "reason": "node_failure"},
            {},
            422,
            "reason",
        ),
        ("POST", "/api/v1/failovers", {"instance_id": inst["id"], "reason": "boredom"}, {}, 422, "reason"),
        ("POST", "/api/v1/failovers", {"instance_id": inst["id"], "target_node_id": MISSING}, {}, 404, ""),
        ("GET", "/api/v1/failovers?status=sideways", None, {}, 422, "status"),
        ("POST", f"/api/v1/failovers/{MISSING}/complete", {"success": True}, {}, 404, ""),
        ("POST", "/api/v1/tokens", {"role": "node", "subject": "x"}, {}, 422, "role"),
        ("DELETE", f"/api/v1/tokens/{MISSING}", None, {}, 404, ""),
        ("POST", "/api/v1/regions/nowhere/resume", None, {}, 404, ""),
        ("GET", "/api/v1/events?limit=0", None, {}, 422, "limit"),
    ]


def test_every_bad_request_is_a_clear_4xx_and_changes_nothing(
    pool: Pool, client: TestClient, seeded: Any
) -> None:
    before = dump(pool)
    for method, path, body, headers, status, field in cases(*seeded):
        response = client.request(method, path, json=body, headers=headers)
        label = f"{method} {path} {body}"
        assert response.status_code == status, f"{label}: {response.status_code} {response.text}"
        if field:
            assert field in response.text, f"{label} does not name {field}: {response.text}"
    assert dump(pool) == before


@pytest.mark.usefixtures("seeded")
def test_malformed_json_and_oversized_bodies_are_refused(pool: Pool, client: TestClient) -> None:
    before = dump(pool)
    broken = client.post(
        "/api/v1/instances", content=b'{"name": ', headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 422
    assert "json" in broken.text.lower()
    huge = {"name": "big", "spec": {"command": ["x"], "env": {"A": "x" * 2_000_000}}}  # 422 if parsed
    assert client.post("/api/v1/instances", json=huge).status_code == 413

    def chunks() -> Any:
        yield b'{"name": "big", "spec": {"command": ["'
        for _ in range(300):
            yield b"x" * 4096
        yield b'"]}}'

    streamed = client.post(
        "/api/v1/instances", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert dump(pool) == before


RAW_BODIES = [
    # (path, raw JSON text, the field the 422 must name)
    ("/api/v1/instances", r'{"name": "a\ud800b", "spec": {"command": ["x"]}}', "name"),
    ("/api/v1/instances", r'{"name": "ok", "spec": {"command": ["x\udfffy"]}}', "command"),
    ("/api/v1/instances", r'{"name": "ok", "spec": {"command": ["x\u0000"]}}', "command"),
    ("/api/v1/instances", r'{"name": "ok", "spec": {"command": ["x"], "env": {"A\u0000": "v"}}}', "env"),
    (
        "/api/v1/nodes",
        r'{"name": "n", "region": "r", "base_url": "http://h", "labels": {"k": NaN}}',
        "labels",
    ),
    (
        "/api/v1/nodes",
        r'{"name": "n", "region": "r", "base_url": "http://h", "priority": Infinity}',
        "priority",
    ),
    ("/api/v1/failover/regional-volume/failover", r'{"volume_id": "x", "max_price": NaN}', "max_price"),
    ("/api/v1/failover/regional-volume/failover", r'{"volume_id": "x", "max_price": -Infinity}', "max_price"),
    ("/api/v1/tokens", r'{"role": "user", "subject": "\ud83d"}', "subject"),
]


def test_unencodable_text_and_non_finite_numbers_are_a_422_naming_the_field(
    pool: Pool, client: TestClient, seeded: Any
) -> None:
    """Python's json accepts them; PostgreSQL and a 422 that echoes them do not (each was a 500)."""
    a, _, inst = seeded
    before = dump(pool)
    hb = f"/api/v1/nodes/{a.id}/heartbeat"
    node_bodies = [
        (hb, r'{"cpu_load": NaN, "memory_load": 0.1}', "cpu_load"),
        (
            hb,
            r'{{"cpu_load": 0.1, "memory_load": 0.1, "instances": [{{"id": "{}", "epoch": 1, '
            r'"state": "failed", "error": "boom\u0000"}}]}}'.format(inst["id"]),
            "error",
        ),
    ]
    as_a = {"Authorization": f"Bearer {a.token}"}
    for path, raw, field, field_headers in [
        *[(p, r, f, {}) for p, r, f in RAW_BODIES],
        *[(p, r, f, as_a) for p, r, f in node_bodies],
    ]:
        response = client.post(
            path, content=raw.encode(), headers={"Content-Type": "application/json", **field_headers}
        )
        expected = 400 if path.startswith("/api/v1/failover/") else 422  # document 002's own table
        assert response.status_code == expected, f"{raw}: {response.status_code} {response.text}"
        assert field in json.dumps(response.json()["detail"]), f"{raw} does not name {field}: {response.text}"
    assert client.get("/healthz").status_code == 200  # the connection survived every one
    assert dump(pool) == before


@pytest.mark.parametrize("query", ["region=a%00b", "status=online&region=%00", "a%00=1"])
def test_a_nul_in_a_query_is_a_422_naming_the_parameter(client: TestClient, query: str) -> None:
    response = client.get(f"/api/v1/nodes?{query}")
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][0] == "query"
    assert "NUL" in response.json()["detail"][0]["msg"]


def test_a_surrogate_pair_is_text_like_any_other(client: TestClient) -> None:
    created = client.post(
        "/api/v1/tokens",
        content=rb'{"role": "user", "subject": "ok"}',
        headers={"Content-Type": "application/json"},
    )
    assert created.status_code == 201
    label = client.post(
        "/api/v1/nodes",
        content=rb'{"name": "n1", "region": "r", "base_url": "http://h", "labels": {"owner": "\ud83d\ude00"}}',
        headers={"Content-Type": "application/json"},
    )
    assert label.status_code == 201, label.text
    assert label.json()["labels"] == {"owner": "\U0001f600"}


def test_no_capacity_is_503_with_the_reason_and_creates_nothing(pool: Pool, client: TestClient) -> None:
    node = pool.node("tiny", max_instances=1)
    pool.beat(node)
    pool.instance("first")
    before = dump(pool)
    response = client.post("/api/v1/instances", json={"name": "second", "spec": {"command": ["true"]}})
    assert response.status_code == 503
    assert response.json()["detail"] == "no node can take the instance: no eligible node (1 full)"
    assert dump(pool) == before
