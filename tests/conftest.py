"""Shared fixtures: a real PostgreSQL server per test session, stores on SQLite and PostgreSQL,
and a control plane built around a fake clock whose controller cycles the tests drive."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from takeover.main import Runtime, build
from takeover.settings import Settings
from takeover.store import make_engine, migrate
from takeover.testing import FakeClock
from tests.pgserver import PostgresServer
from tests.redisserver import RedisServer, Sentinels

_counter = itertools.count()
FAST = {
    "heartbeat_interval": 1.0,
    "fence_after": 3.0,
    "fence_margin": 1.0,
    "offline_after": 5.0,
    "monitor_interval": 1.0,
    "lease_ttl": 10.0,
    "stop_timeout": 10.0,
    "restore_timeout": 10.0,
    "failover_retry_after": 30.0,
}


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sentinels() -> Iterator[Sentinels]:
    """A Redis master, its replica, and three Sentinels watching them."""
    watching = Sentinels()
    try:
        yield watching.start()
    finally:
        watching.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        template = "takeover_template"
        engine = make_engine(server.create_database(template))
        migrate(engine)
        engine.dispose()  # a template must have no open sessions to be copied
        yield server
    finally:
        server.stop()


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def new_store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database on ``backend``."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / f'takeover-{next(_counter)}.db'}"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.create_database(f"t{next(_counter)}", template="takeover_template")


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return new_store_url(request.param, request, tmp_path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_runtime(url: str, clock: FakeClock, tmp_path: Path, **overrides: object) -> Runtime:
    values = {
        **FAST,
        "database_url": url,
        "data_dir": str(tmp_path),
        "admin_token": "admin-secret",
        **overrides,
    }
    runtime = build(Settings.model_validate(values), clock)
    runtime.store.nodes.stamps = lambda _: clock.now()  # PostgreSQL's own clock knows nothing of the fake one
    return runtime


@pytest.fixture
def runtime(store_url: str, clock: FakeClock, tmp_path: Path) -> Iterator[Runtime]:
    runtime = make_runtime(store_url, clock, tmp_path)
    yield runtime
    runtime.store.engine.dispose()


@pytest.fixture
def client(runtime: Runtime) -> TestClient:
    return TestClient(runtime.app, headers={"Authorization": "Bearer admin-secret"})
