from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.pool import Pool


def user(client: TestClient, name: str) -> dict[str, str]:
    response = client.post("/api/v1/tokens", json={"role": "user", "subject": name})
    assert response.status_code == 201
    return {"Authorization": f"Bearer {response.json()['token']}"}


def test_missing_or_unknown_tokens_are_401(client: TestClient) -> None:
    assert client.get("/api/v1/nodes", headers={"Authorization": ""}).status_code == 401
    response = client.get("/api/v1/nodes", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_users_see_only_online_nodes_and_cannot_manage_them(pool: Pool, client: TestClient) -> None:
    alice = user(client, "alice")
    pool.node("up")
    down = pool.node("down")
    client.patch(f"/api/v1/nodes/{down.id}", json={"status": "maintenance"})
    assert [n["name"] for n in client.get("/api/v1/nodes", headers=alice).json()] == ["up"]
    assert client.get(f"/api/v1/nodes/{down.id}", headers=alice).status_code == 404
    assert client.get("/api/v1/nodes?status=maintenance", headers=alice).json() == []
    forbidden = client.post(
        "/api/v1/nodes", json={"name": "x", "region": "r", "base_url": "http://127.0.0.1:1"}, headers=alice
    )
    assert forbidden.status_code == 403
    assert client.post("/api/v1/nodes/check-offline", headers=alice).status_code == 403


def test_users_see_only_their_own_instances_and_failovers(pool: Pool, client: TestClient) -> None:
    alice, bob = user(client, "alice"), user(client, "bob")
    pool.node("n1")
    pool.node("n2")
    mine = client.post(
        "/api/v1/instances", json={"name": "web", "spec": {"command": ["true"]}}, headers=alice
    ).json()
    assert mine["owner"] == "alice"
    theirs = client.post(
        "/api/v1/instances", json={"name": "web", "spec": {"command": ["true"]}}, headers=bob
    ).json()
    assert [i["id"] for i in client.get("/api/v1/instances", headers=alice).json()] == [mine["id"]]
    assert client.get(f"/api/v1/instances/{theirs['id']}", headers=alice).status_code == 404
    assert client.delete(f"/api/v1/instances/{theirs['id']}", headers=alice).status_code == 404
    assert (
        client.post("/api/v1/failovers", json={"instance_id": theirs["id"]}, headers=alice).status_code == 404
    )
    failover = client.post("/api/v1/failovers", json={"instance_id": theirs["id"]}, headers=bob).json()
    assert client.get(f"/api/v1/failovers/{failover['id']}", headers=alice).status_code == 404
    assert client.get("/api/v1/failovers", headers=alice).json() == []
    assert len(client.get("/api/v1/instances").json()) == 2  # the admin sees all


def test_node_tokens_may_only_heartbeat_as_themselves(pool: Pool, client: TestClient) -> None:
    a, b = pool.node("a"), pool.node("b")
    as_a = {"Authorization": f"Bearer {a.token}"}
    beat = {"cpu_load": 0.1, "memory_load": 0.1}
    assert client.post(f"/api/v1/nodes/{b.id}/heartbeat", json=beat, headers=as_a).status_code == 403
    assert (
        client.post(f"/api/v1/nodes/{a.id}/heartbeat", json=beat).status_code == 403
    )  # admin is not the node
    assert client.get("/api/v1/instances", headers=as_a).status_code == 403
    assert client.post("/api/v1/nodes/select", json={}, headers=as_a).status_code == 403
    assert pool.get(f"/api/v1/nodes/{b.id}")["last_heartbeat_at"] is None


def test_a_revoked_token_is_refused_at_the_next_request(client: TestClient) -> None:
    created = client.post("/api/v1/tokens", json={"role": "user", "subject": "carol"}).json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/api/v1/instances", headers=headers).status_code == 200
    assert client.delete(f"/api/v1/tokens/{created['id']}").status_code == 204
    assert client.get("/api/v1/instances", headers=headers).status_code == 401
    assert "token" not in client.get("/api/v1/tokens").json()[0]
