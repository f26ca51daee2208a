"""Liveness and readiness, as load balancers and Kubernetes probes ask for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from takeover.main import Runtime
from takeover.store import make_engine
from takeover.testing import FakeClock
from tests.api.pool import Pool
from tests.conftest import make_runtime


def test_a_migrated_replica_is_alive_and_ready(client: TestClient) -> None:
    assert client.get("/livez", headers={}).json() == {"status": "alive"}
    ready = client.get("/readyz", headers={})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


def test_a_schema_this_release_does_not_match_is_not_ready(runtime: Runtime, client: TestClient) -> None:
    with runtime.store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0003'"))
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["reason"].startswith("schema at revision 0003, this release needs 0")
    assert client.get("/livez").status_code == 200  # alive: restarting would not help


def test_a_schema_a_newer_release_migrated_keeps_this_replica_ready(
    runtime: Runtime, client: TestClient
) -> None:
    """A rolling upgrade: the first new replica migrated; the old ones must keep serving."""
    with runtime.store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
    assert client.get("/readyz").status_code == 200


def test_a_draining_replica_is_alive_but_not_ready(runtime: Runtime, client: TestClient) -> None:
    runtime.services.draining = True
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()["reason"]) == (503, "draining: shutting down")
    assert client.get("/api/v1/nodes").status_code == 200  # still answering what was sent to it


def test_an_unreachable_store_is_not_ready(runtime: Runtime, client: TestClient) -> None:
    runtime.store.engine.dispose()
    runtime.store.engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["reason"].startswith("store unreachable: connection failed")


def test_a_store_that_answers_reads_but_refuses_writes_is_not_ready(
    runtime: Runtime, client: TestClient
) -> None:
    """A read-only disk or a PostgreSQL standby: every read works, no heartbeat can be committed."""
    make_read_only(runtime.store.engine)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["reason"].startswith("the store cannot be written: ")
    assert "read" in ready.json()["reason"]  # the database's own words
    assert client.get("/api/v1/nodes").status_code == 200  # reads still answered


def test_any_replica_says_which_one_leads(
    pool: Pool, runtime: Runtime, client: TestClient, tmp_path: Path
) -> None:
    assert client.get("/api/v1/leader").json()["holder"] is None  # no cycle ran yet
    assert runtime.controllers is not None
    me = runtime.controllers.leadership.holder
    pool.cycle()
    lease = client.get("/api/v1/leader").json()
    assert (lease["holder"], lease["epoch"], lease["current"], lease["answered_by"]) == (me, 1, True, me)
    node = pool.node("n1")
    refused = client.get("/api/v1/leader", headers={"Authorization": f"Bearer {node.token}"})
    assert refused.status_code == 403  # people only
    api_only = make_runtime(str(runtime.store.engine.url), FakeClock(), tmp_path, controllers=False)
    answered = TestClient(api_only.app, headers=dict(client.headers)).get("/api/v1/leader").json()
    assert (answered["holder"], answered["answered_by"]) == (me, None)


def make_read_only(engine: sa.Engine) -> None:
    """Every connection from now on is opened read-only, as on a read-only disk or a standby."""
    read_only = (
        "PRAGMA query_only = ON"
        if engine.dialect.name == "sqlite"
        else "SET default_transaction_read_only = on"
    )

    def connect(dbapi: Any, _: object) -> None:
        dbapi.execute(read_only)
        dbapi.commit()  # psycopg opened a transaction for the SET: keep it past the pool's rollback

    sa.event.listen(engine, "connect", connect)
    engine.dispose()
