"""Fixtures of the store contracts: a migrated store of each backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from takeover.store import make_engine, migrate


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(store_url)
    migrate(engine)
    yield engine
    engine.dispose()
