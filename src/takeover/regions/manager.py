"""The application's entry point: every connection group, events, and the health checker."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from prometheus_client import REGISTRY, CollectorRegistry

from takeover.domain.regions import EventKind, RegionEvent
from takeover.regions.config import ConfigError, MultiRegionConfig, load_config
from takeover.regions.drivers import Params
from takeover.regions.group import RegionGroup
from takeover.regions.metrics import RegionMetrics
from takeover.regions.shared import SharedDecision

Listener = Callable[[RegionEvent], None]


class UnknownGroup(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class MultiRegion:
    """``query_with_failover`` and friends over the configured groups.

    ``start()`` runs the health checker (probes of down regions, failback) on a daemon thread;
    ``check()`` runs one round now. Listeners get every failover, failback and all-failed event.
    """

    def __init__(
        self,
        config: MultiRegionConfig,
        registry: CollectorRegistry = REGISTRY,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.metrics = RegionMetrics(registry)
        self._listeners: dict[EventKind, list[Listener]] = {kind: [] for kind in EventKind}
        self.shared = _shared(config)
        self.groups = {
            g.group_id: RegionGroup(g, self.metrics, self._emit, clock, shared=self.shared)
            for g in config.groups
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_file(cls, path: Path, registry: CollectorRegistry = REGISTRY) -> MultiRegion:
        return cls(load_config(path), registry)

    # events -------------------------------------------------------------------------------
    def on_failover(self, listener: Listener) -> None:
        self._listeners[EventKind.FAILOVER].append(listener)

    def on_failback(self, listener: Listener) -> None:
        self._listeners[EventKind.FAILBACK].append(listener)

    def on_all_regions_failed(self, listener: Listener) -> None:
        self._listeners[EventKind.ALL_REGIONS_FAILED].append(listener)

    def _emit(self, event: RegionEvent) -> None:
        for listener in self._listeners[event.kind]:
            listener(event)

    # queries ------------------------------------------------------------------------------
    def group(self, group_id: str) -> RegionGroup:
        try:
            return self.groups[group_id]
        except KeyError:
            raise UnknownGroup(f"no connection group {group_id!r}; known: {sorted(self.groups)}") from None

    def query_with_failover(
        self, group_id: str, sql: str, params: Params = None, write: bool | None = None
    ) -> list[tuple[Any, ...]]:
        """One statement on the group's best region; ``write`` None: decided by parsing ``sql``."""
        group = self.groups.get(group_id)
        return (group or self.group(group_id)).query(sql, params, write)

    async def aquery_with_failover(
        self, group_id: str, sql: str, params: Params = None, write: bool | None = None
    ) -> list[tuple[Any, ...]]:
        """The same for asyncio code, on psycopg's AsyncConnection (SQLAlchemy groups: a thread)."""
        group = self.group(group_id)
        if not group.native_async:
            return await asyncio.to_thread(group.query, sql, params, write)
        return await group.aquery(sql, params, write)

    @contextmanager
    def connection(self, group_id: str, write: bool) -> Iterator[Any]:
        """A connection for several statements (psycopg's, or SQLAlchemy's for url regions);
        say whether any of them writes."""
        with self.group(group_id).connection(write) as conn:
            yield conn

    @contextmanager
    def transaction(self, group_id: str, write: bool) -> Iterator[Any]:
        with (
            self.connection(group_id, write) as conn,
            conn.transaction() if isinstance(conn, psycopg.Connection) else conn.begin(),  # SQLAlchemy's
        ):
            yield conn

    @asynccontextmanager
    async def aconnection(self, group_id: str, write: bool) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self.group(group_id).aconnection(write) as conn:
            yield conn

    @asynccontextmanager
    async def atransaction(self, group_id: str, write: bool) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self.aconnection(group_id, write) as conn, conn.transaction():
            yield conn

    # operators ----------------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        return [g.status() for g in self.groups.values()]

    def failover(self, group_id: str, connection_id: str) -> RegionEvent:
        return self.group(group_id).failover_to(connection_id)

    def failback(self, group_id: str) -> RegionEvent | None:
        return self.group(group_id).failback()

    def check(self, everything: bool = False) -> dict[tuple[str, str], str | None]:
        """One round of health checks (the due ones, or every region), then the shared decision.

        With ``everything``, returns each region's error now (None: it answered)."""
        answers: dict[tuple[str, str], str | None] = {}
        for group_id, group in self.groups.items():
            if everything:
                for connection_id in group.book.regions:
                    answers[(group_id, connection_id)] = group.probe(connection_id)
            else:
                group.probe_due()
            group.sync_shared()
        return answers

    def start(self, tick: float = 0.05) -> None:
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(tick):
                self.check()

        self._thread = threading.Thread(target=loop, name="takeover-regions-health", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for group in self.groups.values():
            group.close()
        if self.shared is not None:
            self.shared.close()

    def __enter__(self) -> MultiRegion:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shared(config: MultiRegionConfig) -> SharedDecision | None:
    if config.shared is None:
        return None
    token = os.environ.get(config.shared.token_env)
    if not token:
        raise ConfigError(f"shared.token_env names {config.shared.token_env}, which is not set")
    return SharedDecision(config.shared.url, token)
