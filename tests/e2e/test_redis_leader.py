"""Two `takeover serve` replicas elect their leader in Redis through Sentinel (document 001's
REDIS_SENTINEL_ENABLED, REDIS_SENTINELS, REDIS_MASTER_NAME), fenced by the PostgreSQL store.
The Redis master dies, then the leading replica: a replica leads again each time."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import redis

from takeover.localcluster import ADMIN_TOKEN, FAST_TIMINGS, wait_until
from takeover.ports import LeaseToken
from takeover.store import make_engine
from takeover.store.leases import StoreCoordinator
from tests.conftest import new_store_url
from tests.e2e.balancer import leads
from tests.e2e.process import start, stop
from tests.redisserver import Sentinels

pytestmark = pytest.mark.postgres
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_replicas_elect_their_leader_in_redis_through_sentinel(
    request: pytest.FixtureRequest, tmp_path: Path, sentinels: Sentinels
) -> None:
    store = new_store_url("postgres", request, tmp_path)
    fence = StoreCoordinator(make_engine(store))
    env = {
        **FAST_TIMINGS,
        "TAKEOVER_DATABASE_URL": store,
        "TAKEOVER_ADMIN_TOKEN": ADMIN_TOKEN,
        **sentinels.lease_env,  # document 001's variables
    }
    replicas: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for n in (1, 2):
            (tmp_path / f"replica{n}").mkdir()
            process, url = start(tmp_path / f"replica{n}", **env, TAKEOVER_REPLICA_ID=f"replica{n}")
            replicas[url] = process
        leader = wait_until(lambda: next((u for u in replicas if leads(u)), None), 10, "a leader")
        first = _agreed(fence, sentinels)
        assert _runs_a_cycle(leader)  # its controller writes pass the store's fence

        old_master = sentinels.master.port
        sentinels.master.kill()
        wait_until(lambda: sentinels.master_port() not in (old_master, None), 30, "a new Redis master")
        leader = wait_until(lambda: next((u for u in replicas if leads(u)), None), 15, "a leader again")
        assert _runs_a_cycle(leader)

        replicas[leader].send_signal(signal.SIGKILL)
        replicas[leader].wait()
        survivor = next(u for u in replicas if u != leader)
        wait_until(lambda: leads(survivor), 10, "the surviving replica to lead")
        last = _agreed(fence, sentinels)
        assert last.epoch > first.epoch
        assert last.holder == f"replica{list(replicas).index(survivor) + 1}"
        assert _runs_a_cycle(survivor)
    finally:
        for process in replicas.values():
            if process.poll() is None:
                stop(process)


def _agreed(fence: StoreCoordinator, sentinels: Sentinels) -> LeaseToken:
    """The lease as the store records it, once Redis's master says the same holder and epoch."""
    master = redis.Redis(port=sentinels.master_port() or 0, socket_timeout=1, decode_responses=True)

    def same() -> LeaseToken | None:
        stored = fence.current("controllers")
        holder, epoch = master.hmget("takeover:lease:controllers", ["holder", "epoch"])
        if stored and holder and epoch and (stored.holder, stored.epoch) == (holder, int(epoch)):
            return stored
        return None

    agreed: LeaseToken = wait_until(same, 10, "Redis and the store to agree on the lease")
    return agreed


def _runs_a_cycle(url: str) -> bool:
    return httpx.post(url + "/api/v1/nodes/check-offline", headers=ADMIN, timeout=10).status_code == 200
