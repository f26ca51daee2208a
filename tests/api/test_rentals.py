"""Renting a machine when the pool has none, through the API and the Vast adapter, against the
fake marketplace (takeover.testing.fakevast: a paid API cannot run here).

The control plane runs in process on a fake clock; the marketplace is a real HTTP server; the
rented machines' agents are played by the test through the real join endpoint, with the
one-time token the renter sent the marketplace (tests/e2e/test_rentals.py runs real agents).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from takeover.domain.models import RentPolicy
from takeover.domain.rentals import BILLED, Rental, RentalState, label, spend
from takeover.main import Runtime
from takeover.ports import RentRequest
from takeover.testing import FakeClock
from takeover.testing.fakevast import API_KEY, FakeMachine, FakeVast, offer
from tests.api.pool import NodeHandle, Pool
from tests.conftest import make_runtime

POLICY = {"max_price": 1.0, "gpu_names": ["4090"]}


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeVast]:
    offers = [
        offer(101, "RTX 4090", 1, 0.30),
        offer(102, "RTX 4090", 1, 0.35),
        offer(103, "RTX 4090", 2, 0.60),
        offer(104, "RTX 4090", 1, 1.20),  # above every policy here
        offer(105, "A100 SXM4", 1, 0.20),  # cheapest, but not an accepted model
    ]
    with FakeVast(tmp_path / "vast", offers) as running:
        running.never_boot = {o["id"] for o in running.offers}  # the test plays the agents
        yield running


def _rent_settings(fake: FakeVast, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "vast",
        "vast_api_key": API_KEY,
        "vast_url": fake.url,
        "vast_regions": "r1=BR",
        "public_url": "http://127.0.0.1:9",
        "rent_max_hourly": 2.0,
        "rent_timeout": 30.0,
        "rent_join_timeout": 60.0,
        "rent_idle_grace": 120.0,
        "rent_pace": fake.pace,
        **extra,
    }


@pytest.fixture
def runtime(store_url: str, clock: FakeClock, tmp_path: Path, fake: FakeVast) -> Iterator[Runtime]:
    runtime = make_runtime(store_url, clock, tmp_path, **_rent_settings(fake))
    yield runtime
    runtime.store.engine.dispose()


def rent(pool: Pool) -> list[str]:
    """One pass of the leader's renter (in production its own loop beside the controllers)."""
    assert pool.runtime.controllers is not None
    assert pool.runtime.services.renter is not None
    token = pool.runtime.controllers.leadership.ensure(pool.clock.now())  # the lease, renewed
    return pool.runtime.services.renter.run_cycle(token)


def join(pool: Pool, machine: FakeMachine) -> NodeHandle:
    """What the machine's agent does: register with the token the renter gave the marketplace."""
    response = pool.client.post(
        "/api/v1/nodes/join",
        json={
            "name": machine.env["NODE_NAME"],
            "base_url": "http://127.0.0.1",
            "max_instances": 1,
            "containers": False,  # what the rented agent says (NODE_CONTAINER_RUNTIME=none)
            "image": machine.env.get("NODE_IMAGE"),
        },
        headers={"Authorization": f"Bearer {machine.env['TAKEOVER_JOIN_TOKEN']}"},
    )
    assert response.status_code == 201, response.text
    data = response.json()
    return NodeHandle(data["id"], data["name"], data["api_token"])


def lose_the_only_node(pool: Pool, **extra: Any) -> tuple[NodeHandle, dict[str, Any]]:
    n1 = pool.node("n1")
    pool.beat(n1)
    web = pool.instance("web", rent=POLICY, **extra)
    pool.beat_twice(n1)
    pool.elapse(6)  # n1 is silent past offline_after
    pool.cycle()
    return n1, web


def failed_over_to_a_rented_machine(
    pool: Pool, fake: FakeVast
) -> tuple[dict[str, Any], FakeMachine, NodeHandle]:
    """The only node dies, a machine is rented and joins, the instance runs there."""
    _, web = lose_the_only_node(pool)
    rent(pool)
    (machine,) = fake.live()
    rented = join(pool, machine)
    pool.cycle()
    pool.beat_twice(rented)
    pool.cycle()
    return web, machine, rented


def failover_of(pool: Pool, instance: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = pool.get(f"/api/v1/failovers?instance_id={instance['id']}")[0]
    return found


def test_a_failover_with_no_node_left_rents_the_cheapest_fitting_offer_and_runs_there(
    pool: Pool, fake: FakeVast
) -> None:
    _, web = lose_the_only_node(pool)
    assert failover_of(pool, web)["status"] == "migrating"  # waiting for a machine
    rent(pool)
    (machine,) = fake.live()
    assert machine.offer["id"] == 101  # the cheapest 4090 under $1/h; the A100 is not accepted
    assert machine.label is not None
    assert machine.label.startswith("takeover-")
    assert machine.env["NODE_REGION"] == "r1"
    assert "/api/v1/agent/bundle" in machine.onstart  # the agent comes from the control plane
    assert machine.env["NODE_CONTAINER_RUNTIME"] == "none"  # a rented machine is a container itself
    assert set(machine.nat.tcp) == {22, 20000, 20001}  # ssh, and two ports per instance it may take
    assert set(machine.nat.udp) == {7947}  # the witness
    pool.cycle()
    assert failover_of(pool, web)["status"] == "migrating"  # rented, not joined: nothing placed yet
    rented = join(pool, machine)
    pool.cycle()
    pool.beat_twice(rented)
    pool.cycle()
    failover = failover_of(pool, web)
    assert failover["status"] == "completed"
    assert failover["target_node_id"] == rented.id
    attempt = failover["attempt_log"][-1]
    assert attempt["rental"]["offer_id"] == "101"
    assert attempt["rental"]["price_per_hour"] == 0.30
    assert attempt["rental"]["rent_ms"] is not None
    assert attempt["rental"]["join_ms"] is not None
    node = pool.get(f"/api/v1/nodes/{rented.id}")
    assert node["region"] == "r1"
    assert node["labels"]["provider"] == "vast"
    answer = pool.runtime.services.orchestrator.response(
        pool.runtime.store.failovers.get(UUID(failover["id"]))
    )
    assert (answer["new_ssh_host"], answer["new_ssh_port"]) == ("127.0.0.1", machine.ssh_port)
    assert answer["new_gpu_id"] == f"vast:{machine.id}"
    assert answer["new_gpu_name"] == "RTX 4090"
    (held,) = pool.get("/api/v1/provider/machines")
    assert held["instances"] == ["web"]
    assert held["state"] == "joined"
    assert held["node_name"] == machine.env["NODE_NAME"]
    metrics = pool.client.get("/metrics").text
    assert 'takeover_rented_machines{state="joined"} 1.0' in metrics
    assert "takeover_rent_hourly_spend_dollars 0.3" in metrics


def test_an_offer_taken_meanwhile_or_refused_moves_on_to_the_next_offer(pool: Pool, fake: FakeVast) -> None:
    fake.gone = {101}
    fake.refuse = 1  # the next rent (offer 102) is declined by its host
    _, web = lose_the_only_node(pool)
    for _ in range(3):
        rent(pool)
        pool.cycle()
    (machine,) = fake.live()
    assert machine.offer["id"] == 103
    join(pool, machine)
    pool.cycle()
    log = failover_of(pool, web)["attempt_log"]
    rents = [a for a in log if a["strategy"] == "rent"]
    assert [a["rental"]["offer_id"] for a in rents] == ["101", "102"]
    assert "no longer available" in rents[0]["error"]
    assert "declined" in rents[1]["error"]
    assert log[-1]["rental"]["offer_id"] == "103"


def test_a_machine_whose_agent_never_joins_is_released_and_the_next_offer_tried(
    pool: Pool, fake: FakeVast
) -> None:
    _, _web = lose_the_only_node(pool)
    rent(pool)
    (first,) = fake.live()
    pool.clock.advance(61)  # past rent_join_timeout
    rent(pool)
    assert first.destroyed
    pool.cycle()  # the failover wants another
    rent(pool)
    (second,) = fake.live()
    assert second.offer["id"] == 102
    failed = [r for r in pool.runtime.store.rentals.find() if r.state is RentalState.FAILED]
    assert [r.error for r in failed] == ["its agent did not join within 60 s"]


def test_a_machine_the_marketplace_shows_stopped_before_it_joined_is_given_up_at_once(
    pool: Pool, fake: FakeVast
) -> None:
    """Not after the whole join timeout: Vast shows a machine that failed to boot as exited."""
    _, _web = lose_the_only_node(pool)
    rent(pool)
    (first,) = fake.live()
    first.status = "exited"  # its image would not start
    rent(pool)
    assert first.destroyed  # given back: nothing bills for a machine that will never join
    failed = [r for r in pool.runtime.store.rentals.find() if r.state is RentalState.FAILED]
    assert [r.error for r in failed] == ["the marketplace shows the machine exited"]
    pool.cycle()  # the failover wants another
    rent(pool)
    assert [m.offer["id"] for m in fake.live()] == [102]


def test_offers_above_the_price_are_never_rented_and_the_failover_says_why(
    pool: Pool, fake: FakeVast
) -> None:
    n1 = pool.node("n1")
    pool.beat(n1)
    web = pool.instance("web", rent={"max_price": 0.25, "gpu_names": ["4090"]})
    pool.beat_twice(n1)
    pool.elapse(6)
    pool.cycle()
    rent(pool)
    pool.cycle()
    failover = failover_of(pool, web)
    assert failover["status"] == "failed"
    assert "no offer at or under $0.25/h for 4090" in failover["error"]
    assert fake.live() == []


def test_an_instance_without_a_rent_policy_never_rents(pool: Pool, fake: FakeVast) -> None:
    n1 = pool.node("n1")
    pool.beat(n1)
    web = pool.instance("web")
    pool.beat_twice(n1)
    pool.elapse(6)
    pool.cycle()
    rent(pool)
    assert failover_of(pool, web)["status"] == "failed"
    assert fake.live() == []
    assert pool.runtime.store.rentals.find() == []


def test_the_budget_ends_a_failover_with_the_reason_and_counts_it(
    store_url: str, clock: FakeClock, tmp_path: Path, fake: FakeVast
) -> None:
    # brake_min_nodes: three nodes silent at once would otherwise pause failovers (the brake)
    runtime = make_runtime(
        store_url, clock, tmp_path, **_rent_settings(fake, rent_max_hourly=0.5, brake_min_nodes=10)
    )
    pool = Pool(TestClient(runtime.app, headers={"Authorization": "Bearer admin-secret"}), runtime, clock)
    nodes = [pool.node(f"n{i}", max_instances=1) for i in range(3)]
    for n in nodes:
        pool.beat(n)
    instances = [pool.instance(f"web{i}", rent=POLICY) for i in range(3)]
    for _ in range(2):
        for n in nodes:
            pool.beat(n)
    pool.elapse(6)
    pool.cycle()  # three failovers at once, each wanting a machine
    for _ in range(3):
        rent(pool)
        pool.cycle()
    assert len(fake.live()) == 1  # $0.30 fits in $0.50; a second machine would not
    outcomes = sorted(failover_of(pool, i)["status"] for i in instances)
    assert outcomes == ["failed", "failed", "migrating"]
    failed = [failover_of(pool, i) for i in instances if failover_of(pool, i)["status"] == "failed"]
    assert all("rent budget exhausted: $0.3/h of $0.5/h in use" in f["error"] for f in failed)
    assert 'takeover_rent_failures_total{reason="budget"} 2.0' in pool.client.get("/metrics").text
    runtime.store.engine.dispose()


@pytest.mark.usefixtures("fake")
def test_concurrent_intents_never_spend_more_than_the_budget(pool: Pool) -> None:
    """Many wanted rows asking at once, from threads, on both databases: the intent's
    transaction sums the spend, so together they stay within it."""
    store = pool.runtime.store
    offers = pool.runtime.services.orchestrator.market.offers("r1", None)  # type: ignore[union-attr]
    wanted = [
        store.rentals.want(
            UUID(int=i + 1), UUID(int=i + 1), "r1", RentPolicy(1.0, ("4090",)), "vast", pool.clock.now(), None
        )
        for i in range(12)
    ]
    results: list[object] = []

    def request(row: Any) -> None:
        results.append(
            store.rentals.request(row, offers, 1.0, f"{row.id.hex}{'0' * 32}", pool.clock.now(), None)
        )

    threads = [threading.Thread(target=request, args=(w,)) for w in wanted]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    billed = store.rentals.find(BILLED)
    assert spend(billed) <= 1.0
    assert len(billed) == 3  # 3 x $0.30 (each failover tries the cheapest it has not tried); a 4th: $1.20


def test_a_rent_whose_answer_was_lost_is_found_by_its_label_not_rented_twice(
    pool: Pool, fake: FakeVast
) -> None:
    """The control plane died after the marketplace made the machine and before the row said so."""
    _, web = lose_the_only_node(pool)
    store, renter = pool.runtime.store, pool.runtime.services.renter
    assert renter is not None
    (wanted,) = store.rentals.find([RentalState.WANTED])
    offers = renter.market.offers("r1", 1.0, ["4090"])
    requested = store.rentals.request(wanted, offers, 2.0, "a" * 64, pool.clock.now(), None)
    assert isinstance(requested, Rental)
    assert requested.state is RentalState.REQUESTED
    renter.market.rent(offers[0], RentRequest("img", {}, "", 8, label("takeover", wanted.id)))  # then died
    rent(pool)  # the next leader's renter
    (machine,) = fake.live()
    row = store.rentals.get(wanted.id)
    assert row is not None
    assert row.state is RentalState.RENTED
    assert row.machine_id == str(machine.id)
    rent(pool)
    assert len(fake.live()) == 1
    assert failover_of(pool, web)["status"] == "migrating"


def test_a_machine_no_live_rental_holds_is_released_by_the_sweep(pool: Pool, fake: FakeVast) -> None:
    renter = pool.runtime.services.renter
    assert renter is not None
    chosen = renter.market.offers("r1", None)[0]
    orphan = renter.market.rent(chosen, RentRequest("img", {}, "", 8, label("takeover", UUID(int=7))))
    mine_not = renter.market.rent(
        renter.market.offers("r1", None)[0], RentRequest("img", {}, "", 8, "someone-else")
    )
    steps = renter.sweep()
    assert [m.id for m in fake.live()] == [int(mine_not.machine_id)]
    assert any(orphan.machine_id in s for s in steps)


def test_an_idle_rented_machine_is_released_after_the_grace(pool: Pool, fake: FakeVast) -> None:
    web, machine, rented = failed_over_to_a_rented_machine(pool, fake)
    assert pool.client.delete(f"/api/v1/instances/{web['id']}").status_code == 204
    pool.beat(rented)
    rent(pool)  # idle from now
    pool.clock.advance(60)
    rent(pool)
    assert not machine.destroyed
    pool.clock.advance(61)
    rent(pool)
    assert machine.destroyed
    assert pool.client.get(f"/api/v1/nodes/{rented.id}").status_code == 404
    assert pool.get("/api/v1/provider/machines") == []
    (ended,) = pool.get("/api/v1/provider/machines?ended=true")
    assert ended["state"] == "released"
    assert ended["error"] == "idle for 120 s"
    assert ended["cost_so_far"] > 0


@pytest.mark.usefixtures("fake")
def test_provider_endpoints(pool: Pool, client: TestClient) -> None:
    n1 = pool.node("n1", labels={"price_per_hour": 0.05})
    pool.beat(n1)
    offers = pool.get("/api/v1/provider/offers?region=r1&gpu=4090&max_price=1")["offers"]
    assert [(o["source"], o["price_per_hour"]) for o in offers] == [
        ("vast", 0.30),
        ("vast", 0.35),
        ("vast", 0.60),
    ]
    everything = pool.get("/api/v1/provider/offers?region=r1")["offers"]
    assert everything[0]["source"] == "pool"
    assert {o["source"] for o in everything} == {"pool", "vast"}
    search = pool.get("/api/v1/failover/regional-volume/search/r1?gpu_name=4090")
    assert search["found"]
    assert [o["source"] for o in search["offers"]] == ["vast", "vast", "vast", "vast"]
    assert client.get("/api/v1/provider/offers").status_code == 422  # region is required
    assert client.post(f"/api/v1/provider/machines/{UUID(int=1)}/release").status_code == 404
    user = pool.client.post("/api/v1/tokens", json={"role": "user", "subject": "alice"}).json()["token"]
    as_user = {"Authorization": f"Bearer {user}"}
    assert client.get("/api/v1/provider/machines", headers=as_user).status_code == 403
    assert client.get("/api/v1/provider/offers?region=r1", headers=as_user).status_code == 200


def test_release_is_refused_while_an_instance_runs_there(pool: Pool, fake: FakeVast) -> None:
    _, machine, _ = failed_over_to_a_rented_machine(pool, fake)
    (held,) = pool.get("/api/v1/provider/machines")
    refused = pool.client.post(f"/api/v1/provider/machines/{held['id']}/release")
    assert refused.status_code == 409
    assert "drain the node first" in refused.json()["detail"]
    assert not machine.destroyed


def test_a_join_token_is_good_once(pool: Pool, fake: FakeVast) -> None:
    lose_the_only_node(pool)
    rent(pool)
    (machine,) = fake.live()
    join(pool, machine)
    again = pool.client.post(
        "/api/v1/nodes/join",
        json={"name": "another", "base_url": "http://127.0.0.1"},
        headers={"Authorization": f"Bearer {machine.env['TAKEOVER_JOIN_TOKEN']}"},
    )
    assert again.status_code == 401
    assert again.json()["detail"] == "unknown or used join token"
    assert (
        pool.client.post("/api/v1/nodes/join", json={"name": "x", "base_url": "http://h"}).status_code == 401
    )


def test_without_an_api_key_renting_is_off_and_the_pool_still_works(
    store_url: str, clock: FakeClock, tmp_path: Path, fake: FakeVast
) -> None:
    settings = _rent_settings(fake)
    settings.pop("vast_api_key")
    runtime = make_runtime(store_url, clock, tmp_path, **settings)
    assert runtime.services.renter is None
    pool = Pool(TestClient(runtime.app, headers={"Authorization": "Bearer admin-secret"}), runtime, clock)
    _, web = lose_the_only_node(pool)
    assert failover_of(pool, web)["status"] == "failed"  # nothing to rent from: as before
    runtime.store.engine.dispose()


def test_a_warm_instance_with_no_other_node_keeps_its_standby_on_a_rented_machine(
    pool: Pool, fake: FakeVast
) -> None:
    n1 = pool.node("n1")
    pool.beat(n1)
    web = pool.instance("web", rent=POLICY, failover_strategy="warm_pool")
    pool.beat_twice(n1)
    pool.cycle()  # no node for a standby: one is rented
    rent(pool)
    (machine,) = fake.live()
    spare = join(pool, machine)  # its join's cycle chooses it as the standby
    assert pool.get(f"/api/v1/instances/{web['id']}")["standby_node_id"] == spare.id
    pool.beat(spare)
    snapshot = "000000000001-20261203T000000000000Z-ab12"
    synced = pool.client.post(
        f"/api/v1/nodes/{spare.id}/heartbeat",
        json={"cpu_load": 0.1, "memory_load": 0.1, "standbys": [{"id": web["id"], "snapshot": snapshot}]},
        headers={"Authorization": f"Bearer {spare.token}"},
    )
    assert synced.status_code == 200, synced.text
    ready = pool.get(f"/api/v1/failover/readiness/{web['id']}")
    assert ready["warm_pool_ready"] is True
    assert ready["warm_pool_status"]["standby_machine"]["price_per_hour"] == 0.30
    pool.cycle()
    rent(pool)
    assert len(fake.live()) == 1  # it has its standby: nothing more is rented
    pool.elapse(6)  # n1 dies; spare beats on
    pool.beat(spare)
    pool.cycle()
    pool.beat_twice(spare)
    pool.cycle()
    failover = failover_of(pool, web)
    assert failover["status"] == "completed"
    assert failover["target_node_id"] == spare.id
    assert failover["attempt_log"][-1]["strategy"] == "warm_pool"
    assert failover["attempt_log"][-1]["rental"]["machine_id"] == str(machine.id)


def test_a_marketplace_that_never_answers_fails_the_failover_after_the_rent_timeout(
    pool: Pool, fake: FakeVast
) -> None:
    _, web = lose_the_only_node(pool)
    fake.throttle = 10_000  # every call: 429
    steps = rent(pool)
    assert any("vast" in s for s in steps)
    assert failover_of(pool, web)["status"] == "migrating"
    pool.clock.advance(31)  # past rent_timeout
    rent(pool)
    pool.cycle()
    failover = failover_of(pool, web)
    assert failover["status"] == "failed"
    assert "the marketplace gave no offer to choose within 30 s" in failover["error"]


def test_a_gpu_instance_is_placed_on_the_rented_gpu_machine_at_its_join(pool: Pool, fake: FakeVast) -> None:
    from tests.api.test_gpus import gpu, gpu_node

    n1 = gpu_node(pool, "n1", "NVIDIA GeForce RTX 4090", 1)
    web = pool.instance("web", rent=POLICY, gpus={"count": 1, "names": ["4090"]})
    pool.beat_twice(n1)
    pool.elapse(6)
    pool.cycle()
    rent(pool)
    (machine,) = fake.live()
    rented = join(pool, machine)  # its GPUs as rented, before its agent reports NVML's
    placed = pool.get(f"/api/v1/instances/{web['id']}")
    assert (placed["node_id"], placed["gpu_indices"]) == (rented.id, [0])
    rented.gpus = [gpu(0, "NVIDIA GeForce RTX 4090")]
    pool.beat_twice(rented)
    pool.cycle()
    failover = failover_of(pool, web)
    assert failover["status"] == "completed"
    answer = pool.runtime.services.orchestrator.response(
        pool.runtime.store.failovers.get(UUID(failover["id"]))
    )
    assert answer["new_gpu_name"] == "NVIDIA GeForce RTX 4090"


def test_a_regional_volume_failover_with_no_node_in_the_region_rents_there(
    pool: Pool, fake: FakeVast
) -> None:
    from takeover.domain.models import Principal, Role

    n1, spare = pool.node("n1"), pool.node("spare", region="elsewhere")
    pool.beat(n1)
    pool.beat(spare)
    volume = pool.client.post(
        "/api/v1/failover/regional-volume/create", json={"region": "r1", "size_gb": 1}
    ).json()
    web = pool.instance(
        "web", rent=POLICY, volume_id=volume["volume_id"], failover_strategy="regional_volume"
    )
    pool.beat_twice(n1)
    admin = Principal(Role.ADMIN, "admin")
    _, opened = pool.runtime.services.orchestrator.volume_failover(
        admin, UUID(volume["volume_id"]), ["4090"], 1.0
    )
    assert opened.requested_target_id is None  # no node of r1 but its own: a machine will be rented
    for _ in range(3):
        pool.beat(n1)
        pool.cycle()
    (wanted,) = pool.runtime.store.rentals.find()
    assert (wanted.region, wanted.failover_id) == ("r1", opened.id)  # the volume's region, not "elsewhere"
    rent(pool)
    (machine,) = fake.live()
    rented = join(pool, machine)
    assert pool.get(f"/api/v1/instances/{web['id']}")["node_id"] == rented.id


def test_a_machine_rented_for_one_failover_is_left_to_it(pool: Pool, fake: FakeVast) -> None:
    """Placement for another failover waiting for its own machine does not take this one
    (it would rent again, and the budget would decide which failover fails)."""
    first, second = pool.node("n1", max_instances=1), pool.node("n2", max_instances=1)
    pool.beat(first)
    pool.beat(second)
    web1 = pool.instance("web1", rent=POLICY)
    web2 = pool.instance("web2", rent=POLICY)
    pool.beat_twice(first, second)
    pool.elapse(6)
    pool.cycle()
    rent(pool)
    assert len(fake.live()) == 2
    later = next(m for m in fake.live() if m.env["NODE_NAME"] == _machine_name(pool, web2))
    rented = join(pool, later)  # web2's machine joins first; web1's failover, older, runs first
    assert failover_of(pool, web1)["status"] == "migrating"
    assert pool.get(f"/api/v1/instances/{web2['id']}")["node_id"] == rented.id


def _machine_name(pool: Pool, instance: dict[str, Any]) -> str:
    rental = next(r for r in pool.runtime.store.rentals.find() if str(r.instance_id) == instance["id"])
    return f"rent-{rental.id.hex[:12]}"
