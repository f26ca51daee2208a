"""The store a control plane runs on stays that store: a SQLite file removed under it stops
every write and /readyz, and a control plane pinned to a store refuses any other at start."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from takeover.main import StoreRefused, open_store
from takeover.settings import Settings
from takeover.testing import FakeClock
from tests.conftest import FAST, make_runtime


def test_a_sqlite_file_removed_under_a_running_control_plane_stops_writes_and_readiness(
    tmp_path: Path,
) -> None:
    runtime = make_runtime(f"sqlite:///{tmp_path / 'takeover.db'}", FakeClock(), tmp_path)
    client = TestClient(runtime.app, headers={"Authorization": "Bearer admin-secret"})
    assert client.get("/readyz").status_code == 200
    assert client.post("/api/v1/tokens", json={"role": "user", "subject": "alice"}).status_code == 201
    for leftover in tmp_path.glob("takeover.db*"):
        leftover.unlink()  # an operator's rm -rf of the data directory
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "was removed" in ready.json()["reason"]
    refused = client.post("/api/v1/tokens", json={"role": "user", "subject": "bob"})
    assert refused.status_code == 503  # not acknowledged into a file that is gone
    assert "was removed" in refused.json()["detail"]
    runtime.store.engine.dispose()


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings.model_validate({**FAST, "data_dir": str(tmp_path), **values})


def test_a_control_plane_pinned_to_its_store_refuses_a_lost_or_another_one(tmp_path: Path) -> None:
    first = open_store(settings(tmp_path / "a"))
    identity = first.known_identity
    assert identity is not None
    first.engine.dispose()
    again = open_store(settings(tmp_path / "a", store_id=identity))  # the same store: fine
    assert again.not_ready() is None
    again.engine.dispose()
    with pytest.raises(StoreRefused, match="does not exist"):
        open_store(settings(tmp_path / "lost", store_id=identity))
    assert not (tmp_path / "lost" / "takeover.db").exists()  # no new, empty store made
    other = open_store(settings(tmp_path / "b"))
    other.engine.dispose()
    with pytest.raises(StoreRefused, match=f"holds store {other.known_identity}"):
        open_store(settings(tmp_path / "b", store_id=uuid4()))
