from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.pool import Pool


def test_a_silent_node_goes_offline_and_its_instances_come_back_elsewhere_with_a_higher_epoch(
    pool: Pool,
) -> None:
    n1, n2, n3 = pool.node("n1"), pool.node("n2"), pool.node("n3")
    pool.beat(n1, cpu=0.0)  # best score: instances go to n1
    pool.beat(n2, cpu=0.3)
    pool.beat(n3, cpu=0.3)
    web, db = pool.instance("web"), pool.instance("db", failover_enabled=False)
    pool.beat_twice(n1)
    assert set(n1.running) == {web["id"], db["id"]}

    pool.elapse(6)  # n1 stays silent past offline_after (5 s)
    pool.beat(n2)
    pool.beat(n3)
    outcome = pool.cycle()
    assert outcome.monitor is not None
    assert outcome.monitor.offline_nodes == ["n1"]
    assert [str(f.instance_id) for f in outcome.monitor.failovers] == [web["id"]]
    assert outcome.executor is not None
    assert [s.split()[1] for s in outcome.executor.steps] == ["backing_up", "migrating", "restoring"]
    assert outcome.executor.ended == []

    moved = pool.get(f"/api/v1/instances/{web['id']}")
    assert moved["node_id"] in (n2.id, n3.id)
    assert moved["epoch"] == 2
    failover = pool.get(f"/api/v1/failovers?instance_id={web['id']}")[0]
    assert (failover["status"], failover["reason"]) == ("restoring", "node_failure")

    assert failover["detection_s"] == 6.0  # from n1's last heartbeat to the failover opening
    assert failover["downtime_s"] is None  # not serving again yet
    pool.clock.advance(1)
    pool.beat_twice(n2, n3)
    ended = pool.cycle().executor
    assert ended is not None
    assert [(str(f.id), f.status.value) for f in ended.ended] == [(failover["id"], "completed")]
    failover = pool.get(f"/api/v1/failovers/{failover['id']}")
    assert failover["status"] == "completed"
    assert failover["downtime_s"] == 7.0  # the outage a client saw, not the failover's own time
    assert failover["timings"]["total_ms"] == 1000.0
    assert set(failover["timings"]) >= {
        "pending_ms",
        "backing_up_ms",
        "migrating_ms",
        "restoring_ms",
        "total_ms",
    }
    assert pool.get(f"/api/v1/instances/{db['id']}")["node_id"] == n1.id  # failover disabled: stays


def test_a_node_that_comes_back_is_told_to_stop_what_now_runs_elsewhere(pool: Pool) -> None:
    n1, n2, web = pool.two_nodes_running_web()
    pool.elapse(6)
    pool.beat(n2)
    pool.cycle()
    pool.beat_twice(n2)
    pool.cycle()

    stale_copy = dict(n1.running)
    reply = pool.beat(n1)  # n1 reports the old epoch running
    assert reply["status"] == "online"
    assert reply["desired"] == []
    assert stale_copy == {web["id"]: 1}
    instance = pool.get(f"/api/v1/instances/{web['id']}")
    assert (instance["node_id"], instance["epoch"], instance["state"]) == (n2.id, 2, "running")


def test_manual_failover_stops_the_source_before_the_target_gets_the_instance(
    pool: Pool, client: TestClient
) -> None:
    n1, n2, web = pool.two_nodes_running_web()

    response = client.post("/api/v1/failovers", json={"instance_id": web["id"]})
    assert response.status_code == 202
    failover = response.json()
    assert (failover["status"], failover["reason"]) == ("pending", "manual")
    assert client.post("/api/v1/failovers", json={"instance_id": web["id"]}).status_code == 409

    pool.cycle()
    assert pool.get(f"/api/v1/failovers/{failover['id']}")["status"] == "backing_up"
    assert pool.beat(n2)["desired"] == []  # the target has nothing yet
    assert pool.beat(n1)["desired"] == []  # the source is told to stop
    pool.cycle()
    assert (
        pool.get(f"/api/v1/failovers/{failover['id']}")["status"] == "backing_up"
    )  # not yet reported stopped
    pool.beat(n1)  # reports it no longer runs
    pool.cycle()
    assert pool.get(f"/api/v1/failovers/{failover['id']}")["status"] == "restoring"
    assert [d["epoch"] for d in pool.beat(n2)["desired"]] == [2]
    pool.beat(n2)
    pool.cycle()
    assert pool.get(f"/api/v1/failovers/{failover['id']}")["status"] == "completed"


def test_a_target_that_never_reports_is_replaced_then_the_failover_gives_up(pool: Pool) -> None:
    nodes = [pool.node(f"n{i}") for i in range(5)]
    for i, n in enumerate(nodes):
        pool.beat(n, cpu=i * 0.1)
    web = pool.instance("web")
    pool.beat_twice(nodes[0])
    pool.elapse(6)
    for n in nodes[1:]:
        pool.beat(n)
    pool.cycle()
    epochs = [pool.get(f"/api/v1/instances/{web['id']}")["epoch"]]
    for _ in range(3):  # the targets heartbeat but never start it (restore_timeout 10 s)
        pool.clock.advance(11)
        for n in nodes[1:]:
            pool.client.post(
                f"/api/v1/nodes/{n.id}/heartbeat",
                json={"cpu_load": 0.1, "memory_load": 0.1},
                headers={"Authorization": f"Bearer {n.token}"},
            )
        pool.cycle()
        epochs.append(pool.get(f"/api/v1/instances/{web['id']}")["epoch"])
    failover = pool.get(f"/api/v1/failovers?instance_id={web['id']}")[0]
    assert failover["status"] == "failed"
    assert failover["error"].endswith("gave up: cpu_standby tried 3 node(s)")
    assert [a["strategy"] for a in failover["attempt_log"]] == ["cpu_standby"] * 3
    assert len(set(failover["tried_node_ids"])) == 3
    assert epochs == [2, 3, 4, 4]


def test_no_room_anywhere_fails_the_failover_with_the_reason(pool: Pool) -> None:
    n1, n2 = pool.node("n1"), pool.node("n2", max_instances=1)
    pool.beat(n2, cpu=0.0)
    pool.beat(n1, cpu=0.5)
    assert pool.instance("filler")["node_id"] == n2.id  # n2 is now full
    web = pool.instance("web")
    assert web["node_id"] == n1.id
    pool.elapse(6)
    pool.beat(n2)
    pool.cycle()
    failover = pool.get(f"/api/v1/failovers?instance_id={web['id']}")[0]
    assert failover["status"] == "failed"
    assert failover["error"] == "gave up: no eligible node (1 excluded, 1 full)"


def test_complete_follows_the_state_machine(pool: Pool, client: TestClient) -> None:
    pool.beat(pool.node("n1"))
    pool.beat(pool.node("n2"))
    web = pool.instance("web")
    failover = client.post("/api/v1/failovers", json={"instance_id": web["id"]}).json()
    refused = client.post(f"/api/v1/failovers/{failover['id']}/complete", json={"success": True})
    assert refused.status_code == 409
    assert "pending to completed" in refused.json()["detail"]
    aborted = client.post(
        f"/api/v1/failovers/{failover['id']}/complete", json={"success": False, "error": "operator abort"}
    )
    assert aborted.status_code == 200
    assert (aborted.json()["status"], aborted.json()["error"]) == ("failed", "operator abort")
    again = client.post(f"/api/v1/failovers/{failover['id']}/complete", json={"success": False})
    assert again.status_code == 409


def test_draining_a_node_moves_its_instances_and_stops_placements_on_it(
    pool: Pool, client: TestClient
) -> None:
    n1, n2, web = pool.two_nodes_running_web(failover_enabled=False)
    client.patch(f"/api/v1/nodes/{n1.id}", json={"status": "draining"})
    pool.cycle()
    failover = pool.get(f"/api/v1/failovers?instance_id={web['id']}")[0]
    assert failover["reason"] == "maintenance"
    pool.beat_twice(n1)  # learns it must stop, then reports it stopped
    pool.cycle()
    pool.beat_twice(n2)
    pool.cycle()
    assert pool.get(f"/api/v1/instances/{web['id']}")["node_id"] == n2.id
    assert pool.instance("api")["node_id"] == n2.id  # n1 has a better score but is draining


def test_a_requested_target_is_used(pool: Pool, client: TestClient) -> None:
    n1, n2, n3 = pool.node("n1"), pool.node("n2"), pool.node("n3")
    pool.beat(n1, cpu=0.0)
    pool.beat(n2, cpu=0.1)
    pool.beat(n3, cpu=0.9)
    web = pool.instance("web")
    bad = client.post("/api/v1/failovers", json={"instance_id": web["id"], "target_node_id": n1.id})
    assert bad.status_code == 409
    response = client.post("/api/v1/failovers", json={"instance_id": web["id"], "target_node_id": n3.id})
    assert response.status_code == 202
    pool.cycle()
    assert pool.get(f"/api/v1/instances/{web['id']}")["node_id"] == n1.id  # n1 may have started it
    pool.beat_twice(n1)  # learns to release it, then reports it stopped
    pool.cycle()
    assert pool.get(f"/api/v1/instances/{web['id']}")["node_id"] == n3.id


def test_assign_moves_only_an_instance_whose_node_is_offline(pool: Pool, client: TestClient) -> None:
    n1, n2 = pool.node("n1"), pool.node("n2")
    pool.beat(n1, cpu=0.0)
    pool.beat(n2, cpu=0.5)
    web = pool.instance("web", failover_enabled=False)
    refused = client.post(f"/api/v1/instances/{web['id']}/assign", json={"node_id": n2.id})
    assert refused.status_code == 409
    pool.elapse(6)
    pool.beat(n2)
    pool.cycle()
    moved = client.post(f"/api/v1/instances/{web['id']}/assign", json={"node_id": n2.id})
    assert moved.status_code == 200
    assert (moved.json()["node_id"], moved.json()["epoch"]) == (n2.id, 2)
    assert pool.get(f"/api/v1/nodes/{n2.id}")["current_instances"] == 1
    assert pool.get(f"/api/v1/nodes/{n1.id}")["current_instances"] == 0


def test_only_an_admin_may_start_an_instance_empty_and_never_while_it_runs(pool: Pool) -> None:
    n1, n2, web = pool.two_nodes_running_web()
    alice = pool.client.post("/api/v1/tokens", json={"role": "user", "subject": "alice"}).json()
    as_alice = {"Authorization": f"Bearer {alice['token']}"}
    body = {"instance_id": web["id"], "start_empty": True}
    mine = pool.client.post(
        "/api/v1/instances", json={"name": "hers", "spec": {"command": ["x"]}}, headers=as_alice
    )
    refused = pool.client.post(
        "/api/v1/failovers", json={**body, "instance_id": mine.json()["id"]}, headers=as_alice
    )
    assert refused.status_code == 403
    assert "only an admin" in refused.text
    running = pool.client.post("/api/v1/failovers", json=body)
    assert running.status_code == 409
    assert "start_empty" in running.text
    assert pool.get(f"/api/v1/failovers?instance_id={web['id']}") == []  # nothing half-written

    n1.running.clear()  # its runner failed: no snapshot could be restored
    pool.client.post(
        f"/api/v1/nodes/{n1.id}/heartbeat",
        json={
            "cpu_load": 0.1,
            "memory_load": 0.1,
            "instances": [{"id": web["id"], "epoch": 1, "state": "failed"}],
        },
        headers={"Authorization": f"Bearer {n1.token}"},
    )
    accepted = pool.client.post("/api/v1/failovers", json=body)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["start_empty"] is True
    assert pool.get(f"/api/v1/instances/{web['id']}")["start_empty"] is True
    pool.cycle()
    pool.cycle()
    [desired] = pool.beat(n2)["desired"]
    assert (desired["id"], desired["start_empty"]) == (web["id"], True)
