"""Request and response bodies. Requests forbid unknown fields, so a typo is a 422 naming it."""

from __future__ import annotations

import posixpath
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from takeover.domain.failover import Failover, FailoverReason, FailoverStatus
from takeover.domain.heartbeat import InstanceReport
from takeover.domain.images import DIGEST, parse_image
from takeover.domain.models import (
    DEFAULT_MOUNT_PATH,
    Gpu,
    GpuRequest,
    Instance,
    InstanceSpec,
    InstanceState,
    Node,
    NodeStatus,
    RentPolicy,
    Volume,
)
from takeover.domain.snapshots import SnapshotRef

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Region = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
LabelValue = str | int | float | bool


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class NodeCreate(Request):
    name: Name
    region: Region
    base_url: HttpUrl
    max_instances: int = Field(50, ge=1, le=100_000)
    priority: int = Field(0, ge=-1000, le=1000)
    labels: dict[Annotated[str, Field(max_length=100)], LabelValue] = Field(
        default_factory=dict, max_length=100
    )


class NodePatch(Request):
    status: Literal[NodeStatus.ONLINE, NodeStatus.DRAINING, NodeStatus.MAINTENANCE] | None = None
    priority: int | None = Field(None, ge=-1000, le=1000)
    max_instances: int | None = Field(None, ge=1, le=100_000)
    labels: dict[Annotated[str, Field(max_length=100)], LabelValue] | None = Field(None, max_length=100)


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


class GpuOut(BaseModel):
    index: int
    name: str
    memory_total_mb: int
    memory_used_mb: int
    utilization: float
    temperature_c: float


class GpuRequestIn(Request):
    count: int = Field(1, ge=1, le=64)
    names: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list,
        max_length=20,
        description="accepted models, the first preferred (document 002's preferred_gpus); empty: any",
    )
    shared: bool = Field(False, description="may use GPUs other shared instances use")

    def to_request(self) -> GpuRequest:
        return GpuRequest(self.count, tuple(self.names), self.shared)


class RentPolicyIn(Request):
    """May this instance's failovers rent a machine when no node of the pool can take it."""

    max_price: float = Field(gt=0, le=10_000, description="dollars per hour, at most, for the machine")
    gpu_names: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=20, description="accepted GPU models (empty: any)"
    )
    spot: bool = Field(False, description="interruptible offers (cheaper; the machine may be taken back)")

    def to_policy(self) -> RentPolicy:
        return RentPolicy(self.max_price, tuple(self.gpu_names), self.spot)


class RentPolicyOut(BaseModel):
    max_price: float
    gpu_names: list[str]
    spot: bool


class NodeJoin(Request):
    """A rented machine's agent registering with its one-time token (the rental fixes its region)."""

    name: Name
    base_url: HttpUrl
    max_instances: int = Field(1, ge=1, le=100_000)


class GpuRequestOut(BaseModel):
    count: int
    names: list[str]
    shared: bool


class NodeOut(BaseModel):
    id: UUID
    name: str
    region: str
    base_url: str
    status: NodeStatus
    health_score: float
    max_instances: int
    current_instances: int
    cpu_load: float
    memory_load: float
    avg_latency_ms: float
    priority: int
    labels: dict[str, Any]
    gpus: list[GpuOut] = Field(default_factory=list, description="as its agent last read them")
    last_heartbeat_at: datetime | None
    created_at: datetime | None

    @classmethod
    def of(cls, node: Node) -> NodeOut:
        data = {f: getattr(node, f) for f in cls.model_fields}
        return cls.model_validate({**data, "gpus": [asdict(g) for g in node.gpus]})


class NodeCreated(NodeOut):
    api_token: str = Field(description="shown this once; only its hash is stored")


# Wherever an instance or volume id is taken, its short number is too (document 002's ids are integers).
Ref = UUID | Annotated[int, Field(ge=1, le=2**62)]


SnapshotId = Annotated[str, Field(max_length=200, pattern=r"^[0-9]{12}-[0-9]{8}T[0-9]{12}Z-[0-9a-f]+$")]


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
    error: Annotated[str, Field(max_length=2000)] | None = None
    restored_from: SnapshotId | None = Field(None, description="snapshot this runner started from")
    last_snapshot: SnapshotId | None = Field(None, description="newest snapshot this runner took")
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
            self.log,
            self.image_digest,
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

    @field_validator("gpus")
    @classmethod
    def _one_report_per_gpu(cls, gpus: list[GpuIn]) -> list[GpuIn]:
        indices = [g.index for g in gpus]
        if len(set(indices)) != len(indices):
            raise ValueError("each GPU index may appear once")
        return gpus


class SpecIn(Request):
    command: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        default_factory=list,
        max_length=256,
        description="argv of the process; with an image, optional (empty: the image's own command)",
    )
    env: dict[
        Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")],
        Annotated[str, Field(max_length=32_768)],
    ] = Field(default_factory=dict, max_length=256)
    workspace: Annotated[str, Field(max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")] | None = None
    image: Annotated[str, Field(max_length=512)] | None = Field(
        None, description="an OCI image to run as a container, e.g. docker.io/pytorch/pytorch:latest"
    )
    mount_path: Annotated[str, Field(max_length=1024)] = Field(
        DEFAULT_MOUNT_PATH, description="where the container sees its workspace (an absolute path)"
    )

    @field_validator("image")
    @classmethod
    def _image_is_a_reference(cls, image: str | None) -> str | None:
        if image is not None:
            parse_image(image)  # its ValueError names what is wrong
        return image

    @field_validator("mount_path")
    @classmethod
    def _mount_path_is_absolute(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"mount_path {path!r} is not an absolute path (e.g. /workspace)")
        normal = posixpath.normpath(path)
        if normal in ("/", "//"):
            raise ValueError(f"mount_path {path!r} would hide the container's whole filesystem")
        return normal

    @model_validator(mode="after")
    def _runs_something(self) -> SpecIn:
        if self.image is None:
            if not self.command:
                raise ValueError("give a command (the process to run) or an image (a container)")
            program = self.command[0]
            if "/" in program and not program.startswith("/"):
                raise ValueError(
                    f"the program {program!r} is a relative path, which the agent would look up in the "
                    "instance's workspace on the node; give an absolute path (e.g. $PWD/"
                    + program.removeprefix("./")
                    + ") or a program name found on the node's PATH"
                )
        return self

    def to_spec(self) -> InstanceSpec:
        return InstanceSpec(
            tuple(self.command),
            dict(self.env),
            self.workspace,
            image=self.image,
            mount_path=self.mount_path,
        )


class SpecOut(BaseModel):
    command: list[str]
    env: dict[str, str]
    workspace: str | None
    image: str | None = None
    image_digest: str | None = Field(None, description="the image every runner runs, pinned by the first")
    mount_path: str = DEFAULT_MOUNT_PATH

    @classmethod
    def of(cls, spec: InstanceSpec) -> SpecOut:
        return cls(
            command=list(spec.command),
            env=spec.env,
            workspace=spec.workspace,
            image=spec.image,
            image_digest=spec.image_digest,
            mount_path=spec.mount_path,
        )

    def to_spec(self) -> InstanceSpec:
        return InstanceSpec(
            tuple(self.command),
            dict(self.env),
            self.workspace,
            self.image,
            self.image_digest,
            self.mount_path,
        )


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


class SelectIn(Request):
    region: Region | None = None
    exclude: list[UUID] = Field(default_factory=list, max_length=10_000)


class InstanceCreate(Request):
    name: Name
    spec: SpecIn
    preferred_region: Region | None = None
    failover_enabled: bool = True
    failover_strategy: (
        Literal["warm_pool", "cpu_standby", "snapshot_restore", "both", "regional_volume", "disabled"] | None
    ) = None
    volume_id: Ref | None = Field(None, description="a regional volume: the instance runs in its region")
    gpus: GpuRequestIn | None = Field(None, description="GPUs it needs, of one model")
    rent: RentPolicyIn | None = Field(
        None, description="rent a machine for its failovers when the pool has none (off by default)"
    )


class AssignIn(Request):
    node_id: UUID


class InstanceOut(BaseModel):
    id: UUID
    number: int = Field(description="a short id, accepted wherever the id is")
    owner: str
    name: str
    spec: SpecOut
    node_id: UUID | None
    epoch: int
    state: InstanceState
    preferred_region: str | None
    failover_enabled: bool
    failover_strategy: str | None
    last_failover_at: datetime | None
    created_at: datetime | None
    endpoint: str | None = Field(description="host:port of the current runner, while it runs")
    last_error: str | None
    restored_from: str | None
    last_snapshot: str | None
    snapshot_requested_at: datetime | None
    volume_id: UUID | None
    standby_node_id: UUID | None
    standby_synced_at: datetime | None
    standby_snapshot: str | None
    recovery_point: str | None = Field(
        description="the newest snapshot any runner took or started from; it never starts empty after one"
    )
    start_empty: bool = Field(description="an operator chose to start it empty if nothing restores")
    gpus: GpuRequestOut | None = Field(None, description="the GPUs it asks for")
    gpu_indices: list[int] = Field(default_factory=list, description="its node's GPUs it holds")
    rent: RentPolicyOut | None = Field(None, description="whether and how its failovers may rent")

    @classmethod
    def of(cls, instance: Instance) -> InstanceOut:
        data = {f: getattr(instance, f) for f in cls.model_fields if f not in ("spec", "gpus", "rent")}
        gpus, rent = instance.gpus, instance.rent
        request = None
        if gpus is not None:
            request = GpuRequestOut(count=gpus.count, names=list(gpus.names), shared=gpus.shared)
        policy = None
        if rent is not None:
            policy = RentPolicyOut(max_price=rent.max_price, gpu_names=list(rent.gpu_names), spot=rent.spot)
        return cls.model_validate(
            {**data, "spec": SpecOut.of(instance.spec), "gpus": request, "rent": policy}
        )


class LogChunk(BaseModel):
    id: int
    epoch: int
    node_id: UUID
    at: datetime
    text: str


class LogsOut(BaseModel):
    chunks: list[LogChunk] = Field(description="oldest first")
    next: int = Field(description="pass as ?after= to get only what comes next")


class FailoverCreate(Request):
    instance_id: Ref
    reason: FailoverReason = FailoverReason.MANUAL
    target_node_id: UUID | None = None
    start_empty: bool = Field(
        False,
        description="admin only: if no snapshot can be restored, start it with an empty workspace "
        "(its data is lost); refused while it runs",
    )

    @field_validator("reason")
    @classmethod
    def _not_node_failure(cls, reason: FailoverReason) -> FailoverReason:
        if reason is FailoverReason.NODE_FAILURE:
            raise ValueError("node_failure is declared by the node monitor, not requested")
        return reason


class FailoverFinish(Request):
    success: bool
    error: Annotated[str, Field(max_length=2000)] | None = None


class AttemptOut(BaseModel):
    strategy: str
    node_id: UUID | None
    started_at: datetime | None = Field(None, description="when it was placed (none: it could not even try)")
    ms: float | None = Field(None, description="how long it took (none: still going)")
    error: str | None = None
    rental: dict[str, Any] | None = Field(
        None, description="the rented machine it was on, or that failed to come"
    )


class FailoverOut(BaseModel):
    id: UUID
    instance_id: UUID
    source_node_id: UUID | None
    target_node_id: UUID | None
    requested_target_id: UUID | None
    reason: FailoverReason
    status: FailoverStatus
    backup_id: str | None
    error: str | None
    attempts: int
    tried_node_ids: list[UUID]
    timings: dict[str, float]
    created_at: datetime
    completed_at: datetime | None
    strategy: str | None = Field(description="the strategy chain this failover runs")
    start_empty: bool = Field(description="an operator allowed an empty start if nothing restores")
    attempt_log: list[AttemptOut] = Field(description="each try, in order")
    backup_taken_at: datetime | None = Field(description="when the restored snapshot was taken")
    backup_age_s: float | None = Field(
        description="how old that snapshot was when the failover began: the data it could not bring"
    )

    @classmethod
    def of(cls, failover: Failover) -> FailoverOut:
        mapped = ("backup_id", "backup_taken_at", "backup_age_s", "attempts", "attempt_log")
        data: dict[str, Any] = {f: getattr(failover, f) for f in cls.model_fields if f not in mapped}
        data["attempts"] = failover.targets_tried
        data["attempt_log"] = [AttemptOut.model_validate(a, from_attributes=True) for a in failover.attempts]
        taken = SnapshotRef.parse(failover.backup_id).taken_at if failover.backup_id else None
        # A handover's final snapshot is taken after the failover began: nothing was left behind.
        age = max(0.0, round((failover.created_at - taken).total_seconds(), 3)) if taken else None
        return cls.model_validate(
            {**data, "backup_id": failover.backup_id, "backup_taken_at": taken, "backup_age_s": age}
        )


class CheckOfflineOut(BaseModel):
    offline_nodes: list[str]
    failovers: list[FailoverOut]
    paused_regions: dict[str, str]
    resumed_regions: list[str]
    rate_limited: int


class TokenCreate(Request):
    role: Literal["admin", "user"]
    subject: Name


class TokenOut(BaseModel):
    id: UUID
    role: str
    subject: str
    created_at: datetime
    revoked_at: datetime | None


class LeaderOut(BaseModel):
    """The leader lease as the store fences it (with the Redis backend too: Redis's grants are
    recorded here before they are used)."""

    holder: str | None = Field(description="the replica id holding the lease; null: never taken")
    epoch: int | None = Field(description="fencing epoch: grows at every change of leader")
    expires_at: datetime | None
    current: bool = Field(description="false: expired or released, a replica takes it at its next cycle")
    answered_by: str | None = Field(description="this replica's id; null when it runs no controllers")


class TokenCreated(TokenOut):
    token: str = Field(description="shown this once; only its hash is stored")


StrategyParam = Literal["warm_pool", "cpu_standby", "snapshot_restore", "both", "regional_volume", "disabled"]


def not_acted_on(body: BaseModel, fields: dict[str, str]) -> dict[str, str]:
    """Document 002's fields a request set that takeover accepts but does not use (yet), each with
    why: answers name them under ``not_acted_on`` rather than ignore them silently."""
    return {f: why for f, why in fields.items() if f in body.model_fields_set}


EXECUTE_NOT_ACTED_ON = {
    "gpu_instance_id": "not needed: the control plane knows which node runs the instance",
    "ssh_host": "not needed: the control plane knows where the instance runs",
    "ssh_port": "not needed: the control plane knows where the instance runs",
    "workspace_path": "not needed: the agent knows the instance's workspace",
}
VOLUME_FAILOVER_NOT_ACTED_ON = {
    "region": "not needed: the volume's own region is used",
    "old_instance_id": "not needed: the instance attached to the volume is failed over",
    "use_spot": "not acted on: a rent follows the instance's rent policy (its spot setting)",
    "docker_image": "not acted on: the instance's own spec (its image) is what runs",
    "mount_path": "not acted on: the volume is the instance's workspace directory",
}


class ExecuteIn(Request):
    """Document 002's request; gpu_instance_id, ssh_host, ssh_port and workspace_path are accepted
    for compatibility and not needed: the control plane knows where the instance runs."""

    machine_id: Ref
    force_strategy: StrategyParam | None = None
    gpu_instance_id: int | None = Field(None, ge=0)
    ssh_host: Annotated[str, Field(max_length=255)] | None = None
    ssh_port: int | None = Field(None, ge=1, le=65535)
    workspace_path: Annotated[str, Field(max_length=4096)] | None = None


class VolumeCreate(Request):
    region: Region
    size_gb: int = Field(ge=1, le=1_000_000)
    name: Name | None = Field(
        None, description="default: volume-<region>-<random>, as document 002 names none"
    )


class VolumeFailoverIn(Request):
    volume_id: Ref
    region: Region | None = None
    old_instance_id: Ref | None = None
    preferred_gpus: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=50)
    max_price: float | None = Field(None, ge=0, allow_inf_nan=False)
    use_spot: bool = False
    docker_image: Annotated[str, Field(max_length=500)] | None = None
    mount_path: Annotated[str, Field(max_length=4096)] | None = None


class VolumeOut(BaseModel):
    volume_id: UUID
    number: int = Field(description="a short id, accepted wherever the volume id is")
    name: str
    region: str
    size_gb: int
    status: Literal["available", "attached"]
    attached_to: UUID | None
    created_at: datetime

    @classmethod
    def of(cls, volume: Volume) -> VolumeOut:
        return cls(
            volume_id=volume.id,
            number=volume.number,
            name=volume.name,
            region=volume.region,
            size_gb=volume.size_gb,
            status="attached" if volume.attached_to else "available",
            attached_to=volume.attached_to,
            created_at=volume.created_at,
        )


class InstancePatch(Request):
    failover_strategy: StrategyParam | None = None
    failover_enabled: bool | None = None
    preferred_region: Region | None = Field(None, description="where its failovers go first")
    rent: RentPolicyIn | None = Field(None, description="may its failovers rent a machine; null: never")


class GroupDecisionIn(Request):
    current_region: Annotated[
        str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    ]
    expected_epoch: int | None = Field(None, ge=0, description="the epoch you saw; 409 if it moved since")
    reason: Annotated[str, Field(max_length=2000)] = "manual"


class GroupDecisionOut(BaseModel):
    group_id: str
    current_region: str
    epoch: int
    updated_at: datetime
    updated_by: str
    reason: str
