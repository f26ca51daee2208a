"""Every operation of the OpenAPI schema against every kind of caller, as one table.

A new endpoint without a row fails ``test_every_operation_has_a_row``: who may call it is a
decision to write down, not a default. Each cell runs against a fresh pool when the cell before
it changed something, so one role's success never decides another's outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from takeover.testing import FakeClock
from tests.api.pool import Pool
from tests.conftest import make_runtime

ROLES = ("admin", "alice", "bob", "node_a", "node_b", "none", "revoked", "joiner")


@dataclass
class World:
    """Two online nodes; alice's instance "web" on one of them, her failover and volume."""

    client: TestClient
    headers: dict[str, dict[str, str]]
    ids: dict[str, str]


def build_world(tmp_path: Path, n: int) -> World:
    clock = FakeClock()
    runtime = make_runtime(f"sqlite:///{tmp_path / f'auth-{n}.db'}", clock, tmp_path)
    admin = {"Authorization": "Bearer admin-secret"}
    client = TestClient(runtime.app)
    pool = Pool(TestClient(runtime.app, headers=admin), runtime, clock)
    a, b = pool.node("a"), pool.node("b")
    pool.beat(a)
    pool.beat(b)

    def token(subject: str) -> dict[str, Any]:
        made: dict[str, Any] = pool.client.post(
            "/api/v1/tokens", json={"role": "user", "subject": subject}
        ).json()
        return made

    alice, bob, carol, spare = token("alice"), token("bob"), token("carol"), token("dave")
    assert pool.client.delete(f"/api/v1/tokens/{carol['id']}").status_code == 204
    joining = pool.client.post("/api/v1/join-tokens", json={"region": "r1", "max_uses": 10}).json()
    other_join = pool.client.post("/api/v1/join-tokens", json={"region": "r2"}).json()
    headers = {
        "joiner": {"Authorization": f"Bearer {joining['token']}"},
        "admin": admin,
        "alice": {"Authorization": f"Bearer {alice['token']}"},
        "bob": {"Authorization": f"Bearer {bob['token']}"},
        "node_a": {"Authorization": f"Bearer {a.token}"},
        "node_b": {"Authorization": f"Bearer {b.token}"},
        "none": {},
        "revoked": {"Authorization": f"Bearer {carol['token']}"},
    }
    as_alice = headers["alice"]
    web = client.post("/api/v1/instances", json={"name": "web", "spec": {"command": ["x"]}}, headers=as_alice)
    spare_instance = client.post(
        "/api/v1/instances", json={"name": "idle", "spec": {"command": ["x"]}}, headers=as_alice
    ).json()
    volume = client.post(
        "/api/v1/failover/regional-volume/create",
        json={"region": "r1", "size_gb": 1, "name": "v"},
        headers=as_alice,
    ).json()
    failover = client.post(
        "/api/v1/failovers", json={"instance_id": spare_instance["id"]}, headers=as_alice
    ).json()
    pool.node("c")  # registered, never heartbeat: empty, so deleting it is allowed
    empty = next(n for n in pool.get("/api/v1/nodes") if n["name"] == "c")
    assert pool.client.put("/api/v1/region-groups/g1", json={"current_region": "eu"}).status_code == 200
    runtime.services.orchestrator.execute_timeout = 0.2  # execute answers with the open failover
    web_node = web.json()["node_id"]
    ids = {
        "node_id": web_node,
        "instance_id": web.json()["id"],
        "machine_id": web.json()["id"],
        "failover_id": failover["id"],
        "volume_id": volume["volume_id"],
        "token_id": spare["id"],
        "join_token_id": other_join["id"],
        "region": "r1",
        "group_id": "g1",
        "other_node": b.id if web_node == a.id else a.id,
        "empty_node": empty["id"],
    }
    # node_a is the node running web; node_b the other one.
    if web_node != a.id:
        headers["node_a"], headers["node_b"] = headers["node_b"], headers["node_a"]
    return World(client, headers, ids)


BEAT = {"cpu_load": 0.1, "memory_load": 0.1}
NODE = {"name": "new", "region": "r1", "base_url": "http://127.0.0.1:9"}
INSTANCE = {"name": "new", "spec": {"command": ["x"]}}

# What each operation is called with: (method, OpenAPI path) -> (concrete path, JSON body).
# alice owns the instance, the failover and the volume; node_a runs the instance.
REQUESTS: dict[tuple[str, str], tuple[str, dict[str, Any] | None]] = {
    ("POST", "/api/v1/nodes"): ("/api/v1/nodes", NODE),
    ("GET", "/api/v1/nodes"): ("/api/v1/nodes", None),
    ("POST", "/api/v1/nodes/select"): ("/api/v1/nodes/select", {}),
    ("POST", "/api/v1/nodes/check-offline"): ("/api/v1/nodes/check-offline", None),
    ("GET", "/api/v1/nodes/{node_id}"): ("/api/v1/nodes/{node_id}", None),
    ("GET", "/api/v1/nodes/{node_id} (another node)"): ("/api/v1/nodes/{other_node}", None),
    ("PATCH", "/api/v1/nodes/{node_id}"): ("/api/v1/nodes/{node_id}", {"priority": 5}),
    ("DELETE", "/api/v1/nodes/{node_id}"): ("/api/v1/nodes/{empty_node}", None),
    ("POST", "/api/v1/nodes/{node_id}/heartbeat"): ("/api/v1/nodes/{node_id}/heartbeat", BEAT),
    ("GET", "/api/v1/instances"): ("/api/v1/instances", None),
    ("POST", "/api/v1/instances"): ("/api/v1/instances", INSTANCE),
    ("GET", "/api/v1/instances/{instance_id}"): ("/api/v1/instances/{instance_id}", None),
    ("DELETE", "/api/v1/instances/{instance_id}"): ("/api/v1/instances/{instance_id}", None),
    ("PATCH", "/api/v1/instances/{instance_id}"): (
        "/api/v1/instances/{instance_id}",
        {"failover_enabled": False},
    ),
    ("POST", "/api/v1/instances/{instance_id}/snapshot"): ("/api/v1/instances/{instance_id}/snapshot", None),
    ("GET", "/api/v1/instances/{instance_id}/logs"): ("/api/v1/instances/{instance_id}/logs", None),
    ("POST", "/api/v1/instances/{instance_id}/assign"): (
        "/api/v1/instances/{instance_id}/assign",
        {"node_id": "{other_node}"},
    ),
    ("POST", "/api/v1/failovers"): ("/api/v1/failovers", {"instance_id": "{instance_id}"}),
    ("GET", "/api/v1/failovers"): ("/api/v1/failovers", None),
    ("GET", "/api/v1/failovers/{failover_id}"): ("/api/v1/failovers/{failover_id}", None),
    ("POST", "/api/v1/failovers/{failover_id}/complete"): (
        "/api/v1/failovers/{failover_id}/complete",
        {"success": False},
    ),
    ("POST", "/api/v1/failover/execute"): ("/api/v1/failover/execute", {"machine_id": "{machine_id}"}),
    ("GET", "/api/v1/failover/readiness/{machine_id}"): ("/api/v1/failover/readiness/{machine_id}", None),
    ("GET", "/api/v1/failover/status/{machine_id}"): ("/api/v1/failover/status/{machine_id}", None),
    ("POST", "/api/v1/failover/test/{machine_id}"): ("/api/v1/failover/test/{machine_id}?dry_run=true", None),
    ("GET", "/api/v1/failover/strategies"): ("/api/v1/failover/strategies", None),
    ("POST", "/api/v1/failover/regional-volume/create"): (
        "/api/v1/failover/regional-volume/create",
        {"region": "r1", "size_gb": 1, "name": "v2"},
    ),
    ("POST", "/api/v1/failover/regional-volume/failover"): (
        "/api/v1/failover/regional-volume/failover",
        {"volume_id": "{volume_id}"},
    ),
    ("GET", "/api/v1/failover/regional-volume/list"): ("/api/v1/failover/regional-volume/list", None),
    ("GET", "/api/v1/failover/regional-volume/search/{region}"): (
        "/api/v1/failover/regional-volume/search/{region}",
        None,
    ),
    ("GET", "/api/v1/failover/regional-volume/{volume_id}"): (
        "/api/v1/failover/regional-volume/{volume_id}",
        None,
    ),
    ("DELETE", "/api/v1/failover/regional-volume/{volume_id}"): (
        "/api/v1/failover/regional-volume/{volume_id}",
        None,
    ),
    ("GET", "/api/v1/region-groups"): ("/api/v1/region-groups", None),
    ("GET", "/api/v1/region-groups/{group_id}"): ("/api/v1/region-groups/{group_id}", None),
    ("POST", "/api/v1/nodes/join"): (
        "/api/v1/nodes/join",
        {"name": "joiner", "base_url": "http://127.0.0.1"},
    ),
    ("GET", "/api/v1/agent/bundle"): ("/api/v1/agent/bundle", None),
    ("POST", "/api/v1/agent/failed"): ("/api/v1/agent/failed", {"reason": "no python3"}),
    ("GET", "/api/v1/provider/offers"): ("/api/v1/provider/offers?region=r1", None),
    ("GET", "/api/v1/provider/machines"): ("/api/v1/provider/machines", None),
    ("POST", "/api/v1/provider/machines/{rental_id}/release"): (
        "/api/v1/provider/machines/00000000-0000-0000-0000-000000000001/release",
        None,
    ),
    ("PUT", "/api/v1/region-groups/{group_id}"): (
        "/api/v1/region-groups/{group_id}",
        {"current_region": "us"},
    ),
    ("GET", "/healthz"): ("/healthz", None),
    ("GET", "/livez"): ("/livez", None),
    ("GET", "/readyz"): ("/readyz", None),
    ("GET", "/metrics"): ("/metrics", None),
    ("GET", "/api/v1/leader"): ("/api/v1/leader", None),
    ("GET", "/api/v1/status"): ("/api/v1/status", None),
    ("POST", "/api/v1/join-tokens"): ("/api/v1/join-tokens", {"region": "r1"}),
    ("GET", "/api/v1/join-tokens"): ("/api/v1/join-tokens", None),
    ("DELETE", "/api/v1/join-tokens/{token_id}"): ("/api/v1/join-tokens/{join_token_id}", None),
    ("GET", "/api/v1/tokens"): ("/api/v1/tokens", None),
    ("POST", "/api/v1/tokens"): ("/api/v1/tokens", {"role": "user", "subject": "erin"}),
    ("DELETE", "/api/v1/tokens/{token_id}"): ("/api/v1/tokens/{token_id}", None),
    ("GET", "/api/v1/regions/paused"): ("/api/v1/regions/paused", None),
    ("POST", "/api/v1/regions/{region}/resume"): ("/api/v1/regions/{region}/resume", None),
    ("GET", "/api/v1/events"): ("/api/v1/events", None),
    ("GET", "/api/v1/routes"): ("/api/v1/routes", None),
    ("GET", "/api/v1/routes/prometheus"): ("/api/v1/routes/prometheus", None),
}


def fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    return value


def outcomes(tmp_path: Path, operation: tuple[str, str]) -> dict[str, int]:
    """The status each role gets; a fresh world after any change, so no cell decides another."""
    method = operation[0]
    template, body = REQUESTS[operation]
    got: dict[str, int] = {}
    world = None
    for role in reversed(ROLES):  # the refused first: their cells change nothing
        if world is None:
            world = build_world(tmp_path, len(got))
        response = world.client.request(
            method, fill(template, world.ids), json=fill(body, world.ids), headers=world.headers[role]
        )
        got[role] = response.status_code
        if method != "GET" and response.status_code < 300:
            world = None
    return {role: got[role] for role in ROLES}


# Expected status per role: admin, alice (owner), bob (another user), node_a (runs the instance),
# node_b, no token, a revoked token, a join token. 404 for bob: another user's records do not exist for him.
MATRIX: dict[tuple[str, str], tuple[int, ...]] = {
    ("POST", "/api/v1/nodes"): (201, 403, 403, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/nodes"): (200, 200, 200, 403, 403, 401, 401, 401),
    ("POST", "/api/v1/nodes/select"): (200, 200, 200, 403, 403, 401, 401, 401),
    ("POST", "/api/v1/nodes/check-offline"): (200, 403, 403, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/nodes/{node_id}"): (200, 200, 200, 200, 403, 401, 401, 401),
    ("GET", "/api/v1/nodes/{node_id} (another node)"): (200, 200, 200, 403, 200, 401, 401, 401),
    ("PATCH", "/api/v1/nodes/{node_id}"): (200, 403, 403, 403, 403, 401, 401, 401),
    ("DELETE", "/api/v1/nodes/{node_id}"): (204, 403, 403, 403, 403, 401, 401, 401),
    ("POST", "/api/v1/nodes/{node_id}/heartbeat"): (403, 403, 403, 200, 403, 401, 401, 401),
    ("GET", "/api/v1/instances"): (200, 200, 200, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/routes"): (200, 200, 200, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/routes/prometheus"): (200, 200, 200, 403, 403, 401, 401, 401),
    ("POST", "/api/v1/instances"): (201, 201, 201, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/instances/{instance_id}"): (200, 200, 404, 403, 403, 401, 401, 401),
    ("DELETE", "/api/v1/instances/{instance_id}"): (204, 204, 404, 403, 403, 401, 401, 401),
    ("PATCH", "/api/v1/instances/{instance_id}"): (200, 200, 404, 403, 403, 401, 401, 401),
    ("POST", "/api/v1/instances/{instance_id}/snapshot"): (409, 409, 404, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/instances/{instance_id}/logs"): (200, 200, 404, 403, 403, 401, 401, 401),
    ("POST", "/api/v1/instances/{instance_id}/assign"): (409, 403, 403, 403, 403, 401, 401, 401),
    ("POST", "/api/v1/failovers"): (202, 202, 404, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/failovers"): (200, 200, 200, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/failovers/{failover_id}"): (200, 200, 404, 403, 403, 401, 401, 401),
    ("POST", "/api/v1/failovers/{failover_id}/complete"): (200, 403, 403, 403, 403, 401, 401, 401),
    ("POST", "/api/v1/failover/execute"): (200, 200, 404, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/failover/readiness/{machine_id}"): (200, 200, 404, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/failover/status/{machine_id}"): (200, 200, 404, 403, 403, 401, 401, 401),
    ("POST", "/api/v1/failover/test/{machine_id}"): (200, 200, 404, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/failover/strategies"): (200, 200, 200, 403, 403, 401, 401, 401),
    ("POST", "/api/v1/failover/regional-volume/create"): (200, 200, 200, 403, 403, 401, 401, 401),
    ("POST", "/api/v1/failover/regional-volume/failover"): (409, 409, 404, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/failover/regional-volume/list"): (200, 200, 200, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/failover/regional-volume/search/{region}"): (200, 200, 200, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/failover/regional-volume/{volume_id}"): (200, 200, 404, 403, 403, 401, 401, 401),
    ("DELETE", "/api/v1/failover/regional-volume/{volume_id}"): (204, 204, 404, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/region-groups"): (200, 200, 200, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/region-groups/{group_id}"): (200, 200, 200, 403, 403, 401, 401, 401),
    ("PUT", "/api/v1/region-groups/{group_id}"): (200, 200, 200, 403, 403, 401, 401, 401),
    ("GET", "/healthz"): (200, 200, 200, 200, 200, 200, 200, 200),
    ("GET", "/livez"): (200, 200, 200, 200, 200, 200, 200, 200),
    ("GET", "/readyz"): (200, 200, 200, 200, 200, 200, 200, 200),
    ("GET", "/metrics"): (200, 200, 200, 200, 200, 200, 200, 200),
    ("GET", "/api/v1/leader"): (200, 200, 200, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/status"): (200, 200, 200, 403, 403, 401, 401, 401),
    # The agent goes to a machine that may join, and to anyone with a token; only a rented
    # machine's one-time token reports a failed boot.
    ("GET", "/api/v1/agent/bundle"): (200, 200, 200, 200, 200, 401, 401, 200),
    ("POST", "/api/v1/agent/failed"): (401, 401, 401, 401, 401, 401, 401, 401),
    ("POST", "/api/v1/join-tokens"): (201, 403, 403, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/join-tokens"): (200, 403, 403, 403, 403, 401, 401, 401),
    ("DELETE", "/api/v1/join-tokens/{token_id}"): (200, 403, 403, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/tokens"): (200, 403, 403, 403, 403, 401, 401, 401),
    ("POST", "/api/v1/tokens"): (201, 403, 403, 403, 403, 401, 401, 401),
    ("DELETE", "/api/v1/tokens/{token_id}"): (204, 403, 403, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/regions/paused"): (200, 403, 403, 403, 403, 401, 401, 401),
    ("POST", "/api/v1/regions/{region}/resume"): (404, 403, 403, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/events"): (200, 403, 403, 403, 403, 401, 401, 401),
    # Only a join token (the joiner's) or a rented machine's one-time token joins; every other
    # token is unknown to it.
    ("POST", "/api/v1/nodes/join"): (401, 401, 401, 401, 401, 401, 401, 201),
    ("GET", "/api/v1/provider/offers"): (200, 200, 200, 403, 403, 401, 401, 401),
    ("GET", "/api/v1/provider/machines"): (200, 403, 403, 403, 403, 401, 401, 401),
    ("POST", "/api/v1/provider/machines/{rental_id}/release"): (404, 403, 403, 403, 403, 401, 401, 401),
}


def test_every_operation_has_a_row(tmp_path: Path) -> None:
    runtime = make_runtime(f"sqlite:///{tmp_path / 'schema.db'}", FakeClock(), tmp_path)
    schema = runtime.app.openapi()
    operations = {(m.upper(), path) for path, ops in schema["paths"].items() for m in ops}
    rows = {(m, p.split(" (")[0]) for m, p in MATRIX}
    assert operations - rows == set(), "operations without a row in MATRIX: decide who may call them"
    assert rows - operations == set(), "rows for operations that no longer exist"
    assert MATRIX.keys() == REQUESTS.keys()


@pytest.mark.parametrize("operation", list(MATRIX), ids=lambda op: f"{op[0]} {op[1]}")
def test_each_role_gets_what_the_table_says(tmp_path: Path, operation: tuple[str, str]) -> None:
    expected = dict(zip(ROLES, MATRIX[operation], strict=True))
    assert outcomes(tmp_path, operation) == expected
