from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.pool import NodeHandle, Pool


def test_register_shows_the_token_once_and_stores_only_its_hash(pool: Pool, client: TestClient) -> None:
    node = pool.node("n1")
    assert node.token.startswith("tko_")
    listed = client.get(f"/api/v1/nodes/{node.id}").json()
    assert "api_token" not in listed
    assert node.token not in client.get("/api/v1/nodes").text
    with pool.runtime.store.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT api_token_hash FROM nodes").scalar_one()
    assert stored != node.token
    assert len(stored) == 64


def test_duplicate_node_name_is_a_conflict_naming_the_field(pool: Pool, client: TestClient) -> None:
    pool.node("n1")
    response = client.post(
        "/api/v1/nodes", json={"name": "n1", "region": "r1", "base_url": "http://127.0.0.1:1"}
    )
    assert response.status_code == 409
    assert response.json()["field"] == "name"
    assert len(client.get("/api/v1/nodes").json()) == 1


def test_heartbeat_scores_the_node_and_returns_its_desired_state(pool: Pool) -> None:
    node = pool.node("n1")
    reply = pool.beat(node, cpu=0.5, memory=0.5, latency=100)
    assert reply["health_score"] == 55.0
    assert reply["status"] == "online"
    assert reply["desired"] == []
    inst = pool.instance("web")
    desired = pool.beat(node)["desired"]
    assert [(d["id"], d["epoch"], d["spec"]["command"]) for d in desired] == [
        (inst["id"], 1, ["sleep", "60"])
    ]
    pool.beat(node)
    assert pool.get(f"/api/v1/instances/{inst['id']}")["state"] == "running"


def test_a_report_about_a_stale_epoch_changes_nothing(pool: Pool, client: TestClient) -> None:
    node = pool.node("n1")
    inst = pool.instance("web")
    client.post(
        f"/api/v1/nodes/{node.id}/heartbeat",
        json={
            "cpu_load": 0,
            "memory_load": 0,
            "instances": [{"id": inst["id"], "epoch": 0, "state": "running"}],
        },
        headers={"Authorization": f"Bearer {node.token}"},
    )
    assert pool.get(f"/api/v1/instances/{inst['id']}")["state"] == "assigned"


def test_filters_by_status_and_region(pool: Pool, client: TestClient) -> None:
    pool.node("a", region="br")
    b = pool.node("b", region="us")
    client.patch(f"/api/v1/nodes/{b.id}", json={"status": "maintenance"})
    assert [n["name"] for n in pool.get("/api/v1/nodes?region=br")] == ["a"]
    assert [n["name"] for n in pool.get("/api/v1/nodes?status=maintenance")] == ["b"]


def test_select_returns_the_best_node_or_503_with_the_reason(pool: Pool, client: TestClient) -> None:
    a, b = pool.node("a"), pool.node("b")
    pool.beat(a, cpu=0.9)
    pool.beat(b, cpu=0.1)
    assert client.post("/api/v1/nodes/select", json={}).json()["name"] == "b"
    assert client.post("/api/v1/nodes/select", json={"exclude": [b.id]}).json()["name"] == "a"
    response = client.post("/api/v1/nodes/select", json={"exclude": [a.id, b.id]})
    assert response.status_code == 503
    assert response.json()["detail"] == "no eligible node (2 excluded)"


def test_delete_is_refused_while_instances_are_on_the_node(pool: Pool, client: TestClient) -> None:
    node = pool.node("n1")
    inst = pool.instance("web")
    assert client.delete(f"/api/v1/nodes/{node.id}").status_code == 409
    assert client.delete(f"/api/v1/instances/{inst['id']}").status_code == 204
    assert client.delete(f"/api/v1/nodes/{node.id}").status_code == 204
    assert client.get(f"/api/v1/nodes/{node.id}").status_code == 404


def test_a_deleted_node_can_no_longer_heartbeat(pool: Pool, client: TestClient) -> None:
    node = pool.node("n1")
    client.delete(f"/api/v1/nodes/{node.id}")
    response = client.post(
        f"/api/v1/nodes/{node.id}/heartbeat",
        json={"cpu_load": 0, "memory_load": 0},
        headers={"Authorization": f"Bearer {node.token}"},
    )
    assert response.status_code == 401


def test_offline_cannot_be_set_by_hand(pool: Pool, client: TestClient) -> None:
    node = pool.node("n1")
    response = client.patch(f"/api/v1/nodes/{node.id}", json={"status": "offline"})
    assert response.status_code == 422
    assert pool.get(f"/api/v1/nodes/{node.id}")["status"] == "online"


def test_patch_changes_priority_capacity_and_labels(pool: Pool, client: TestClient) -> None:
    node = pool.node("n1")
    response = client.patch(
        f"/api/v1/nodes/{node.id}",
        json={"priority": 5, "max_instances": 3, "labels": {"gpu_name": "RTX_4090"}},
    )
    assert response.status_code == 200
    assert (response.json()["priority"], response.json()["max_instances"], response.json()["labels"]) == (
        5,
        3,
        {"gpu_name": "RTX_4090"},
    )


def test_metrics_expose_pool_counts(pool: Pool, client: TestClient) -> None:
    pool.beat(pool.node("n1"))
    text = client.get("/metrics").text
    assert 'takeover_nodes{status="online"} 1.0' in text
    assert "takeover_heartbeats_total 1.0" in text


def test_instances_created_at_once_spread_over_equal_nodes(pool: Pool) -> None:
    """No heartbeat between them: each placement counts against its node before the next."""
    nodes = [pool.node(f"n{i}") for i in range(3)]
    for n in nodes:
        pool.beat(n)
    placed = [pool.instance(f"web-{i}")["node_id"] for i in range(3)]
    assert sorted(placed) == sorted(n.id for n in nodes)


def test_a_runner_s_output_shipped_in_heartbeats_is_read_back_by_its_owner(
    pool: Pool, client: TestClient
) -> None:
    n1, n2 = pool.node("n1"), pool.node("n2")
    pool.beat(n1, cpu=0.0)
    pool.beat(n2, cpu=0.9)
    web = pool.instance("web")
    assert web["node_id"] == n1.id

    def ship(node: NodeHandle, epoch: int, text: str) -> None:
        report = {"id": web["id"], "epoch": epoch, "state": "running", "log": text}
        response = client.post(
            f"/api/v1/nodes/{node.id}/heartbeat",
            json={"cpu_load": 0.1, "memory_load": 0.1, "instances": [report]},
            headers={"Authorization": f"Bearer {node.token}"},
        )
        assert response.status_code == 200, response.text

    ship(n1, 1, "started\n")
    ship(n1, 1, "served one\n")
    ship(n1, 0, "a replaced runner's\n")  # not the current epoch: dropped
    ship(n2, 1, "not its node\n")  # n2 does not hold it: dropped
    page = client.get(f"/api/v1/instances/{web['id']}/logs").json()
    assert [c["text"] for c in page["chunks"]] == ["started\n", "served one\n"]
    assert {c["node_id"] for c in page["chunks"]} == {n1.id}
    ship(n1, 1, "later\n")
    newer = client.get(f"/api/v1/instances/{web['number']}/logs", params={"after": page["next"]}).json()
    assert [c["text"] for c in newer["chunks"]] == ["later\n"]
    bob = client.post("/api/v1/tokens", json={"role": "user", "subject": "bob"}).json()["token"]
    hidden = client.get(f"/api/v1/instances/{web['id']}/logs", headers={"Authorization": f"Bearer {bob}"})
    assert hidden.status_code == 404


def test_a_node_that_missed_a_heartbeat_is_shown_late_then_silent_with_its_age(pool: Pool) -> None:
    n1 = pool.node("n1")
    pool.beat(n1)

    def shown() -> tuple[str, str, float | None]:
        node = pool.get(f"/api/v1/nodes/{n1.id}")
        return node["status"], node["heard"], node["heard_ago_s"]

    assert shown() == ("online", "live", 0.0)
    pool.clock.advance(2)  # heartbeats every second here: one missed
    assert shown() == ("online", "late", 2.0)
    pool.clock.advance(2)  # past fence_after (3 s), not yet offline_after (5 s)
    assert shown() == ("online", "silent", 4.0)
    page = pool.client.get("/api/v1/nodes").json()
    assert page[0]["heard"] == "silent"
