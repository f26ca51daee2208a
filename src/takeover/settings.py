"""Settings, typed and validated once in the composition root; every error reported together."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal
from uuid import UUID

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from takeover.control.bundle import python_tag
from takeover.domain.strategies.base import StrategyName, parse_strategy

FENCE_GRACE = 1.0  # at most, seconds between a fence's SIGTERM and its SIGKILL


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAKEOVER_", extra="ignore", populate_by_name=True)

    data_dir: Path = Path("takeover-data")
    database_url: str | None = Field(None, description="default: SQLite file in data_dir")
    store_id: UUID | None = Field(
        None, description="the store this control plane runs on: any other (a new empty one) is refused"
    )
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64, description="server processes sharing the store")
    admin_token: SecretStr | None = None
    controllers: bool = Field(
        True, validation_alias=AliasChoices("TAKEOVER_CONTROLLERS", "ENABLE_CRON", "controllers")
    )
    replica_id: str | None = None
    rate_limit_per_token: int = Field(2000, ge=0, description="requests per window per token; 0: off")
    rate_limit_per_address: int = Field(0, ge=0, description="per client address; 0: off (agents behind NAT)")
    rate_limit_window: float = Field(10.0, gt=0, le=3600, description="seconds")
    rate_limit_sync: float = Field(
        1.0,
        ge=0,
        le=60,
        description="without Redis: seconds between adding counts to the store's; 0: each request",
    )
    trusted_proxies: str = Field(
        "", description="comma-separated addresses of balancers whose X-Forwarded-For names the client"
    )
    redis_url: str | None = Field(
        None, pattern=r"^rediss?://", description="Redis for shared rate limit counts (and the lease)"
    )
    redis_sentinel_enabled: bool = Field(
        False,
        validation_alias=AliasChoices(
            "TAKEOVER_REDIS_SENTINEL_ENABLED", "REDIS_SENTINEL_ENABLED", "redis_sentinel_enabled"
        ),
        description="find the Redis master through Sentinel instead of TAKEOVER_REDIS_URL",
    )
    redis_sentinels: str = Field(
        "",
        validation_alias=AliasChoices("TAKEOVER_REDIS_SENTINELS", "REDIS_SENTINELS", "redis_sentinels"),
        description="comma-separated host:port of the Sentinels",
    )
    redis_master_name: str = Field(
        "mymaster",
        min_length=1,
        validation_alias=AliasChoices("TAKEOVER_REDIS_MASTER_NAME", "REDIS_MASTER_NAME", "redis_master_name"),
    )
    redis_password: SecretStr | None = Field(None, description="for the Redis server (not the Sentinels)")
    lease_backend: Literal["store", "redis"] = Field(
        "store", description="where replicas elect the leader; the store fences it either way"
    )
    drain_seconds: float = Field(
        0.0, ge=0, le=600, description="after SIGTERM, fail /readyz this long before shutting down"
    )
    drain_file: Path | None = Field(
        None, description="set by `takeover serve --workers N` for its workers: /readyz fails once it exists"
    )

    heartbeat_interval: float = Field(30.0, gt=0)
    offline_after: float = Field(120.0, gt=0)
    fence_after: float = Field(75.0, gt=0)
    fence_margin: float = Field(10.0, ge=0)
    monitor_interval: float = Field(5.0, gt=0)
    # How often the leader records every node's health score for the console's charts.
    score_sample_interval: float = Field(60.0, gt=0)
    lease_ttl: float = Field(15.0, gt=0)
    stop_timeout: float = Field(60.0, gt=0)
    restore_timeout: float = Field(120.0, gt=0)
    max_attempts: int = Field(3, ge=1)
    default_strategy: StrategyName = Field(
        StrategyName.CPU_STANDBY, description="for instances that name none (snapshot_restore: cpu_standby)"
    )
    sync_interval: float = Field(10.0, gt=0, description="how often warm standbys catch up")

    low_score_threshold: float = Field(30.0, ge=0, le=100)
    degraded_heartbeats: int = Field(5, ge=0)
    brake_fraction: float = Field(0.5, gt=0, le=1)
    brake_min_nodes: int = Field(3, ge=1)
    failover_rate: float = Field(1.0, gt=0, description="automatic failovers per second")
    failover_burst: int = Field(20, ge=1)
    failover_retry_after: float = Field(30.0, ge=0)

    max_body_bytes: int = Field(1_048_576, ge=1024)
    heartbeat_batch: int = Field(1000, ge=1)
    stream_accept_rate: float = Field(
        200.0, gt=0, allow_inf_nan=False, description="new agent streams this replica accepts per second"
    )
    stream_accept_burst: int = Field(200, ge=1, description="new agent streams accepted at once")
    route_address: str | None = Field(
        None,
        description="the stable address clients use for an instance, through your proxy; may name "
        "{name}, {owner}, {number}: e.g. {name}.apps.example.com",
    )
    regions_config: Path | None = Field(
        None, description="takeover.regions groups to health-check and serve at /health/connections"
    )
    provider: Literal["local", "vast"] = Field(
        "local", description="where failovers rent a machine when the pool has none (local: nowhere)"
    )
    vast_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("VAST_API_KEY", "TAKEOVER_VAST_API_KEY", "vast_api_key")
    )
    vast_url: str = Field("https://console.vast.ai", pattern=r"^https?://")
    vast_regions: str = Field(
        "", description="region=CC,CC;region=CC: the countries whose offers are in each region"
    )
    public_url: str | None = Field(
        None, pattern=r"^https?://", description="where a rented machine's agent reaches this control plane"
    )
    rent_max_hourly: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="dollars per hour for every rented machine together"
    )
    rent_image: str = Field(
        default_factory=lambda: f"python:{python_tag()}-slim",
        min_length=1,
        description="what a rented machine boots for an instance without an image (it needs this "
        "control plane's Python minor version)",
    )
    rent_env: dict[str, str] = Field(default_factory=dict, description="JSON: extra env of rented agents")
    rent_disk_gb: int = Field(32, ge=1, le=100_000)
    rent_max_instances: int = Field(
        1, ge=1, le=31, description="instances one rented machine takes (two mapped ports each; Vast maps 64)"
    )
    rent_max_offers: int = Field(3, ge=1, le=50, description="offers one failover tries")
    rent_timeout: float = Field(120.0, gt=0, description="a rent call with no machine found by then failed")
    rent_join_timeout: float = Field(300.0, gt=0, description="a rented agent must join within this")
    rent_idle_grace: float = Field(600.0, gt=0, description="a rented machine running nothing this long goes")
    rent_label: str = Field("takeover", pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")
    rent_pace: float = Field(
        1.0,
        ge=0,
        le=10,
        description="Vast's minimum intervals between calls of one endpoint, scaled by this (1: as Vast "
        "enforces them; a fake marketplace may ask for less)",
    )

    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: Literal["console", "json"] = "console"

    @field_validator("default_strategy", mode="before")
    @classmethod
    def _one_name_per_strategy(cls, value: object) -> object:
        """Aliases are parsed here, once: everything after sees the strategy's own name."""
        return parse_strategy(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_timings(self) -> Settings:
        errors = []
        if self.offline_after <= self.fence_after + self.fence_margin:
            errors.append(
                f"offline_after ({self.offline_after}s) must exceed fence_after ({self.fence_after}s) "
                f"+ fence_margin ({self.fence_margin}s): a node must fence itself before its "
                "instances are started elsewhere"
            )
        if self.fence_after <= self.heartbeat_interval:
            errors.append(
                f"fence_after ({self.fence_after}s) must exceed heartbeat_interval "
                f"({self.heartbeat_interval}s), or healthy nodes fence themselves"
            )
        if self.lease_ttl <= self.monitor_interval:
            errors.append(
                f"lease_ttl ({self.lease_ttl}s) must exceed monitor_interval ({self.monitor_interval}s), "
                "or the leader loses its lease between cycles"
            )
        errors.extend(self._redis_errors())
        if self.provider != "local" and self.public_url is None:
            errors.append(
                f"TAKEOVER_PROVIDER={self.provider} needs TAKEOVER_PUBLIC_URL: the address rented "
                "machines reach this control plane at"
            )
        try:
            _ = self.regions_of_vast  # a typo is reported at start, not at the first rent
        except ValueError as error:
            errors.append(str(error))
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def _redis_errors(self) -> list[str]:
        errors = []
        if self.redis_sentinel_enabled:
            if self.redis_url:
                errors.append("set TAKEOVER_REDIS_URL or REDIS_SENTINEL_ENABLED, not both")
            try:
                if not self.sentinels:
                    errors.append("REDIS_SENTINEL_ENABLED needs REDIS_SENTINELS (host:port,host:port)")
            except ValueError as error:
                errors.append(str(error))
        if self.lease_backend == "redis" and not (self.redis_url or self.redis_sentinel_enabled):
            errors.append("TAKEOVER_LEASE_BACKEND=redis needs TAKEOVER_REDIS_URL or REDIS_SENTINEL_ENABLED")
        return errors

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """REDIS_SENTINELS as (host, port) pairs; ValueError naming the entry that is not host:port."""
        found = []
        for entry in filter(None, (e.strip() for e in self.redis_sentinels.split(","))):
            host, _, port = entry.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"REDIS_SENTINELS entry {entry!r} is not host:port")
            found.append((host.strip("[]"), int(port)))
        return found

    @property
    def regions_of_vast(self) -> dict[str, tuple[str, ...]]:
        """TAKEOVER_VAST_REGIONS parsed: region -> country codes."""
        found = {}
        for entry in filter(None, (e.strip() for e in self.vast_regions.split(";"))):
            region, _, codes = entry.partition("=")
            countries = tuple(c.strip().upper() for c in codes.split(",") if c.strip())
            if not region.strip() or not countries or any(len(c) != 2 or not c.isalpha() for c in countries):
                raise ValueError(
                    f"TAKEOVER_VAST_REGIONS entry {entry!r} is not region=CC[,CC] (two-letter country codes)"
                )
            found[region.strip()] = countries
        return found

    @property
    def fence_grace(self) -> float:
        """SIGTERM to SIGKILL when a node fences itself: within the margin, so that even a
        workload that ignores SIGTERM is dead before ``offline_after`` lets a copy start."""
        return min(FENCE_GRACE, self.fence_margin / 2)

    @property
    def stall_limit(self) -> float:
        """How long a store session of this control plane may sit idle inside a transaction, or
        wait for a lock (PostgreSQL), before the server ends it: a replica paused mid-step must
        release its locks in time for the heartbeats queued behind them to be acknowledged
        before the agents' fences fall, and for the next leader to take the lease."""
        return max(0.5, min(self.lease_ttl / 2, (self.fence_after - self.heartbeat_interval) / 2))

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'takeover.db').resolve()}"

    def seconds(self, name: str) -> timedelta:
        return timedelta(seconds=float(getattr(self, name)))
