"""The SQL store: one engine, a repository per aggregate. SQLite or PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from takeover.store.engine import make_engine, migrate, pending_migration
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

    def not_ready(self) -> str | None:
        """Why this replica must not take traffic now (None: ready): store down, schema behind."""
        try:
            return pending_migration(self.engine)
        except sa.exc.SQLAlchemyError as error:
            cause = getattr(error, "orig", None) or error
            return f"store unreachable: {str(cause).strip().splitlines()[0]}"

    def reachable(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError:
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
