"""What an agent and the control plane exchange at each heartbeat; the agent imports only this side of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field, field_validator

from takeover.api.fields import ImageName, Request, SnapshotId
from takeover.api.specs import SpecOut
from takeover.domain.heartbeat import InstanceReport
from takeover.domain.images import DIGEST
from takeover.domain.models import (
    Gpu,
    InstanceState,
    NodeStatus,
)


class GpuIn(Request):
    """One GPU as NVML reads it."""

    index: int = Field(ge=0, le=1023)
    name: Annotated[str, Field(min_length=1, max_length=200)]
    memory_total_mb: int = Field(ge=0, le=2**31)
    memory_used_mb: int = Field(0, ge=0, le=2**31)
    utilization: float = Field(0.0, ge=0, le=1, description="0..1, of the last sample period")
    temperature_c: float = Field(0.0, ge=-50, le=200)

    def to_gpu(self) -> Gpu:
        return Gpu(**self.model_dump())


class InstanceReportIn(Request):
    id: UUID
    epoch: int = Field(ge=0)
    state: Literal[
        InstanceState.STARTING,
        InstanceState.RUNNING,
        InstanceState.STOPPING,
        InstanceState.FAILED,
        InstanceState.STOPPED,
    ]
    port: int | None = Field(None, ge=1, le=65535, description="where the runner serves")
    host: Annotated[str, Field(max_length=253, pattern=r"^[A-Za-z0-9.:_-]+$")] | None = Field(
        None,
        description="the host its clients reach it at (the agent's NODE_HOST); default: the node's base_url host",
    )
    error: Annotated[str, Field(max_length=2000)] | None = None
    restored_from: SnapshotId | None = Field(None, description="snapshot this runner started from")
    last_snapshot: SnapshotId | None = Field(None, description="newest snapshot this runner took")
    snapshot_error: Annotated[str, Field(max_length=2000)] | None = Field(
        None, description="why this runner's last snapshot failed (none: it did not)"
    )
    log: Annotated[str, Field(max_length=65_536)] | None = Field(
        None, description="what the runner printed since the last accepted heartbeat"
    )
    image_digest: Annotated[str, Field(pattern=rf"^{DIGEST}$", max_length=200)] | None = Field(
        None, description="the digest of the image this runner runs (a container instance)"
    )

    def to_report(self) -> InstanceReport:
        return InstanceReport(
            self.id,
            self.epoch,
            self.state,
            self.port,
            self.error,
            self.restored_from,
            self.last_snapshot,
            self.snapshot_error,
            self.log,
            self.image_digest,
            self.host,
        )


class StandbyReportIn(Request):
    id: UUID
    snapshot: SnapshotId | None = Field(None, description="the snapshot the warm copy now holds")


class HeartbeatIn(Request):
    cpu_load: float = Field(ge=0, le=1, allow_inf_nan=False)
    memory_load: float = Field(ge=0, le=1, allow_inf_nan=False)
    avg_latency_ms: float = Field(0.0, ge=0, le=600_000, allow_inf_nan=False)
    instances: list[InstanceReportIn] = Field(default_factory=list, max_length=10_000)
    standbys: list[StandbyReportIn] = Field(
        default_factory=list, max_length=10_000, description="warm copies synced since the last heartbeat"
    )
    gpus: list[GpuIn] = Field(default_factory=list, max_length=1024, description="this node's GPUs (NVML)")
    fenced: bool = Field(
        False, description="the agent is fenced, or settling after a fence: it runs nothing (scores 0)"
    )
    witness_addr: str | None = Field(
        None,
        max_length=300,
        pattern=r"^\[?[0-9A-Za-z.:-]+\]?:[0-9]{1,5}$",
        description="host:port it answers probes on",
    )
    stamp_held: datetime | None = Field(None, description="the newest acknowledgement stamp it holds")
    held_for: float | None = Field(None, ge=0, le=10**9, allow_inf_nan=False, description="since (seconds)")
    witnesses: list[UUID] | None = Field(None, max_length=16, description="the witnesses it asks")
    containers: bool | None = Field(None, description="it runs image instances in containers")
    image: ImageName | None = Field(None, description="the image this node itself is (a rented machine)")

    @field_validator("gpus")
    @classmethod
    def _one_report_per_gpu(cls, gpus: list[GpuIn]) -> list[GpuIn]:
        indices = [g.index for g in gpus]
        if len(set(indices)) != len(indices):
            raise ValueError("each GPU index may appear once")
        return gpus


class DesiredInstance(BaseModel):
    id: UUID
    name: str
    epoch: int
    spec: SpecOut
    snapshot_requested_at: datetime | None = Field(None, description="take a snapshot if none is newer")
    volume_id: UUID | None = Field(None, description="a regional volume to use as the workspace")
    recovery_point: str | None = Field(
        None, description="the newest snapshot known: if none can be restored, do not start empty"
    )
    start_empty: bool = Field(False, description="an operator accepted starting it empty")
    gpu_indices: list[int] = Field(
        default_factory=list, description="this node's GPUs it runs on (CUDA_VISIBLE_DEVICES / CDI)"
    )


class ReleaseInstance(BaseModel):
    id: UUID
    epoch: int


class WitnessOut(BaseModel):
    id: UUID
    addr: str


class HeartbeatOut(BaseModel):
    node_id: UUID
    health_score: float
    status: NodeStatus
    desired: list[DesiredInstance]
    release: list[ReleaseInstance] = Field(
        description="stop these, snapshot their workspace, then report them stopped (a handover)"
    )
    heartbeat_interval: float
    fence_after: float = Field(description="stop every instance after this long without a heartbeat")
    standby: list[DesiredInstance] = Field(
        default_factory=list, description="keep a synced, not running copy of these (warm pool)"
    )
    sync_interval: float = Field(10.0, description="how often to sync the warm copies")
    fence_grace: float = Field(
        1.0, description="when fencing: SIGTERM, then SIGKILL this long after (within fence_margin)"
    )
    server_time: datetime | None = Field(
        None, description="the control plane's clock when it answered: the agent stamps snapshots by it"
    )
    stamp: datetime | None = Field(None, description="this acknowledgement's stamp, as stored")
    witnesses: list[WitnessOut] = Field(default_factory=list, description="whom to ask (domain.witnesses)")
    witness_lag: float | None = Field(None, description="a witness vouches if its stamp is no newer by more")
    witness_lease: float | None = Field(None, description="how long a vouching answer counts")
