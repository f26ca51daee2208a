"""Connection groups and their policy, from a TOML or YAML file and document 004's variables.

Times are in milliseconds, as in the document (``failure_window = 60000``); the environment
variables MULTI_REGION_ENABLED, MULTI_REGION_AUTO_FAILBACK and
MULTI_REGION_HEALTH_CHECK_INTERVAL override every group's policy.
"""

from __future__ import annotations

import os
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from takeover.domain.regions import GroupPolicy, ReadBalance, RegionSpec

Id = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
_PRIORITIES = {"primary": 1, "secondary": 2, "tertiary": 3, "quaternary": 4}


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and each bad field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegionConfig(_Model):
    connection_id: Id
    region: Id
    priority: int = Field(ge=1, le=100)
    dsn: str | None = Field(None, min_length=1, description="libpq connection string or postgresql:// URL")
    url: str | None = Field(
        None, min_length=1, description="an SQLAlchemy URL instead of dsn, for any database it supports"
    )
    latency_ms: float = Field(0.0, ge=0)
    read_only: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> RegionConfig:
        if (self.dsn is None) == (self.url is None):
            raise ValueError(
                f"region {self.connection_id}: give exactly one of dsn (psycopg) or url (SQLAlchemy)"
            )
        return self

    @field_validator("priority", mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        return _PRIORITIES.get(value.lower(), value) if isinstance(value, str) else value


class PolicyConfig(_Model):
    max_failures: int = Field(5, ge=1, le=10_000)
    failure_window: int = Field(60_000, ge=1, description="ms")
    health_check_interval: int = Field(30_000, ge=10, description="ms")
    failback_delay: int = Field(300_000, ge=0, description="ms")
    auto_failback: bool = True
    follow_writable: bool = False
    connect_timeout: int = Field(1_000, ge=10, description="ms, per connection attempt and health check")
    stall_check_after: int = Field(
        250, ge=10, description="ms; a query running this long makes the group check that its server answers"
    )
    max_lag: int | None = Field(None, ge=0, description="ms; reads skip replicas further behind")
    read_balance: ReadBalance = ReadBalance.CURRENT

    def policy(self) -> GroupPolicy:
        return GroupPolicy(
            max_failures=self.max_failures,
            failure_window=timedelta(milliseconds=self.failure_window),
            health_check_interval=timedelta(milliseconds=self.health_check_interval),
            failback_delay=timedelta(milliseconds=self.failback_delay),
            auto_failback=self.auto_failback,
            follow_writable=self.follow_writable,
            max_lag=timedelta(milliseconds=self.max_lag) if self.max_lag is not None else None,
            read_balance=self.read_balance,
        )


class GroupConfig(_Model):
    group_id: Id
    description: str = ""
    regions: list[RegionConfig] = Field(min_length=1)
    current_region: str | None = None
    failover_policy: PolicyConfig = Field(default_factory=PolicyConfig)

    @model_validator(mode="after")
    def _check(self) -> GroupConfig:
        ids = [r.connection_id for r in self.regions]
        if len(set(ids)) != len(ids):
            raise ValueError(f"a connection_id appears twice in {ids}")
        if self.current_region is not None and self.current_region not in ids:
            raise ValueError(f"current_region {self.current_region!r} is not one of {ids}")
        return self

    def specs(self) -> list[RegionSpec]:
        return [
            RegionSpec(r.connection_id, r.region, r.priority, r.latency_ms, r.read_only) for r in self.regions
        ]


class SharedConfig(_Model):
    """Where the shared decision lives: a takeover control plane (or its load balancer)."""

    url: str = Field(pattern=r"^https?://")
    token_env: str = Field("TAKEOVER_TOKEN", description="the variable holding an API token")


class MultiRegionConfig(_Model):
    enabled: bool = True
    groups: list[GroupConfig] = Field(default_factory=list)
    shared: SharedConfig | None = None

    @model_validator(mode="after")
    def _unique(self) -> MultiRegionConfig:
        ids = [g.group_id for g in self.groups]
        if len(set(ids)) != len(ids):
            raise ValueError(f"a group_id appears twice in {ids}")
        return self


def load_config(path: Path, environ: dict[str, str] | None = None) -> MultiRegionConfig:
    """Read ``path`` (.toml, .yaml or .yml), then apply the MULTI_REGION_* variables."""
    env = os.environ if environ is None else environ
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.').upper()}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table with 'groups'")
    overrides = {
        "enabled": env.get("MULTI_REGION_ENABLED"),
        "auto_failback": env.get("MULTI_REGION_AUTO_FAILBACK"),
        "health_check_interval": env.get("MULTI_REGION_HEALTH_CHECK_INTERVAL"),
    }
    if overrides["enabled"] is not None:
        data["enabled"] = overrides["enabled"]
    for group in data.get("groups") or []:
        if isinstance(group, dict):
            policy = group.setdefault("failover_policy", {})
            for key in ("auto_failback", "health_check_interval"):
                if overrides[key] is not None and isinstance(policy, dict):
                    policy[key] = overrides[key]
    try:
        return MultiRegionConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
