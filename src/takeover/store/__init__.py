"""The SQL store: one engine, a repository per aggregate. SQLite or PostgreSQL."""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa

from takeover.domain.errors import StoreUnavailable
from takeover.store.engine import make_engine, migrate, pending_migration, store_file_problem
from takeover.store.failovers import FailoverRepository
from takeover.store.heartbeats import HeartbeatResult
from takeover.store.instances import InstanceRepository
from takeover.store.jointokens import JoinTokenRepository
from takeover.store.leases import StoreCoordinator
from takeover.store.logs import LogRepository
from takeover.store.nodes import NodeRepository
from takeover.store.pool import PoolRepository, PoolSnapshot
from takeover.store.ratecounts import RateCountRepository
from takeover.store.regiongroups import RegionGroupRepository
from takeover.store.rentals import RentalRepository
from takeover.store.scores import ScoreRepository
from takeover.store.standbys import StandbyRepository
from takeover.store.tables import store_identity
from takeover.store.tokens import TokenRecord, TokenRepository
from takeover.store.volumes import VolumeRepository


class Store:
    def __init__(
        self,
        engine: sa.Engine,
        *,
        low_score_threshold: float,
        degraded_streak: int,
        default_strategy: str = "cpu_standby",
    ) -> None:
        self.engine = engine
        self.known_identity: UUID | None = None  # the store's identity at start (open_store)
        self.nodes = NodeRepository(engine, low_score_threshold, degraded_streak)
        self.instances = InstanceRepository(engine, degraded_streak)
        self.failovers = FailoverRepository(engine, degraded_streak, default_strategy)
        self.tokens = TokenRepository(engine)
        self.join_tokens = JoinTokenRepository(engine)
        self.volumes = VolumeRepository(engine)
        self.logs = LogRepository(engine)
        self.region_groups = RegionGroupRepository(engine)
        self.standbys = StandbyRepository(engine, degraded_streak)
        self.pool = PoolRepository(engine)
        self.coordinator = StoreCoordinator(engine)
        self.rate_counts = RateCountRepository(engine)
        self.rentals = RentalRepository(engine)
        self.scores = ScoreRepository(engine)

    def identity(self) -> UUID | None:
        """Which store this is (migration 0015 made it); None before the schema exists."""
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(store_identity.c.id)).scalar_one_or_none()
        return UUID(str(found)) if found is not None else None

    def not_ready(self) -> str | None:
        """Why this replica must not take traffic now (None: ready): store down, schema behind,
        or no longer the store it started on (its file removed, or another database)."""
        problem = store_file_problem(self.engine)
        if problem is not None:
            return f"{problem}: restore it and restart takeover serve"
        try:
            behind = pending_migration(self.engine)
            if behind is None and self.known_identity is not None and self.identity() != self.known_identity:
                return f"the store is no longer the one this replica started on ({self.known_identity})"
            return behind or self._unwritable()
        except StoreUnavailable as error:
            return error.message.replace("store unavailable", "store unreachable", 1)

    def _unwritable(self) -> str | None:
        """A store that still answers reads but refuses writes (a read-only file or disk, a
        PostgreSQL standby) acknowledges no heartbeat: this replica must not look ready."""
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.update(store_identity).values(id=store_identity.c.id))
        except (StoreUnavailable, sa.exc.DBAPIError) as error:
            reason = error.message if isinstance(error, StoreUnavailable) else str(error.orig).splitlines()[0]
            return f"the store cannot be written: {reason}"
        return None

    def reachable(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except StoreUnavailable:
            return False
        return True


__all__ = [
    "HeartbeatResult",
    "PoolSnapshot",
    "Store",
    "TokenRecord",
    "make_engine",
    "migrate",
]
