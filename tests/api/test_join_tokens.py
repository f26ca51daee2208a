"""Join tokens and token subjects, on both stores: a machine joins without the admin token, and a
user cannot be named into an admin's instances."""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from takeover.main import Runtime
from takeover.testing import FakeClock


def made(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/join-tokens", json={"region": "eu", **body})
    assert response.status_code == 201, response.text
    token: dict[str, Any] = response.json()
    return token


def join(client: TestClient, token: str, name: str, **body: Any) -> Any:
    return client.post(
        "/api/v1/nodes/join",
        json={"name": name, "base_url": "http://127.0.0.1:9", **body},
        headers={"Authorization": f"Bearer {token}"},
    )


def test_a_join_token_registers_nodes_of_its_region_with_tokens_of_their_own(client: TestClient) -> None:
    ticket = made(client, max_uses=2)
    assert ticket["token"].startswith("tkj_")
    assert (ticket["uses"], ticket["live"]) == (0, True)
    first = join(client, ticket["token"], "m1")
    assert first.status_code == 201, first.text
    node = first.json()
    assert node["region"] == "eu"
    assert node["api_token"] != ticket["token"]
    beat = client.post(
        f"/api/v1/nodes/{node['id']}/heartbeat",
        json={"cpu_load": 0.1, "memory_load": 0.1},
        headers={"Authorization": f"Bearer {node['api_token']}"},
    )
    assert beat.status_code == 200
    # The join token is not a credential of the API: it registers nodes and nothing else.
    assert (
        client.get("/api/v1/nodes", headers={"Authorization": f"Bearer {ticket['token']}"}).status_code == 401
    )
    assert join(client, ticket["token"], "m2", region="eu").status_code == 201
    used_up = join(client, ticket["token"], "m3")
    assert used_up.status_code == 401
    assert "used up" in used_up.json()["detail"]
    (listed,) = client.get("/api/v1/join-tokens?ended=true").json()
    assert (listed["uses"], listed["live"]) == (2, False)
    assert client.get("/api/v1/join-tokens").json() == []  # only live ones by default
    assert "token" not in listed


def test_a_refused_join_uses_nothing(client: TestClient) -> None:
    ticket = made(client)
    wrong = join(client, ticket["token"], "m1", region="us")
    assert wrong.status_code == 403
    assert "region eu, not us" in wrong.json()["detail"]
    assert (
        client.post(
            "/api/v1/nodes", json={"name": "taken", "region": "eu", "base_url": "http://127.0.0.1:9"}
        ).status_code
        == 201
    )
    assert join(client, ticket["token"], "taken").status_code == 409
    assert join(client, ticket["token"], "m1").status_code == 201  # its one use was still there


def test_a_join_token_expires_and_can_be_revoked(client: TestClient, clock: FakeClock) -> None:
    short = made(client, ttl_seconds=60)
    clock.advance(61)
    expired = join(client, short["token"], "late")
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]
    revoked = made(client, max_uses=5)
    gone = client.delete(f"/api/v1/join-tokens/{revoked['id']}")
    assert gone.status_code == 200
    assert gone.json()["revoked_at"] is not None
    refused = join(client, revoked["token"], "m1")
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]
    assert client.delete(f"/api/v1/join-tokens/{revoked['id']}").status_code == 404
    assert join(client, "tkj_made_up", "m2").status_code == 401


def test_only_a_join_token_s_hash_is_stored(client: TestClient, runtime: Runtime) -> None:
    ticket = made(client)
    with runtime.store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM join_tokens")).all()
    (row,) = rows
    assert ticket["token"] not in repr(row)
    assert row.token_hash == hashlib.sha256(ticket["token"].encode()).hexdigest()


def test_bad_join_token_requests_name_the_field(client: TestClient) -> None:
    for body, field in (
        ({"region": "eu", "ttl_seconds": 0}, "ttl_seconds"),
        ({"region": "eu", "max_uses": 0}, "max_uses"),
        ({"region": "e u"}, "region"),
        ({}, "region"),
        ({"region": "eu", "uses": 2}, "uses"),
    ):
        response = client.post("/api/v1/join-tokens", json=body)
        assert response.status_code == 422, body
        assert field in response.text
    assert client.delete("/api/v1/join-tokens/not-an-id").status_code == 422


def test_a_user_token_names_a_user_who_is_no_admin(client: TestClient) -> None:
    for subject in ("admin", "Admin"):
        refused = client.post("/api/v1/tokens", json={"role": "user", "subject": subject})
        assert refused.status_code == 409
        assert "reserved for admins" in refused.json()["detail"]
    assert client.post("/api/v1/tokens", json={"role": "user", "subject": "ops"}).status_code == 201
    second = client.post("/api/v1/tokens", json={"role": "admin", "subject": "ops"})
    assert second.status_code == 409
    assert second.json()["field"] == "subject"
    assert client.post("/api/v1/tokens", json={"role": "admin", "subject": "root"}).status_code == 201
    assert client.post("/api/v1/tokens", json={"role": "user", "subject": "root"}).status_code == 409
    assert client.post("/api/v1/tokens", json={"role": "user", "subject": "ops"}).status_code == 201
    missing = client.post("/api/v1/tokens", json={"role": "user"})
    assert missing.status_code == 422
    assert "subject" in missing.text
