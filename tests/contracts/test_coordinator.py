"""Every Coordinator adapter passes this suite: in memory, SQLite, PostgreSQL, Redis."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from takeover.coordination.redis_lease import RedisCoordinator
from takeover.ports import Coordinator
from takeover.store import make_engine, migrate
from takeover.store.leases import StoreCoordinator
from takeover.testing import FakeClock, MemoryCoordinator
from tests.conftest import BACKENDS, new_store_url
from tests.redisserver import RedisServer

TTL = timedelta(seconds=10)


@pytest.fixture(params=["memory", *BACKENDS, "redis"])
def coordinator(request: pytest.FixtureRequest, tmp_path: Path) -> Coordinator:
    if request.param == "memory":
        return MemoryCoordinator()
    engine = make_engine(
        new_store_url("sqlite" if request.param == "redis" else request.param, request, tmp_path)
    )
    migrate(engine)
    if request.param == "redis":  # fenced by a SQLite store
        server: RedisServer = request.getfixturevalue("redis_server")
        return RedisCoordinator(redis.Redis(port=server.port), StoreCoordinator(engine))
    return StoreCoordinator(engine)


def test_first_holder_gets_epoch_1_and_others_are_refused(coordinator: Coordinator, clock: FakeClock) -> None:
    token = coordinator.acquire("c", "a", TTL, clock.now())
    assert token is not None
    assert (token.holder, token.epoch) == ("a", 1)
    assert coordinator.acquire("c", "b", TTL, clock.advance(5)) is None


def test_renewal_keeps_the_epoch_and_extends_the_lease(coordinator: Coordinator, clock: FakeClock) -> None:
    coordinator.acquire("c", "a", TTL, clock.now())
    renewed = coordinator.acquire("c", "a", TTL, clock.advance(8))
    assert renewed is not None
    assert renewed.epoch == 1
    assert coordinator.acquire("c", "b", TTL, clock.advance(8)) is None  # 16 s: still a's


def test_an_expired_lease_goes_to_the_next_holder_with_a_higher_epoch(
    coordinator: Coordinator, clock: FakeClock
) -> None:
    coordinator.acquire("c", "a", TTL, clock.now())
    taken = coordinator.acquire("c", "b", TTL, clock.advance(11))
    assert taken is not None
    assert (taken.holder, taken.epoch) == ("b", 2)
    assert coordinator.acquire("c", "a", TTL, clock.advance(1)) is None


def test_the_old_holder_coming_back_after_expiry_gets_a_new_epoch(
    coordinator: Coordinator, clock: FakeClock
) -> None:
    coordinator.acquire("c", "a", TTL, clock.now())
    again = coordinator.acquire("c", "a", TTL, clock.advance(11))
    assert again is not None
    assert again.epoch == 2


def test_release_hands_over_at_once_and_only_for_the_holder(
    coordinator: Coordinator, clock: FakeClock
) -> None:
    token = coordinator.acquire("c", "a", TTL, clock.now())
    assert token is not None
    other = coordinator.acquire("d", "b", TTL, clock.now())
    assert other is not None
    assert not coordinator.release(type(token)("c", "b", 1, token.expires_at))
    assert coordinator.release(token)
    taken = coordinator.acquire("c", "b", TTL, clock.advance(0.001))
    assert taken is not None
    assert taken.epoch == 2
    current = coordinator.current("c")
    assert current is not None
    assert current.holder == "b"


def test_concurrent_acquirers_get_exactly_one_lease(coordinator: Coordinator, clock: FakeClock) -> None:
    now = clock.now()
    winners: list[str] = []
    barrier = threading.Barrier(8)

    def contend(name: str) -> None:
        barrier.wait()
        if coordinator.acquire("race", name, TTL, now) is not None:
            winners.append(name)

    threads = [threading.Thread(target=contend, args=(f"h{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
