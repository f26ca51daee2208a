"""A container-image instance whose pool dies fails over onto a rented machine that *is* its
image: the fake marketplace (a paid API cannot run here) boots the rented image with Podman,
its onstart fetches the agent from the control plane (the image has python3 but no pip and no
takeover), and the agent runs the image's command as a process, served at the mapped port.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest

from takeover.examples.image import RENTABLE_IMAGE
from takeover.localcluster import LocalCluster, wait_until
from takeover.testing.fakevast import FakeVast, offer
from takeover.testing.machines import Podman
from tests.e2e.test_rentals import renting

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("podman") is None, reason="podman is not installed (./dev test installs it)"
    ),
]
COUNTER = {"image": RENTABLE_IMAGE, "command": ["/app/serve"]}


def test_an_image_instance_fails_over_onto_a_rented_machine_booted_from_its_image(tmp_path: Path) -> None:
    with (
        LocalCluster(tmp_path, containers=True) as cluster,
        FakeVast(tmp_path / "vast", [offer(1, dph_total=0.4)], boot=cluster.rentable_image()) as fake,
    ):
        cluster.start_control_plane(env=renting(fake, cluster))
        cluster.start_agent("only")
        web = cluster.api.post(
            "/api/v1/instances", json={"name": "web", "spec": COUNTER, "rent": {"max_price": 1.0}}
        ).json()
        wait_until(lambda: cluster.serving(web["id"]), 60, "web to serve in a container")
        acked = [cluster.hit(web["id"]) for _ in range(3)]
        cluster.snapshot_after(web["id"], time.time())
        digest = cluster.instance(web["id"])["spec"]["image_digest"]

        cluster.kill_agent("only")
        (failover,) = cluster.ended_failovers(web["id"], timeout=180)
        assert failover["status"] == "completed", failover
        (machine,) = fake.live()
        assert machine.image == f"localhost/takeover-counter-python@{digest}"  # the same bytes
        moved = wait_until(lambda: cluster.serving(web["id"], epoch=2), 60, "web on the rented machine")
        host, port = moved["endpoint"].rsplit(":", 1)
        assert host == "127.0.0.1"  # PUBLIC_IPADDR, and a port mapped outside, not the inside one
        assert int(port) in {machine.nat.tcp[20000], machine.nat.tcp[20001]}
        assert cluster.hit(web["id"]) == acked[-1] + 1  # restored from the snapshot
        node = cluster.api.get(f"/api/v1/nodes/{moved['node_id']}").json()
        assert (node["containers"], node["image"]) == (False, RENTABLE_IMAGE)
        log = (tmp_path / "vast" / f"machine-{machine.id}" / "onstart.log").read_text()
        assert "fetched, starting it" in log
        said = (tmp_path / "control-plane.log").read_text()  # what the renter did
        assert f"machine {machine.id} rented at $0.4/h" in said
        for inside in (20000, 20001):  # it listens on the machine's own address only
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{inside}/count", timeout=1).raise_for_status()


def test_an_image_without_python_fails_its_rental_at_once_saying_why(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, containers=True) as cluster:
        boot = Podman(tuple(cluster.container_cli), {"CONTAINERS_CONF": cluster.extra_env["CONTAINERS_CONF"]})
        with FakeVast(tmp_path / "vast", [offer(1, dph_total=0.4)], boot=boot) as fake:
            cluster.start_control_plane(env=renting(fake, cluster, TAKEOVER_RENT_JOIN_TIMEOUT="600"))
            cluster.start_agent("only")
            spec = {"image": "localhost/takeover-counter:1", "command": ["/app/serve"]}  # busybox, no python3
            web = cluster.api.post(
                "/api/v1/instances", json={"name": "web", "spec": spec, "rent": {"max_price": 1.0}}
            ).json()
            wait_until(lambda: cluster.serving(web["id"]), 60, "web to serve in a container")
            cluster.kill_agent("only")
            (failover,) = cluster.ended_failovers(web["id"], timeout=120)  # not the 600 s join timeout
            assert failover["status"] == "failed"
            assert "the image has no python3" in failover["error"], failover["error"]
            assert fake.live() == []  # given back
            (rental,) = [
                r for r in cluster.api.get("/api/v1/provider/machines?ended=true").json() if r["machine_id"]
            ]
            assert "its machine cannot run the agent: the image has no python3" in rental["error"]
