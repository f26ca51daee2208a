"""Real control plane, real agents, the fake marketplace (a paid API cannot run here).

Renting an offer at the fake starts the renter's onstart script, which runs a real
`takeover agent` on loopback with the environment the control plane sent: from the API call on,
everything is what a rented machine would do.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import httpx

from takeover.localcluster import TAKEOVER, LocalCluster, wait_until
from takeover.testing.fakevast import FakeVast, offer
from tests.e2e import process


def renting(fake: FakeVast, cluster: LocalCluster, **extra: str) -> dict[str, str]:
    """What `takeover serve` needs to rent from the fake; rented agents share the snapshots."""
    agent_env = {
        "TAKEOVER_SNAPSHOT_DIR": str(cluster.snapshot_dir),
        "SNAPSHOT_INTERVAL": "1",
        "STOP_GRACE": "2",
        "TAKEOVER_LOG_LEVEL": "info",
    }
    return fake.serve_env("local", agent_env, **{"TAKEOVER_RENT_JOIN_TIMEOUT": "60", **extra})


def serving_with_snapshot(cluster: LocalCluster, name: str, hits: int) -> tuple[str, int]:
    instance = cluster.create_counter(name, rent={"max_price": 1.0})
    wait_until(lambda: cluster.serving(instance["id"]), 30, f"{name} to serve")
    count = 0
    for _ in range(hits):
        count = cluster.hit(instance["id"])
    cluster.snapshot_after(instance["id"], time.time())
    return instance["id"], count


def test_the_last_node_dies_and_its_instance_serves_again_on_a_rented_machine(tmp_path: Path) -> None:
    offers = [
        offer(1, dph_total=0.40),
        offer(2, dph_total=0.90),
        offer(3, dph_total=0.20, geolocation="Oslo, NO"),
    ]
    with FakeVast(tmp_path / "vast", offers) as fake, LocalCluster(tmp_path) as cluster:
        cluster.start_control_plane(env=renting(fake, cluster, TAKEOVER_RENT_IDLE_GRACE="2"))
        cluster.start_agent("only")
        web, count = serving_with_snapshot(cluster, "web", 3)
        cluster.kill_agent("only")
        (failover,) = cluster.ended_failovers(web, timeout=90)
        assert failover["status"] == "completed", failover
        (machine,) = fake.live()
        assert machine.offer["id"] == 1  # the cheapest in the region (the Oslo one is not)
        target = cluster.node_name(failover["target_node_id"])
        assert target == machine.env["NODE_NAME"]
        assert target is not None
        assert target.startswith("rent-")
        served = wait_until(lambda: cluster.serving(web, failover["attempts"] + 1), 30, "web on the machine")
        assert served["node_id"] == failover["target_node_id"]
        assert cluster.hit(web) == count + 1  # restored from its snapshot: every counted hit is there
        rental = failover["attempt_log"][-1]["rental"]
        assert rental["offer_id"] == "1"
        assert rental["price_per_hour"] == 0.40
        assert rental["join_ms"] > 0
        listed = subprocess.run(
            [*TAKEOVER, "provider", "machines"],
            env={"TAKEOVER_URL": cluster.url, "TAKEOVER_TOKEN": cluster.api.headers["Authorization"][7:]},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "joined" in listed
        assert "web" in listed
        assert "$0.4/h" in listed
        assert cluster.api.delete(f"/api/v1/instances/{web}").status_code == 204
        assert machine.process is not None
        agent = machine.process
        wait_until(lambda: machine.destroyed and agent.poll() is not None, 30, "the idle machine's end")


def test_a_control_plane_killed_mid_rent_rents_nothing_twice(tmp_path: Path) -> None:
    with (
        FakeVast(tmp_path / "vast", [offer(1), offer(2, dph_total=0.6)]) as fake,
        LocalCluster(tmp_path) as cluster,
    ):
        env = renting(fake, cluster)
        cluster.start_control_plane(env=env)
        cluster.start_agent("only")
        web, count = serving_with_snapshot(cluster, "web", 2)
        fake.hold = threading.Event()  # the marketplace makes the machine, then is slow to answer
        cluster.kill_agent("only")
        assert fake.rent_received.wait(60), "no rent reached the marketplace"
        port = cluster.kill_control_plane()  # between the rent call and its record
        fake.hold.set()
        cluster.start_control_plane(port=port, env=env)
        (failover,) = cluster.ended_failovers(web, timeout=90)
        assert failover["status"] == "completed", failover
        assert len(fake.machines) == 1  # found by its label, not rented again
        wait_until(lambda: cluster.serving(web, failover["attempts"] + 1), 30, "web on the machine")
        assert cluster.hit(web) == count + 1
        rentals = cluster.api.get("/api/v1/provider/machines").json()
        assert [r["machine_id"] for r in rentals] == [str(next(iter(fake.machines)))]


def test_without_an_api_key_serve_says_so_and_runs_without_renting(tmp_path: Path) -> None:
    with process.serve(tmp_path, TAKEOVER_PROVIDER="vast", TAKEOVER_PUBLIC_URL="http://127.0.0.1:1") as url:
        response = httpx.get(
            url + "/api/v1/provider/offers?region=r1", headers={"Authorization": "Bearer admin-secret"}
        )
        assert response.status_code == 200
        assert response.json()["offers"] == []
    logged = "".join(p.read_text() for p in tmp_path.glob("serve-*.log"))
    assert "VAST_API_KEY is not set: renting is off" in logged


def test_many_failovers_at_once_rent_within_the_budget_and_the_rest_fail_saying_so(tmp_path: Path) -> None:
    offers = [offer(n, dph_total=0.30) for n in range(1, 6)]
    with FakeVast(tmp_path / "vast", offers) as fake, LocalCluster(tmp_path) as cluster:
        cluster.start_control_plane(env=renting(fake, cluster, TAKEOVER_RENT_MAX_HOURLY="0.7"))
        cluster.start_agent("only")
        counters = [cluster.create_counter(f"web{n}", rent={"max_price": 1.0}) for n in range(3)]
        wait_until(lambda: all(cluster.serving(c["id"]) for c in counters), 30, "the counters to serve")
        cluster.kill_agent("only")  # three failovers at once, each needing a machine
        ended = [cluster.ended_failovers(c["id"], timeout=90)[-1] for c in counters]
        outcomes = [(f["status"], f["error"], f["attempt_log"]) for f in ended]
        assert sorted(f["status"] for f in ended) == ["completed", "completed", "failed"], outcomes
        assert len(fake.machines) == 2  # $0.60 of $0.70: a third machine would not fit
        (failed,) = [f for f in ended if f["status"] == "failed"]
        assert "rent budget exhausted: $0.6/h of $0.7/h in use" in failed["error"]
        rentals = cluster.api.get("/api/v1/provider/machines?ended=true").json()
        refused = [r for r in rentals if (r["error"] or "").startswith("rent budget exhausted")]
        metrics = httpx.get(cluster.url + "/metrics").text
        counted = [line for line in metrics.splitlines() if line.startswith("takeover_rent_failures_total")]
        assert refused, rentals  # every refusal is a rental row that says so, and is counted
        assert f'takeover_rent_failures_total{{reason="budget"}} {float(len(refused))}' in counted, (
            counted,
            rentals,
        )
        assert "takeover_rent_hourly_spend_dollars 0.6" in metrics
