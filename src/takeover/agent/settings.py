"""Agent settings: the document's NODE_* variables plus where the control plane and data are."""

from __future__ import annotations

import shlex
import socket
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from takeover.secretenv import secret


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names, *(n.lower() for n in names))


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    takeover_url: str = Field(validation_alias=_env("TAKEOVER_URL"), pattern=r"^https?://")
    node_id: UUID | None = Field(None, validation_alias=_env("NODE_ID"))
    node_token: SecretStr | None = Field(None, validation_alias=_env("NODE_TOKEN"))
    bootstrap_token: SecretStr | None = Field(
        None,
        validation_alias=_env("TAKEOVER_TOKEN"),
        description="an admin token: registers this node only with NODE_ALLOW_ADMIN_TOKEN=true",
    )
    allow_admin_token: bool = Field(False, validation_alias=_env("NODE_ALLOW_ADMIN_TOKEN"))
    join_token: SecretStr | None = Field(
        None,
        validation_alias=_env("TAKEOVER_JOIN_TOKEN"),
        description="a join token (takeover nodes join-token), or a rented machine's one-time token",
    )
    node_name: str = Field(default_factory=socket.gethostname, validation_alias=_env("NODE_NAME"))
    node_region: str = Field("default", validation_alias=_env("NODE_REGION"))
    node_max_instances: int = Field(10, ge=1, le=100_000, validation_alias=_env("NODE_MAX_INSTANCES"))
    advertise_host: str = Field(
        "127.0.0.1",
        validation_alias=_env("NODE_HOST"),
        description="the address this node's instances are reached at: their endpoints' host",
    )
    instance_host: str | None = Field(
        None,
        validation_alias=_env("NODE_INSTANCE_HOST"),
        description="the address instances listen on ($HOST), e.g. 0.0.0.0 behind NAT; default NODE_HOST",
    )
    port_range: str = Field(
        "20000-29999",
        validation_alias=_env("NODE_PORT_RANGE"),
        pattern=r"^\s*[0-9]{1,5}\s*-\s*[0-9]{1,5}\s*$",
    )
    port_map: str = Field(
        "",
        validation_alias=_env("NODE_PORT_MAP"),
        pattern=r"^\s*([0-9]{1,5}(/udp)?:[0-9]{1,5}\s*(,\s*[0-9]{1,5}(/udp)?:[0-9]{1,5}\s*)*)?$",
        description="behind NAT (a rented machine): inside:outside port pairs, 7947/udp:41000 for UDP; "
        "endpoints and the witness address name the outside port",
    )
    data_dir: Path = Field(Path("takeover-agent"), validation_alias=_env("TAKEOVER_AGENT_DIR"))
    snapshot_store: str = Field(
        "takeover-snapshots",
        min_length=1,
        validation_alias=_env("TAKEOVER_SNAPSHOT_STORE", "TAKEOVER_SNAPSHOT_DIR"),
        description="a directory every node shares, or s3://bucket/prefix",
    )
    volume_root: Path | None = Field(
        None,
        validation_alias=_env("NODE_VOLUME_ROOT"),
        description="where this node mounts its region's shared storage (regional volumes)",
    )
    run_as: str | None = Field(
        None,
        validation_alias=_env("NODE_RUN_AS"),
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$",
        description="user[:group] process workloads run as (the agent must run as root)",
    )
    pass_env: str = Field(
        "",
        validation_alias=_env("NODE_PASS_ENV"),
        pattern=r"^\s*([A-Za-z_][A-Za-z0-9_]*\s*(,\s*[A-Za-z_][A-Za-z0-9_]*\s*)*)?$",
        description="names of this node's variables process workloads get too, e.g. LD_LIBRARY_PATH",
    )
    watchdog: Path | None = Field(
        None,
        validation_alias=_env("NODE_WATCHDOG"),
        description="a watchdog device (/dev/watchdog) the agent keeps alive while its fence is live",
    )
    watchdog_timeout: int = Field(5, ge=1, le=3600, validation_alias=_env("NODE_WATCHDOG_TIMEOUT"))
    container_runtime: Literal["podman", "docker", "none"] = Field(
        "podman",
        validation_alias=_env("NODE_CONTAINER_RUNTIME"),
        description="what runs instances that name an image (none: this node runs processes only)",
    )
    node_image: str | None = Field(
        None,
        validation_alias=_env("NODE_IMAGE"),
        description="the image this machine itself is (a rented one): its instances run as processes here",
    )
    container_options: str = Field(
        "",
        validation_alias=_env("NODE_CONTAINER_OPTIONS"),
        description="global options for every podman/docker call, e.g. --runtime runc",
    )
    transport: Literal["stream", "http"] = Field(
        "stream",
        validation_alias=_env("NODE_TRANSPORT"),
        description="stream: one WebSocket for heartbeats and pushed desired state (HTTP while it "
        "reconnects); http: one request per heartbeat",
    )
    witness_port: int = Field(
        7947,
        ge=0,
        le=65535,
        validation_alias=_env("NODE_WITNESS_PORT"),
        description="UDP port (on NODE_HOST) where peers ask which stamp this node holds; 0: any free one",
    )
    heartbeat_interval: float = Field(30.0, gt=0, validation_alias=_env("HEARTBEAT_INTERVAL"))
    snapshot_interval: float = Field(60.0, gt=0, validation_alias=_env("SNAPSHOT_INTERVAL"))
    snapshots_kept: int = Field(5, ge=1, validation_alias=_env("SNAPSHOTS_KEPT"))
    stop_grace: float = Field(5.0, ge=0, validation_alias=_env("STOP_GRACE"))
    max_restarts: int = Field(3, ge=0, validation_alias=_env("MAX_RESTARTS"))
    restart_backoff: float = Field(1.0, ge=0, validation_alias=_env("RESTART_BACKOFF"))
    ready_after: float = Field(10.0, gt=0, validation_alias=_env("READY_AFTER"))
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", validation_alias=_env("TAKEOVER_LOG_LEVEL")
    )
    log_format: Literal["console", "json"] = Field("console", validation_alias=_env("TAKEOVER_LOG_FORMAT"))

    @model_validator(mode="after")
    def _check(self) -> AgentSettings:
        if self.node_id is not None and self.node_token is None:
            raise ValueError("NODE_ID is set but NODE_TOKEN is missing")
        try:
            shlex.split(self.container_options)
        except ValueError as exc:
            raise ValueError(f"NODE_CONTAINER_OPTIONS cannot be split into words: {exc}") from None
        refused = [name for name in self.passed_env if secret(name)]
        if refused:
            raise ValueError(
                f"NODE_PASS_ENV names credentials, which never reach a workload: {', '.join(refused)}"
            )
        low, high = self.ports
        if not 1024 <= low <= high <= 65535:
            raise ValueError(f"NODE_PORT_RANGE {low}-{high} must lie within 1024-65535")
        return self

    @property
    def listen_host(self) -> str:
        """Where instances and the witness listen: NODE_INSTANCE_HOST, else NODE_HOST."""
        return self.instance_host or self.advertise_host

    @property
    def runs(self) -> dict[str, Any]:
        """What the control plane places here by (domain.placement.cannot_run)."""
        return {"containers": self.container_runtime != "none", "image": self.node_image}

    @property
    def passed_env(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.pass_env.split(",") if name.strip())

    def outside(self, port: int, udp: bool = False) -> int:
        """The port clients reach ``port`` of this machine at (NODE_PORT_MAP; itself if unmapped)."""
        for pair in self.port_map.split(","):
            inside, _, out = pair.strip().partition(":")
            if inside and inside == (f"{port}/udp" if udp else str(port)):
                return int(out)
        return port

    @property
    def ports(self) -> tuple[int, int]:
        low, _, high = self.port_range.partition("-")
        return int(low), int(high)


def load_agent_settings() -> AgentSettings:
    """Settings from the environment, or one readable message naming every bad variable."""
    try:
        return AgentSettings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            name = where.upper() if where != "settings" else ""
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{name}: {msg}" if name else msg)
        raise SystemExit("agent configuration: " + "; ".join(problems)) from None
