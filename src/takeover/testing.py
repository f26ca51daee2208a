"""Fakes for fast unit tests: a settable clock and an in-memory leader lease.

The in-memory store is the SQL store on an in-memory SQLite database (``memory_store``): the
same code as production, so no second implementation can drift from it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from takeover.ports import LeaseToken
from takeover.store import Store, make_engine, migrate


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now


class MemoryCoordinator:
    """Coordinator port in memory (see ports.Coordinator)."""

    def __init__(self) -> None:
        self._leases: dict[str, LeaseToken] = {}
        self._lock = threading.Lock()

    def acquire(self, name: str, holder: str, ttl: timedelta, now: datetime) -> LeaseToken | None:
        with self._lock:
            held = self._leases.get(name)
            if held is None:
                epoch = 1
            elif held.holder == holder and held.expires_at > now:
                epoch = held.epoch
            elif held.expires_at <= now:
                epoch = held.epoch + 1
            else:
                return None
            token = LeaseToken(name, holder, epoch, now + ttl)
            self._leases[name] = token
            return token

    def release(self, token: LeaseToken) -> bool:
        with self._lock:
            held = self._leases.get(token.name)
            if held is None or (held.holder, held.epoch) != (token.holder, token.epoch):
                return False
            self._leases[token.name] = LeaseToken(
                token.name, token.holder, token.epoch, datetime.min.replace(tzinfo=UTC)
            )
            return True

    def current(self, name: str) -> LeaseToken | None:
        with self._lock:
            return self._leases.get(name)


def memory_store(low_score_threshold: float = 30.0, degraded_streak: int = 5) -> Store:
    engine = make_engine("sqlite://")
    migrate(engine)
    return Store(engine, low_score_threshold=low_score_threshold, degraded_streak=degraded_streak)
