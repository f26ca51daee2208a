"""Agent streams through the ASGI app on both stores: acks after the commit, pushes on a change,
and every refusal a close code with nothing written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from takeover.main import Runtime
from takeover.testing import FakeClock
from tests.api.pool import NodeHandle, Pool


def frame(node: NodeHandle, seq: int = 1, cpu: float = 0.1, **extra: Any) -> dict[str, Any]:
    """The same load as Pool.beat's, unless ``cpu`` says otherwise."""
    body = {"cpu_load": cpu, "memory_load": 0.1, "avg_latency_ms": 5.0, **extra}
    return {"type": "heartbeat", "seq": seq, "node_id": node.id, **body}


@contextmanager
def opened(client: TestClient, node: NodeHandle, token: str | None = None) -> Iterator[WebSocketTestSession]:
    headers = {"Authorization": f"Bearer {token or node.token}"}
    with client.websocket_connect(f"/api/v1/nodes/{node.id}/stream", headers=headers) as ws:
        yield ws


def closed_with(ws: WebSocketTestSession) -> tuple[int, str]:
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    return closed.value.code, closed.value.reason


def cpu_of(pool: Pool, node: NodeHandle) -> float:
    return float(pool.get(f"/api/v1/nodes/{node.id}")["cpu_load"])


def test_a_heartbeat_is_acknowledged_with_the_same_reply_as_over_http(pool: Pool, client: TestClient) -> None:
    node = pool.node("n1")
    pool.beat(node)
    web = pool.instance("web")
    over_http = pool.beat(node)
    with opened(client, node) as ws:
        ws.send_json(
            frame(node, seq=7, instances=[{"id": web["id"], "epoch": web["epoch"], "state": "running"}])
        )
        ack = ws.receive_json()
    assert ack["type"] == "ack"
    assert ack["seq"] == 7
    assert ack["reply"] == over_http
    assert [d["id"] for d in ack["reply"]["desired"]] == [web["id"]]
    assert pool.get(f"/api/v1/instances/{web['id']}")["state"] == "running"


def test_a_placement_is_pushed_to_the_node_s_stream_at_once(pool: Pool, client: TestClient) -> None:
    node = pool.node("n1")
    pool.beat(node)
    with client, opened(client, node) as ws:  # the app's lifespan runs PostgreSQL's LISTEN
        ws.send_json(frame(node))
        assert ws.receive_json()["reply"]["desired"] == []
        web = pool.instance("web")  # placed on n1, the only node
        pushed = ws.receive_json()
    assert pushed["type"] == "desired"
    assert pushed["seq"] is None
    assert [(d["id"], d["epoch"]) for d in pushed["reply"]["desired"]] == [(web["id"], web["epoch"])]


def test_a_lost_push_is_carried_by_the_next_heartbeat_reply(
    pool: Pool, client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = pool.node("n1")
    pool.beat(node)
    monkeypatch.setattr(runtime.services.pushes, "_wake", lambda _: None)  # every push lost
    with opened(client, node) as ws:
        ws.send_json(frame(node, seq=1))
        assert ws.receive_json()["reply"]["desired"] == []
        web = pool.instance("web")
        ws.send_json(frame(node, seq=2))
        ack = ws.receive_json()
    assert ack["type"] == "ack"
    assert ack["seq"] == 2
    assert [d["id"] for d in ack["reply"]["desired"]] == [web["id"]]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("{not json", "Invalid JSON"),
        (json.dumps({"type": "heartbeat", "seq": 1, "cpu_load": 0.5, "memory_load": 0.1}), "node_id"),
        ("CPU", "cpu_load"),
        ("EXTRA", "surprise: Extra inputs are not permitted"),
    ],
)
def test_a_malformed_frame_closes_the_stream_with_1007_and_writes_nothing(
    pool: Pool, client: TestClient, data: str, reason: str
) -> None:
    node = pool.node("n1")
    pool.beat(node, cpu=0.1)
    if data == "CPU":
        data = json.dumps(frame(node, cpu=1.5))
    elif data == "EXTRA":
        data = json.dumps(frame(node, cpu=0.5, surprise=True))
    with opened(client, node) as ws:
        ws.send_text(data)
        code, why = closed_with(ws)
    assert code == 1007
    assert reason in why
    assert cpu_of(pool, node) == 0.1


def test_a_frame_for_another_node_closes_the_stream_with_4403(pool: Pool, client: TestClient) -> None:
    n1, n2 = pool.node("n1"), pool.node("n2")
    pool.beat(n1, cpu=0.1)
    pool.beat(n2, cpu=0.1)
    with opened(client, n1) as ws:
        ws.send_json(frame(n2, cpu=0.9))
        code, why = closed_with(ws)
    assert code == 4403
    assert n2.id in why
    assert cpu_of(pool, n1) == cpu_of(pool, n2) == 0.1


def test_another_node_s_token_or_a_person_s_cannot_open_a_stream(pool: Pool, client: TestClient) -> None:
    n1, n2 = pool.node("n1"), pool.node("n2")
    for token, code in ((n2.token, 4403), ("admin-secret", 4403), ("made-up", 4401)):
        with opened(client, n1, token=token) as ws:
            assert closed_with(ws)[0] == code


def test_a_revoked_token_is_refused_at_open_and_closes_an_open_stream_at_its_next_heartbeat(
    pool: Pool, client: TestClient
) -> None:
    node = pool.node("n1")
    token_id = next(t["id"] for t in pool.get("/api/v1/tokens") if t["subject"] == node.id)
    with opened(client, node) as ws:
        ws.send_json(frame(node, seq=1))
        assert ws.receive_json()["type"] == "ack"
        assert client.delete(f"/api/v1/tokens/{token_id}").status_code == 204
        ws.send_json(frame(node, seq=2, cpu=0.8))
        code, why = closed_with(ws)
    assert code == 4401
    assert "revoked" in why
    assert cpu_of(pool, node) == 0.1
    with opened(client, node) as ws:
        assert closed_with(ws)[0] == 4401


def test_new_streams_over_the_accept_rate_are_told_to_retry_later(
    pool: Pool, client: TestClient, runtime: Runtime, clock: FakeClock
) -> None:
    node = pool.node("n1")
    services = runtime.services
    services._stream_accepts = services._stream_accepts.full(1.0, 2, clock.now())
    for _ in range(2):
        with opened(client, node) as ws:
            ws.send_json(frame(node))
            assert ws.receive_json()["type"] == "ack"
    with opened(client, node) as ws:
        assert closed_with(ws) == (1013, "too many new streams at once; retry later")
    clock.advance(1.0)
    with opened(client, node) as ws:
        ws.send_json(frame(node))
        assert ws.receive_json()["type"] == "ack"


def test_a_draining_replica_sends_its_streams_elsewhere(
    pool: Pool, client: TestClient, runtime: Runtime
) -> None:
    node = pool.node("n1")
    with opened(client, node) as ws:
        ws.send_json(frame(node, seq=1))
        assert ws.receive_json()["type"] == "ack"
        runtime.services.draining = True
        ws.send_json(frame(node, seq=2))
        assert ws.receive_json()["seq"] == 2  # acknowledged (committed), then sent away
        assert closed_with(ws)[0] == 1012
    with opened(client, node) as ws:
        assert closed_with(ws)[0] == 1012
