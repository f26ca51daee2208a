"""Composition root: settings -> adapters -> services -> API and controller loop."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import uuid4

import structlog
from fastapi import FastAPI

from takeover.api.app import create_app
from takeover.api.ratelimit import Counts, Limits, RateLimit, RedisCounts, StoreCounts
from takeover.control.bundle import agent_bundle
from takeover.control.executor import FailoverExecutor
from takeover.control.leadership import Leadership
from takeover.control.loop import ControlLoop
from takeover.control.monitor import NodeMonitor, Watch
from takeover.control.renter import Renter, RentSettings
from takeover.control.services import Services
from takeover.control.standbys import StandbyController
from takeover.control.telemetry import FailoverTelemetry
from takeover.control.values import AgentTimings
from takeover.coordination.redis_client import redis_client
from takeover.coordination.redis_lease import RedisCoordinator
from takeover.domain.failover import FailoverPolicy
from takeover.domain.monitor import MonitorPolicy, TokenBucket
from takeover.domain.rentals import BILLED, Timeouts
from takeover.logsetup import configure_logging
from takeover.metrics import Metrics
from takeover.ports import Clock, Coordinator, Marketplace
from takeover.providers.vast import VastMarketplace, paced
from takeover.regions import MultiRegion, load_config
from takeover.regions.http import health_router, no_regions_router
from takeover.settings import Settings
from takeover.store import Store, make_engine, migrate
from takeover.store.changes import ChangeFeed, watch_sqlite
from takeover.tracing import tracer_provider

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = structlog.get_logger("takeover.main")


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def elapsed(self) -> float:
        return time.monotonic()


@dataclass
class Runtime:
    settings: Settings
    store: Store
    services: Services
    controllers: ControlLoop | None
    app: FastAPI


def open_store(settings: Settings, *, migrated: bool = False) -> Store:
    """The store, migrated; StoreRefused when it is not the one TAKEOVER_STORE_ID names (a lost
    SQLite file is not created anew then)."""
    sqlite_file = (
        settings.store_url.removeprefix("sqlite:///") if settings.store_url.startswith("sqlite:///") else None
    )
    if settings.store_id is not None and sqlite_file is not None and not Path(sqlite_file).exists():
        raise StoreRefused(
            f"TAKEOVER_STORE_ID is {settings.store_id}, and its store {sqlite_file} does not exist: "
            "restore it from a backup (or unset TAKEOVER_STORE_ID to start a new, empty pool)"
        )
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.store_url, stall_limit=settings.stall_limit)
    if not migrated:
        migrate(engine)
    store = Store(
        engine,
        low_score_threshold=settings.low_score_threshold,
        degraded_streak=settings.degraded_heartbeats,
        default_strategy=settings.default_strategy.value,
    )
    store.known_identity = store.identity()
    if settings.store_id is not None and store.known_identity != settings.store_id:
        engine.dispose()
        raise StoreRefused(
            f"TAKEOVER_STORE_ID is {settings.store_id}, but {settings.store_url.split('@')[-1]} holds store "
            f"{store.known_identity}: restore the right one (or unset TAKEOVER_STORE_ID)"
        )
    return store


class StoreRefused(Exception):
    """The store is not the one this control plane was pinned to; the message says what to do."""


def build(
    settings: Settings,
    clock: Clock | None = None,
    *,
    migrated: bool = False,
    traces: TracerProvider | None = None,
) -> Runtime:
    """``traces``: a tracer provider instead of the OTLP one the environment configures (or none)."""
    clock = clock or SystemClock()
    store = open_store(settings, migrated=migrated)
    metrics = Metrics()
    metrics.start_at_zero()
    traces = traces or tracer_provider()
    telemetry = FailoverTelemetry(metrics, traces.get_tracer("takeover") if traces else None)
    timings = AgentTimings(
        settings.heartbeat_interval, settings.fence_after, settings.sync_interval, settings.fence_grace
    )
    market = _market(settings)
    renter = _renter(settings, store, market, metrics, clock) if market is not None else None
    controllers = (
        controller_loop(settings, store, clock, telemetry, timings, renter) if settings.controllers else None
    )
    services = Services(
        store,
        clock,
        metrics,
        heartbeat_batch=settings.heartbeat_batch,
        wake=controllers.wake if controllers else lambda: None,
        agent_timings=timings,
        max_attempts=settings.max_attempts,
        execute_timeout=settings.stop_timeout + settings.max_attempts * settings.restore_timeout + 10,
        renter=renter,
        telemetry=telemetry,
        stream_accepts=(settings.stream_accept_rate, settings.stream_accept_burst),
        route_address=settings.route_address,
    )
    services.drain_file = settings.drain_file
    _watch(metrics, store, clock, renter is not None)
    if settings.admin_token is not None:
        services.ensure_admin_token(settings.admin_token.get_secret_value())
    app = _app(settings, store, services, controllers, metrics, traces)
    return Runtime(settings, store, services, controllers, app)


def _watch(metrics: Metrics, store: Store, clock: Clock, renting: bool) -> None:
    """Gauges read from the store at scrape time (shared by every replica)."""
    metrics.watch_pool(store.pool.counts)
    metrics.watch_nodes(store.nodes.find, clock.now)
    metrics.watch_snapshots(store.instances.find, clock.now)
    if renting:
        metrics.watch_rentals(lambda: store.rentals.find(BILLED))


def _app(
    settings: Settings,
    store: Store,
    services: Services,
    controllers: ControlLoop | None,
    metrics: Metrics,
    traces: TracerProvider | None,
) -> FastAPI:
    """The API with its lifespan (controllers, region groups, shared counts, change feed), the
    region health routes and the rate limit."""
    regions = _regions(settings, metrics)
    shared = redis_client(settings, retries=0)  # over the limit or not, a request never waits for Redis
    counts = (
        RedisCounts(shared)
        if shared is not None
        else StoreCounts(store.rate_counts.add, settings.rate_limit_sync)
    )
    app = create_app(
        services,
        controllers,
        max_body_bytes=settings.max_body_bytes,
        lifespan=_lifespan(controllers, regions, counts, traces, _change_feed(store, services)),
        tracer_provider=traces,
    )
    app.include_router(health_router(regions) if regions is not None else no_regions_router())
    proxies = frozenset(a.strip() for a in settings.trusted_proxies.split(",") if a.strip())
    limits = Limits(
        settings.rate_limit_per_token, settings.rate_limit_per_address, settings.rate_limit_window, proxies
    )
    app.add_middleware(RateLimit, limits=limits, counts=counts)
    return app


def worker_app() -> FastAPI:
    """App factory for `takeover serve --workers N`: the parent validated and migrated."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    app = build(settings, migrated=True).app
    tune_gc()
    return app


def tune_gc() -> None:
    """Once built: what start-up allocated is left out of every later collection, and the young
    generation is collected every 50,000 allocations instead of 700. Heartbeats allocate many
    short-lived objects (freed by reference counting, not by the collector); with the defaults,
    collections walking every open stream's objects cost a sixth of the stream path's throughput
    (4,773 vs 5,564 heartbeats/s, docs/BENCHMARKS.md)."""
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def _market(settings: Settings) -> Marketplace | None:
    """The marketplace failovers may rent from; None (the pool's own nodes only) without a key."""
    if settings.provider == "local":
        return None
    if settings.vast_api_key is None:
        log.error(
            "VAST_API_KEY is not set: renting is off, failovers use the pool's own nodes only",
            provider=settings.provider,
        )
        return None
    return VastMarketplace(
        settings.vast_api_key.get_secret_value(),
        settings.vast_url,
        settings.regions_of_vast,
        intervals=paced(settings.rent_pace),
        disk_gb=settings.rent_disk_gb,
    )


def _renter(settings: Settings, store: Store, market: Marketplace, metrics: Metrics, clock: Clock) -> Renter:
    assert settings.public_url is not None  # Settings refuses a provider without one
    rent = RentSettings(
        budget=settings.rent_max_hourly,
        timeouts=Timeouts(
            rent=settings.seconds("rent_timeout"),
            join=settings.seconds("rent_join_timeout"),
            idle=settings.seconds("rent_idle_grace"),
        ),
        public_url=settings.public_url,
        image=settings.rent_image,
        disk_gb=settings.rent_disk_gb,
        env=settings.rent_env,
        label_prefix=settings.rent_label,
        max_instances=settings.rent_max_instances,
    )
    # Built now, off the way: the first rented machine's download must not wait for it.
    threading.Thread(target=agent_bundle, name="agent-bundle", daemon=True).start()
    return Renter(store, market, rent, metrics, clock)


def controller_loop(
    settings: Settings,
    store: Store,
    clock: Clock,
    telemetry: FailoverTelemetry,
    timings: AgentTimings,
    renter: Renter | None,
) -> ControlLoop:
    metrics = telemetry.metrics
    holder = settings.replica_id or f"{socket.gethostname()}-{os.getpid()}-{uuid4().hex[:6]}"
    lease_ttl = settings.seconds("lease_ttl")
    monitor_policy = MonitorPolicy(
        offline_after=settings.seconds("offline_after"),
        brake_fraction=settings.brake_fraction,
        brake_min_nodes=settings.brake_min_nodes,
        degraded_streak=settings.degraded_heartbeats,
        retry_after=settings.seconds("failover_retry_after"),
        default_strategy=settings.default_strategy.value,
    )
    bucket = TokenBucket.full(settings.failover_rate, settings.failover_burst, clock.now())
    failover_policy = FailoverPolicy(
        stop_timeout=settings.seconds("stop_timeout"),
        restore_timeout=settings.seconds("restore_timeout"),
        max_attempts=settings.max_attempts,
    )
    rent_from = renter.market.name if renter is not None else None
    return ControlLoop(
        Leadership(_coordinator(settings, store), holder, lease_ttl),
        NodeMonitor(
            store,
            monitor_policy,
            bucket,
            telemetry,
            clock,
            Watch(lease_ttl.total_seconds(), timings, settings.fence_margin),
            timedelta(seconds=settings.score_sample_interval),
        ),
        StandbyController(store, rent_from),
        FailoverExecutor(
            store,
            failover_policy,
            holder,
            timedelta(seconds=lease_ttl.total_seconds()),
            telemetry,
            timings.standby_report_interval,
            rent_from=rent_from,
            max_offers=settings.rent_max_offers,
        ),
        clock,
        settings.monitor_interval,
        metrics,
        renter,
    )


def _coordinator(settings: Settings, store: Store) -> Coordinator:
    """The leader lease: in the store, or in Redis (with the store's epoch as fence)."""
    if settings.lease_backend != "redis":
        return store.coordinator
    client = redis_client(settings, retries=1)  # one reconnect: to the new master after a failover
    assert client is not None  # Settings refuses the redis backend without a Redis
    return RedisCoordinator(client, store.coordinator)


def _regions(settings: Settings, metrics: Metrics) -> MultiRegion | None:
    """The application database groups to watch (TAKEOVER_REGIONS_CONFIG), served at /health/connections
    and, with their takeover_multi_region_* metrics, on this replica's /metrics."""
    if settings.regions_config is None:
        return None
    return MultiRegion(load_config(settings.regions_config), registry=metrics.registry)


def _change_feed(store: Store, services: Services) -> ChangeFeed | None:
    """What wakes the agent streams and route watches: on SQLite, this process's own writes (watched from now on);
    on PostgreSQL, every writer's, through a LISTEN started with the app."""
    if store.engine.dialect.name == "sqlite":
        watch_sqlite(store.engine, services.pushes.notify, services.routes.notify)
        return None
    return ChangeFeed(store.engine.url, services.pushes.notify, services.routes.notify)


def _lifespan(
    controllers: ControlLoop | None,
    regions: MultiRegion | None,
    counts: Counts,
    traces: TracerProvider | None,
    feed: ChangeFeed | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        counts.start()
        if feed is not None:
            feed.start()
        if regions is not None:
            regions.start()
        stop = asyncio.Event()
        task = asyncio.create_task(controllers.run(stop)) if controllers is not None else None
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task  # hands the lease over on the way out
            if regions is not None:
                regions.close()
            await asyncio.to_thread(counts.close)  # the last rate-limit counts reach the store
            if feed is not None:
                await asyncio.to_thread(feed.close)
            if traces is not None:
                await asyncio.to_thread(traces.shutdown)  # the last spans reach the collector

    return lifespan
