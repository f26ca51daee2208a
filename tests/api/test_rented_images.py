"""What a node can run, and renting for an image instance: the machine boots the instance's own
image, runs its command as a process, and says so at its join; placement honours what every
node says it runs. Against the fake marketplace (a paid API cannot run here); the rented
agents are played through the real join endpoint (tests/e2e/test_rented_images.py runs them)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from takeover.main import Runtime
from takeover.testing import FakeClock
from takeover.testing.fakevast import FakeVast, offer
from tests.api.pool import Pool
from tests.api.test_rentals import _rent_settings, failover_of, join, lose_the_only_node, rent
from tests.conftest import make_runtime

IMAGE = "registry.example/team/web:2"
SPEC = {"image": IMAGE, "command": ["/app/serve"]}


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeVast]:
    with FakeVast(
        tmp_path / "vast", [offer(101, "RTX 4090", 1, 0.30), offer(102, "RTX 4090", 1, 0.40)]
    ) as running:
        running.never_boot = {o["id"] for o in running.offers}  # the test plays the agents
        yield running


@pytest.fixture
def runtime(store_url: str, clock: FakeClock, tmp_path: Path, fake: FakeVast) -> Iterator[Runtime]:
    runtime = make_runtime(store_url, clock, tmp_path, **_rent_settings(fake))
    yield runtime
    runtime.store.engine.dispose()


def test_an_image_instance_is_never_placed_on_a_node_without_containers(pool: Pool) -> None:
    plain = pool.node("plain", containers=False)
    other = pool.node("other-image", containers=False, image="registry.example/team/api:1")
    pool.beat(plain, cpu=0.0)
    pool.beat(other, cpu=0.0)
    refused = pool.client.post("/api/v1/instances", json={"name": "web", "spec": SPEC})
    assert refused.status_code == 503, refused.text
    assert "2 without containers" in refused.json()["detail"]
    process = pool.instance("job")  # a process runs anywhere
    assert process["node_id"] in (plain.id, other.id)
    podman = pool.node("podman")
    pool.beat(podman, cpu=0.5)  # the worse score: chosen only because it runs containers
    assert pool.instance("web", spec=SPEC)["node_id"] == podman.id


def test_a_node_that_is_the_image_runs_it_only_when_the_instance_names_its_command(pool: Pool) -> None:
    itself = pool.node("itself", containers=False, image=IMAGE)
    pool.beat(itself)
    assert pool.instance("web", spec=SPEC)["node_id"] == itself.id
    own_command = pool.client.post("/api/v1/instances", json={"name": "own", "spec": {"image": IMAGE}})
    assert own_command.status_code == 503, own_command.text
    assert "with no command named" in own_command.json()["detail"]


def test_a_heartbeat_says_what_a_node_runs_and_a_restarted_agent_can_change_it(pool: Pool) -> None:
    node = pool.node("n1")
    assert pool.get(f"/api/v1/nodes/{node.id}")["containers"] is True
    pool.beat(node, containers=False, image=IMAGE)
    shown = pool.get(f"/api/v1/nodes/{node.id}")
    assert (shown["containers"], shown["image"]) == (False, IMAGE)
    pool.beat(node)  # an older agent says nothing: unchanged
    assert pool.get(f"/api/v1/nodes/{node.id}")["containers"] is False
    bad = pool.client.post(
        f"/api/v1/nodes/{node.id}/heartbeat",
        json={"cpu_load": 0.1, "memory_load": 0.1, "containers": False, "image": "Not An Image"},
        headers={"Authorization": f"Bearer {node.token}"},
    )
    assert bad.status_code == 422
    assert "lower case" in bad.text


def test_renting_for_an_image_instance_boots_its_image_and_places_it_there(
    pool: Pool, fake: FakeVast
) -> None:
    _, web = lose_the_only_node(pool, spec=SPEC)
    rent(pool)
    (machine,) = fake.live()
    assert machine.image == IMAGE  # not TAKEOVER_RENT_IMAGE: the instance's own
    assert machine.env["NODE_IMAGE"] == IMAGE
    assert machine.env["NODE_CONTAINER_RUNTIME"] == "none"
    rented = join(pool, machine)
    assert pool.get(f"/api/v1/nodes/{rented.id}")["image"] == IMAGE
    pool.cycle()
    pool.beat_twice(rented)
    pool.cycle()
    failover = failover_of(pool, web)
    assert failover["status"] == "completed", failover
    assert failover["target_node_id"] == rented.id


def test_an_image_instance_without_a_command_may_not_rent(pool: Pool) -> None:
    refused = pool.client.post(
        "/api/v1/instances", json={"name": "web", "spec": {"image": IMAGE}, "rent": {"max_price": 1.0}}
    )
    assert refused.status_code == 422
    assert "give it a command to rent" in refused.text


def test_a_machine_that_cannot_start_the_agent_is_given_back_with_its_reason(
    pool: Pool, fake: FakeVast, client: TestClient
) -> None:
    _, web = lose_the_only_node(pool)
    rent(pool)
    (machine,) = fake.live()
    token = {"Authorization": f"Bearer {machine.env['TAKEOVER_JOIN_TOKEN']}"}
    fetched = client.get("/api/v1/agent/bundle", headers=token)  # the token is not used up by it
    assert fetched.status_code == 200
    assert fetched.headers["x-takeover-python"] == machine.env["TAKEOVER_PYTHON"]
    with tarfile.open(fileobj=io.BytesIO(fetched.content)) as tar:
        names = tar.getnames()
    assert "site/takeover/agent/agent.py" in names
    assert not any(
        n.startswith(("site/sqlalchemy/", "site/fastapi/")) for n in names
    )  # the server's, not the agent's
    said = client.post("/api/v1/agent/failed", json={"reason": "the image has no python3"}, headers=token)
    assert said.status_code == 204, said.text
    rent(pool)  # the renter's next pass: no join timeout waited out
    assert fake.live() == []
    (rental,) = pool.get("/api/v1/provider/machines?ended=true")
    assert rental["state"] == "failed"
    assert "the image has no python3" in rental["error"]
    pool.cycle()
    assert failover_of(pool, web)["status"] == "migrating"  # the next offer may still come
    after = client.get("/api/v1/agent/bundle", headers=token)
    assert after.status_code == 401  # an ended rental's token lets nothing in
