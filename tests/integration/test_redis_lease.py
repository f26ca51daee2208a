"""The leader lease in Redis, fenced by the store: real redis-server processes, Sentinel included.

The contract every lease passes is in tests/contracts/test_coordinator.py; these are what only
Redis can do to it: forget it, lose its master, or not answer at all.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from takeover.control.leadership import LEASE_NAME, Leadership
from takeover.coordination.redis_client import redis_client
from takeover.coordination.redis_lease import RedisCoordinator
from takeover.domain.errors import FencedOut, StoreUnavailable
from takeover.localcluster import wait_until
from takeover.ports import LeaseToken
from takeover.settings import Settings
from takeover.store import make_engine, migrate
from takeover.store.base import check_fence, transaction
from takeover.store.leases import StoreCoordinator
from takeover.testing import FakeClock
from tests.redisserver import RedisServer, Sentinels

TTL = timedelta(seconds=10)


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'takeover.db'}")
    migrate(engine)
    return engine


@pytest.fixture
def fence(engine: sa.Engine) -> StoreCoordinator:
    return StoreCoordinator(engine)


def acquire(lease: RedisCoordinator, holder: str, now: datetime) -> LeaseToken:
    token = lease.acquire(LEASE_NAME, holder, TTL, now)
    assert token is not None, f"{holder} did not get the lease"
    return token


def fenced_write(engine: sa.Engine, token: LeaseToken, clock: FakeClock) -> None:
    """What every controller write does first, in its own transaction."""
    with transaction(engine) as conn:
        check_fence(conn, token, clock.now())


def test_an_epoch_redis_forgot_is_never_handed_out_again(
    redis_server: RedisServer, fence: StoreCoordinator, clock: FakeClock
) -> None:
    client = redis.Redis(port=redis_server.port)
    lease = RedisCoordinator(client, fence)
    for holder in ("a", "b", "c"):
        acquire(lease, holder, clock.advance(11))
    client.flushall()  # no persistence, restarted; or a failover to a replica that missed it
    taken = acquire(lease, "d", clock.advance(11))
    assert taken.epoch == 4
    assert lease.current(LEASE_NAME) == taken
    assert fence.current(LEASE_NAME) == taken


def test_a_leader_redis_forgot_is_fenced_out_by_the_next_one(
    redis_server: RedisServer, engine: sa.Engine, fence: StoreCoordinator, clock: FakeClock
) -> None:
    client = redis.Redis(port=redis_server.port)
    lease = RedisCoordinator(client, fence)
    first = acquire(lease, "a", clock.now())
    fenced_write(engine, first, clock)
    client.flushall()
    second = acquire(lease, "b", clock.advance(1))  # a's lease has 9 s left, but Redis forgot it
    assert second.epoch == 2  # not 1: the store had seen it
    with pytest.raises(FencedOut, match="superseded"):
        fenced_write(engine, first, clock)  # two holders by Redis for a moment; the store takes one
    fenced_write(engine, second, clock)
    assert lease.acquire(LEASE_NAME, "a", TTL, clock.advance(1)) is None


def test_a_deposed_holders_late_token_is_not_recorded(
    redis_server: RedisServer, fence: StoreCoordinator, clock: FakeClock
) -> None:
    lease = RedisCoordinator(redis.Redis(port=redis_server.port), fence)
    old = acquire(lease, "a", clock.now())
    new = acquire(lease, "b", clock.advance(11))
    assert fence.record(old) == new.epoch  # a's renewal reaching the store late
    assert fence.current(LEASE_NAME) == new


def test_with_redis_down_no_replica_leads_and_none_crashes(
    redis_server: RedisServer, fence: StoreCoordinator, clock: FakeClock
) -> None:
    settings = Settings(redis_url=redis_server.url, lease_backend="redis")
    client = redis_client(settings, retries=1)
    assert client is not None
    leadership = Leadership(RedisCoordinator(client, fence), "a", TTL)
    assert leadership.ensure(clock.now()) is not None
    redis_server.kill()
    assert leadership.ensure(clock.advance(3)) is None  # stands down: the store may not be fenced
    assert leadership.token is None


def test_the_lease_follows_the_master_through_a_sentinel_failover(
    sentinels: Sentinels, fence: StoreCoordinator, clock: FakeClock
) -> None:
    settings = Settings(
        redis_sentinel_enabled=True,
        redis_sentinels=sentinels.addresses,
        redis_master_name=Sentinels.MASTER_NAME,
        lease_backend="redis",
    )
    client = redis_client(settings, retries=1)
    assert client is not None
    lease = RedisCoordinator(client, fence)
    first = acquire(lease, "a", clock.now())
    direct = redis.Redis(port=sentinels.master.port, socket_timeout=10)
    direct.set("marker", 1)  # replicated in order: once the replica has this, it has the lease
    assert direct.wait(1, 5000) == 1
    old_master = sentinels.master.port
    sentinels.master.kill()
    wait_until(
        lambda: sentinels.master_port() not in (old_master, None), 30, "Sentinel to promote the replica"
    )
    renewed = wait_until(lambda: _renewed(lease, "a", clock), 10, "a renewal through the new master")
    assert renewed.epoch == first.epoch  # the promoted replica had the lease: nothing changes hands
    taken = acquire(lease, "b", clock.advance(11))
    assert taken.epoch == first.epoch + 1
    assert fence.current(LEASE_NAME) == taken


def _renewed(lease: RedisCoordinator, holder: str, clock: FakeClock) -> LeaseToken | None:
    try:
        return lease.acquire(LEASE_NAME, holder, TTL, clock.now())
    except StoreUnavailable:
        return None  # the old master's connections fail until the client finds the new one
