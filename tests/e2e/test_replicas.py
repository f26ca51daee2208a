"""Three `takeover serve` replicas on one PostgreSQL, behind a real HAProxy (deploy/haproxy.cfg).

Agents and clients talk only to HAProxy. The leader is SIGKILLed while a failover is in flight:
another replica takes the lease with a higher epoch and finishes that failover, once. Replicas
are SIGKILLed and restarted in a loop; afterwards the store holds every invariant. And the store
itself fails over: a Patroni-managed PostgreSQL loses its primary under load.
"""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest
import redis
import sqlalchemy as sa

from takeover.localcluster import ADMIN_TOKEN, FAST_TIMINGS, LocalCluster, wait_until
from tests.conftest import new_store_url
from tests.e2e.balancer import HAPROXY, HAPROXY_CFG, haproxy, leads
from tests.e2e.process import TAKEOVER, start, stop
from tests.e2e.serving import Askers, fleet, unchanged
from tests.patroni import PatroniCluster
from tests.redisserver import RedisServer

pytestmark = pytest.mark.postgres
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_the_shipped_haproxy_config_is_valid() -> None:
    env = {**os.environ, "TAKEOVER_LISTEN": "127.0.0.1:8080"}
    env |= {f"TAKEOVER_REPLICA_{n}": f"127.0.0.1:{8080 + n}" for n in (1, 2, 3)}
    checked = subprocess.run(
        [HAPROXY, "-c", "-f", str(HAPROXY_CFG)], env=env, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Configuration file is valid" in checked.stdout


@dataclass
class Plane:
    """Three serve replicas on one PostgreSQL, HAProxy in front, agents a, b, c through it."""

    store: str
    root: Path
    replicas: dict[str, subprocess.Popen[bytes]]  # by URL
    lb: str = ""
    cluster: LocalCluster | None = None
    env: dict[str, str] = field(default_factory=dict)  # more settings for every replica

    def restart(self, url: str) -> None:
        """A killed replica comes back on its port (HAProxy knows it by address)."""
        n = list(self.replicas).index(url) + 1
        port = url.rsplit(":", 1)[1]
        self.replicas[url] = start(self.root / f"replica{n}", **self.replica_env(n), TAKEOVER_PORT=port)[0]

    def replica_env(self, n: int) -> dict[str, str]:
        return {
            **FAST_TIMINGS,
            "TAKEOVER_DATABASE_URL": self.store,
            "TAKEOVER_REPLICA_ID": f"replica{n}",
            "TAKEOVER_ADMIN_TOKEN": ADMIN_TOKEN,
            **self.env,
        }


@contextmanager
def control_plane(
    request: pytest.FixtureRequest, root: Path, store: str = "", **env: str
) -> Iterator[tuple[Plane, LocalCluster]]:
    """``store``: the database's URL (a fresh one on the tests' PostgreSQL if empty)."""
    plane = Plane(store or new_store_url("postgres", request, root), root, {}, env=env)
    try:
        for n in (1, 2, 3):
            (root / f"replica{n}").mkdir()
            process, url = start(root / f"replica{n}", **plane.replica_env(n))
            plane.replicas[url] = process
        with haproxy(list(plane.replicas), root) as lb, LocalCluster(root / "pool") as cluster:
            plane.lb = lb
            cluster.url = lb
            cluster.api.base_url = httpx.URL(lb)
            for name in ("a", "b", "c"):
                cluster.start_agent(name)
            yield plane, cluster
    finally:
        for process in plane.replicas.values():
            stop(process)


@contextmanager
def acknowledged_writes(lb: str) -> Iterator[list[tuple[float, str]]]:
    """Tokens created through the balancer all along; the list holds the acknowledged ones, each
    with when it was acknowledged (monotonic)."""
    written: list[tuple[float, str]] = []
    done = threading.Event()

    def write() -> None:
        while not done.is_set():
            try:
                made = httpx.post(
                    lb + "/api/v1/tokens", json={"role": "user", "subject": "w"}, headers=ADMIN, timeout=5
                )
            except httpx.HTTPError:
                continue
            if made.status_code == 201:
                written.append((time.monotonic(), made.json()["id"]))

    writer = threading.Thread(target=write)
    writer.start()
    try:
        yield written
    finally:
        done.set()
        writer.join()


def lost_writes(cluster: LocalCluster, written: list[tuple[float, str]]) -> set[str]:
    """The acknowledged tokens the store no longer lists."""
    reply = cluster.api.get("/api/v1/tokens")
    assert reply.status_code == 200, reply.text
    return {token for _, token in written} - {t["id"] for t in reply.json()}


def assert_written(cluster: LocalCluster, written: list[tuple[float, str]]) -> None:
    assert written, "no API write was acknowledged during the test"
    assert lost_writes(cluster, written) == set()  # no acknowledged API write lost


def test_the_leader_dies_mid_failover_and_another_replica_finishes_it_once(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with control_plane(request, tmp_path) as (plane, cluster):
        replicas = plane.replicas
        instance = cluster.create_counter("counter")
        first = wait_until(lambda: cluster.serving(instance["id"]), 30, "the counter to serve")
        acked = [cluster.hit(instance["id"]) for _ in range(5)]
        cluster.snapshot_after(instance["id"], time.time())  # what a node death keeps (the RPO)
        holder = cluster.node_name(first["node_id"])
        assert holder is not None

        with acknowledged_writes(plane.lb) as written:
            cluster.kill_agent(holder)
            seen = wait_until(lambda: next(iter(cluster.failovers(instance["id"])), None), 30, "a failover")
            leader = wait_until(lambda: next((u for u in replicas if leads(u)), None), 10, "a leader")
            lease_epoch = _lease_epoch(plane.store)
            replicas[leader].kill()
            replicas[leader].wait()
            killed_at = time.monotonic()
            successor = wait_until(
                lambda: next((u for u in replicas if u != leader and leads(u)), None), 20, "a new leader"
            )
            took_over = time.monotonic() - killed_at
            done = wait_until(
                lambda: cluster.serving(instance["id"], epoch=2), 60, "the counter to serve again"
            )

        assert seen["status"] != "completed", "the leader was killed after the failover, not during it"
        assert _lease_epoch(plane.store) > lease_epoch  # the new leader fences the old one
        assert took_over < 3 + 1 + 2, took_over  # lease ttl 3 s + 1 s, and 2 s of polling slack
        [failover] = cluster.ended_failovers(instance["id"])  # completed once: no second failover
        assert failover["status"] == "completed"
        assert done["epoch"] == 2  # one placement: no double placement
        assert cluster.node_name(done["node_id"]) != holder
        assert cluster.hit(instance["id"]) == acked[-1] + 1  # no acknowledged count lost
        assert_written(cluster, written)
        assert runners(instance["id"]) == 1

        # a token revoked through one replica is refused by every other one at once
        made = httpx.post(successor + "/api/v1/tokens", json={"role": "user", "subject": "r"}, headers=ADMIN)
        bearer = {"Authorization": f"Bearer {made.json()['token']}"}
        other = next(u for u in replicas if u not in (leader, successor))
        assert httpx.get(other + "/api/v1/instances", headers=bearer).status_code == 200
        assert httpx.delete(f"{other}/api/v1/tokens/{made.json()['id']}", headers=ADMIN).status_code == 204
        assert httpx.get(successor + "/api/v1/instances", headers=bearer).status_code == 401


@pytest.mark.parametrize("lease", ["store", "redis"])
def test_replicas_killed_and_restarted_in_a_loop_leave_a_consistent_store(
    request: pytest.FixtureRequest, tmp_path: Path, lease: str
) -> None:
    """SIGKILL a random replica every 2 s for 24 s (and one node, so a failover runs through
    it) while heartbeats and API writes flow; then `takeover check --settled`. With the lease
    in Redis, Redis also loses everything it holds once (FLUSHALL), as a restart without
    persistence would."""
    chaos = random.Random(6)
    redis_env: dict[str, str] = {}
    before_loss = 0
    if lease == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        redis_env = {"TAKEOVER_LEASE_BACKEND": "redis", "TAKEOVER_REDIS_URL": server.url}
    with control_plane(request, tmp_path, **redis_env) as (plane, cluster):
        counters = [cluster.create_counter(f"counter{n}") for n in (1, 2)]
        for counter in counters:
            wait_until(partial(cluster.serving, counter["id"]), 30, "the counters to serve")
        with acknowledged_writes(plane.lb) as written:
            ends = time.monotonic() + 24
            victim_node = cluster.node_name(cluster.instance(counters[0]["id"])["node_id"])
            assert victim_node is not None
            for round_ in itertools.count():
                if time.monotonic() > ends:
                    break
                url = chaos.choice(list(plane.replicas))
                plane.replicas[url].kill()
                plane.replicas[url].wait()
                if round_ == 2:
                    cluster.kill_agent(victim_node)
                if round_ == 5 and redis_env:
                    before_loss = _lease_epoch(plane.store)
                    redis.Redis.from_url(redis_env["TAKEOVER_REDIS_URL"]).flushall()
                time.sleep(chaos.uniform(0.5, 1.5))
                plane.restart(url)
        for counter in counters:
            wait_until(partial(cluster.serving, counter["id"]), 60, "every counter to serve again")
        wait_until(
            lambda: all(f["status"] in ("completed", "failed") for f in _all_failovers(cluster)),
            60,
            "settled",
        )
        assert_settled(plane.store)
        assert_written(cluster, written)
        assert [runners(c["id"]) for c in counters] == [1, 1]
        moved = cluster.failovers(counters[0]["id"])
        assert [f["status"] for f in moved] == ["completed"]
        if redis_env:  # Redis forgot the lease once; its epochs went on from the store's, not from 1
            client = redis.Redis.from_url(redis_env["TAKEOVER_REDIS_URL"])

            def agreed() -> int | None:
                in_redis = client.hget("takeover:lease:controllers", "epoch")
                stored = _lease_epoch(plane.store)
                return stored if in_redis is not None and int(in_redis) == stored else None

            assert wait_until(agreed, 10, "Redis and the store to agree on the epoch") >= before_loss


def assert_settled(store: str) -> None:
    checked = subprocess.run(
        [TAKEOVER, "check", "--settled"],
        env={**os.environ, "TAKEOVER_DATABASE_URL": store},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "the store holds every invariant" in checked.stdout


def _all_failovers(cluster: LocalCluster) -> list[dict[str, Any]]:
    return list(cluster.api.get("/api/v1/failovers").json())


def runners(instance_id: str) -> int:
    """Live processes running this instance's workload, on any agent (its cwd is the workspace)."""
    found = 0
    for process in psutil.process_iter(["cmdline", "cwd"]):
        cmdline, cwd = process.info["cmdline"] or [], process.info["cwd"] or ""
        if "takeover.examples.counter" in cmdline and cwd.endswith(instance_id):
            found += 1
    return found


def _lease_epoch(store: str) -> int:
    engine = sa.create_engine(store)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(sa.text("SELECT epoch FROM leases WHERE name = 'controllers'")).scalar_one()
            )
    finally:
        engine.dispose()


def test_a_replica_killed_while_it_holds_streams_moves_them_without_a_false_failover(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with control_plane(request, tmp_path) as (plane, cluster):
        replicas = plane.replicas
        wait_until(lambda: sum(_streams(u) for u in replicas) == 3, 20, "the three agents' streams")
        victim = max(replicas, key=_streams)  # holds at least one stream
        replicas[victim].kill()
        replicas[victim].wait()
        survivors = [u for u in replicas if u != victim]
        wait_until(lambda: sum(_streams(u) for u in survivors) == 3, 20, "the streams to move")
        time.sleep(4)  # longer than offline_after (3 s): a node that had gone silent would be offline

        assert {n["status"] for n in cluster.api.get("/api/v1/nodes").json()} == {"online"}
        assert cluster.api.get("/api/v1/failovers").json() == []

        # a placement decided by the leader reaches the stream's agent through another replica
        instance = cluster.create_counter("counter")
        wait_until(lambda: cluster.serving(instance["id"]), 30, "the counter to serve")
        assert sum(_metric(u, "takeover_desired_pushes_total") for u in survivors) >= 1


def _metric(url: str, name: str) -> float:
    try:
        text = httpx.get(url + "/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    return sum(float(line.split()[1]) for line in text.splitlines() if line.startswith(name + " "))


def _streams(url: str) -> float:
    return _metric(url, "takeover_agent_streams")


@pytest.mark.e2e
def test_the_store_fails_over_under_patroni_and_nothing_is_lost_stopped_or_moved(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The replicas' store is a Patroni-managed PostgreSQL with a synchronous standby, reached
    by the multi-host URL docs/operations.md recommends. Its primary machine (Patroni and
    PostgreSQL) is SIGKILLed while heartbeats and API writes flow; Patroni promotes the standby
    about ten seconds later. Meanwhile every replica's /readyz fails and no heartbeat is stored;
    the agents' witnesses keep every fence."""
    store = PatroniCluster().start()
    try:
        with psycopg.connect(store.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE takeover")
        with control_plane(request, tmp_path, store=store.url("takeover")) as (plane, cluster):
            serving = fleet(cluster)
            cluster.witnessed()
            endpoints = {name: str(s["endpoint"]) for name, s in serving.items()}
            with Askers(endpoints).asking() as askers, acknowledged_writes(plane.lb) as written:
                wait_until(lambda: len(written) >= 5, 20, "API writes to be acknowledged")
                primary = store.primary()
                assert primary is not None
                primary.kill()
                gone = time.monotonic()
                promoted = wait_until(store.primary, 60, "Patroni to promote the standby")
                assert promoted is not primary
                before = len(written)
                wait_until(lambda: len(written) > before + 5, 60, "API writes on the new primary")
                back = time.monotonic()
                time.sleep(3 * float(FAST_TIMINGS["TAKEOVER_OFFLINE_AFTER"]))  # the new leader's first cycles
            askers.kept_serving(gone, time.monotonic())
            unchanged(cluster, serving)
            assert_written(cluster, written)
            assert_settled(plane.store)
            assert [runners(str(s["id"])) for s in serving.values()] == [1, 1]
            assert back - gone > 5, "the store was away for less than a fence: a weak test"
    finally:
        store.stop()
