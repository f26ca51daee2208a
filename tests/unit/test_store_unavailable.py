"""A store that cannot be reached is StoreUnavailable wherever the failure happens (a read, a
transaction, the pool connecting), never a driver's error escaping as a crashed cycle."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from takeover.domain.errors import StoreUnavailable
from takeover.localcluster import free_port
from takeover.store import Store, make_engine


def unreachable(url: str) -> Store:
    return Store(make_engine(url), low_score_threshold=30, degraded_streak=5)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://nobody@127.0.0.1:{port}/none?connect_timeout=2",
        "sqlite:///{missing}/takeover.db",
    ],
    ids=["postgresql", "sqlite"],
)
def test_reads_writes_and_the_checks_say_store_unavailable(url: str, tmp_path: Path) -> None:
    store = unreachable(url.format(port=free_port(), missing=tmp_path / "gone"))
    try:
        with pytest.raises(StoreUnavailable, match="store unavailable"):
            store.nodes.find()  # a read outside any transaction
        with pytest.raises(StoreUnavailable):
            store.tokens.revoke(uuid4(), datetime.now(UTC))
        assert not store.reachable()
        reason = store.not_ready()
        assert reason is not None
        assert reason.startswith("store unreachable")
    finally:
        store.engine.dispose()
