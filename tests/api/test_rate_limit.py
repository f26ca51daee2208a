"""Requests per token and per client address: 429 with Retry-After, shared through Redis or the store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from takeover.api.ratelimit import StoreCounts
from takeover.domain.errors import StoreUnavailable
from takeover.localcluster import wait_until
from takeover.store import make_engine, migrate
from takeover.store.ratecounts import Hits, RateCountRepository
from takeover.testing import FakeClock
from tests.conftest import make_runtime
from tests.redisserver import RedisServer

ADMIN = {"Authorization": "Bearer admin-secret"}
HOUR = 3600  # one window for the whole test: no boundary falls inside it


def client(tmp_path: Path, **limits: object) -> TestClient:
    url = f"sqlite:///{tmp_path / f'{len(list(tmp_path.iterdir()))}.db'}"
    return TestClient(make_runtime(url, FakeClock(), tmp_path, rate_limit_window=HOUR, **limits).app)


def test_a_token_over_its_limit_gets_429_with_retry_after(tmp_path: Path) -> None:
    api = client(tmp_path, rate_limit_per_token=3)
    assert [api.get("/api/v1/nodes", headers=ADMIN).status_code for _ in range(3)] == [200] * 3
    refused = api.get("/api/v1/nodes", headers=ADMIN)
    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= HOUR
    assert refused.json()["detail"].startswith(
        "rate limit: more than 3 requests per 3600 s per token; retry after"
    )
    assert (
        api.get("/api/v1/nodes", headers={"Authorization": "Bearer other"}).status_code == 401
    )  # its own count
    assert api.get("/readyz").status_code == 200  # probes are never limited


def test_a_client_address_over_its_limit_gets_429(tmp_path: Path) -> None:
    api = client(tmp_path, rate_limit_per_address=2, rate_limit_per_token=0)
    assert [api.get("/api/v1/nodes", headers=ADMIN).status_code for _ in range(2)] == [200, 200]
    refused = api.get("/api/v1/nodes", headers={"Authorization": "Bearer guessing"})
    assert refused.status_code == 429
    assert "per client address" in refused.json()["detail"]


def test_behind_a_trusted_balancer_each_forwarded_client_counts_alone(tmp_path: Path) -> None:
    api = client(tmp_path, rate_limit_per_address=1, rate_limit_per_token=0, trusted_proxies="testclient")
    for address in ("10.0.0.1", "10.0.0.2"):
        forwarded = {**ADMIN, "X-Forwarded-For": f"203.0.113.9, {address}"}  # the last hop is the client
        assert api.get("/api/v1/nodes", headers=forwarded).status_code == 200
    again = api.get("/api/v1/nodes", headers={**ADMIN, "X-Forwarded-For": "10.0.0.1"})
    assert again.status_code == 429


def test_a_client_cannot_pick_its_address_with_x_forwarded_for(tmp_path: Path) -> None:
    api = client(tmp_path, rate_limit_per_address=1, rate_limit_per_token=0)  # no trusted proxy
    assert api.get("/api/v1/nodes", headers={**ADMIN, "X-Forwarded-For": "10.0.0.1"}).status_code == 200
    assert api.get("/api/v1/nodes", headers={**ADMIN, "X-Forwarded-For": "10.0.0.2"}).status_code == 429


def test_replicas_share_their_counts_through_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    first, second = (client(tmp_path, rate_limit_per_token=2, redis_url=redis_server.url) for _ in range(2))
    assert first.get("/api/v1/nodes", headers=ADMIN).status_code == 200
    assert second.get("/api/v1/nodes", headers=ADMIN).status_code == 200
    assert first.get("/api/v1/nodes", headers=ADMIN).status_code == 429  # two replicas, one count
    redis_server.stop()
    assert second.get("/api/v1/nodes", headers={"Authorization": "Bearer admin-secret "}).status_code in (
        200,
        401,
    )
    assert second.get("/api/v1/tokens", headers=ADMIN).status_code == 200  # Redis gone: let through


def test_replicas_share_their_counts_through_the_store(tmp_path: Path, store_url: str) -> None:
    first, second = (
        TestClient(make_runtime(store_url, FakeClock(), tmp_path, rate_limit_window=HOUR, **limits).app)
        for limits in ({"rate_limit_per_token": 2, "rate_limit_sync": 0},) * 2
    )
    assert first.get("/api/v1/nodes", headers=ADMIN).status_code == 200
    assert second.get("/api/v1/nodes", headers=ADMIN).status_code == 200
    assert first.get("/api/v1/nodes", headers=ADMIN).status_code == 429  # two replicas, one count


def test_synced_counts_cost_no_store_write_per_request_and_catch_up_at_each_sync(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'counts.db'}")
    migrate(engine)
    repository = RateCountRepository(engine)
    a, b = StoreCounts(repository.add, 3600), StoreCounts(repository.add, 3600)  # synced by hand here
    assert [asyncio.run(a.hit("k", 7, 1)) for _ in range(2)] == [1, 2]
    assert asyncio.run(b.hit("k", 7, 1)) == 1  # a's hits are not in the store yet
    assert repository.add({}) == {}
    a.sync()
    b.sync()
    assert asyncio.run(b.hit("k", 7, 1)) == 4  # a's 2 + b's 1, synced, + this one
    assert repository.add({("k", 7): 0}) == {("k", 7): 3}  # b's latest hit waits for its sync
    a.close()
    b.close()
    assert repository.add({("k", 7): 0}) == {("k", 7): 4}


def test_once_started_counts_reach_the_store_in_the_background(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'counts.db'}")
    migrate(engine)
    repository = RateCountRepository(engine)
    counts = StoreCounts(repository.add, 0.05)
    counts.start()
    try:
        asyncio.run(counts.hit("k", 7, 1))
        wait_until(lambda: repository.add({("k", 7): 0}) == {("k", 7): 1}, 10, "the background sync")
    finally:
        counts.close()


def test_hits_are_kept_while_the_store_does_not_answer(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'counts.db'}")
    migrate(engine)
    repository = RateCountRepository(engine)
    failing = [True]

    def add(hits: Hits) -> Hits:
        if failing.pop():
            raise StoreUnavailable("store unavailable: test")
        return repository.add(hits)

    counts = StoreCounts(add, 3600)
    asyncio.run(counts.hit("k", 7, 1))
    counts.sync()  # fails: kept
    failing.append(False)
    counts.close()  # the last sync on the way out
    assert repository.add({("k", 7): 0}) == {("k", 7): 1}


def test_a_bad_redis_url_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="redis_url"):
        client(tmp_path, redis_url="http://127.0.0.1:6379")
