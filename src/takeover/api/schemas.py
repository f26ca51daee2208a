"""Request and response bodies. Requests forbid unknown fields, so a typo is a 422 naming it."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, HttpUrl, model_validator

from takeover.api.failover_schemas import StrategyParam
from takeover.api.fields import ImageName, LabelValue, Name, Ref, Region, Request
from takeover.api.specs import SpecIn, SpecOut
from takeover.control.status import PlaneStatus
from takeover.domain.heard import Heard
from takeover.domain.models import (
    GpuRequest,
    Instance,
    InstanceState,
    Node,
    NodeStatus,
    RentPolicy,
    Volume,
)
from takeover.domain.rentals import RENT_NEEDS_COMMAND, unrentable
from takeover.domain.routes import Route
from takeover.domain.tokens import JoinToken

RUNS_CONTAINERS = "it runs image instances in containers (false: its agent has NODE_CONTAINER_RUNTIME=none)"
IS_IMAGE = "the image this node itself is: it runs that image's instances as processes (a rented machine)"


class NodeCreate(Request):
    name: Name
    region: Region
    base_url: HttpUrl
    max_instances: int = Field(50, ge=1, le=100_000)
    priority: int = Field(0, ge=-1000, le=1000)
    labels: dict[Annotated[str, Field(max_length=100)], LabelValue] = Field(
        default_factory=dict, max_length=100
    )
    containers: bool = Field(True, description=RUNS_CONTAINERS)
    image: ImageName | None = Field(None, description=IS_IMAGE)


class NodePatch(Request):
    status: Literal[NodeStatus.ONLINE, NodeStatus.DRAINING, NodeStatus.MAINTENANCE] | None = None
    priority: int | None = Field(None, ge=-1000, le=1000)
    max_instances: int | None = Field(None, ge=1, le=100_000)
    labels: dict[Annotated[str, Field(max_length=100)], LabelValue] | None = Field(None, max_length=100)


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
    """An agent registering with a join token, or a rented machine's with its one-time token: the
    token fixes the region (a region given must be the join token's; a rental's says its own)."""

    name: Name
    base_url: HttpUrl
    max_instances: int = Field(1, ge=1, le=100_000)
    region: Region | None = None
    containers: bool = Field(True, description=RUNS_CONTAINERS)
    image: ImageName | None = Field(None, description=IS_IMAGE)


class JoinTokenCreate(Request):
    region: Region
    ttl_seconds: int = Field(3600, ge=60, le=30 * 86400, description="how long it lets machines in")
    max_uses: int = Field(1, ge=1, le=100_000, description="how many nodes it may register")


class JoinTokenOut(BaseModel):
    id: UUID
    region: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    max_uses: int
    uses: int
    revoked_at: datetime | None
    live: bool = Field(description="false: expired, used up or revoked; it registers nothing more")

    @classmethod
    def of(cls, token: JoinToken, now: datetime) -> JoinTokenOut:
        return cls(**asdict(token), live=token.live(now))


class JoinTokenCreated(JoinTokenOut):
    token: str = Field(description="shown this once; only its hash is stored")


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
    witnesses: list[UUID] = Field(
        default_factory=list, description="the nodes its agent asks when it cannot reach the control plane"
    )
    heard: Heard = Field(
        Heard.LIVE,
        description="live; late (a heartbeat missed); silent (past fence_after); offline. For people: "
        "failovers go by the leader's own watch",
    )
    heard_ago_s: float | None = Field(
        None, description="seconds since its last heartbeat, by this replica's clock"
    )
    containers: bool = Field(True, description=RUNS_CONTAINERS)
    image: str | None = Field(None, description=IS_IMAGE)

    @classmethod
    def of(cls, node: Node, seen: tuple[Heard, float | None] | None = None) -> NodeOut:
        skip = ("witnesses", "heard", "heard_ago_s")
        data = {f: getattr(node, f) for f in cls.model_fields if f not in skip}
        witnesses = list(node.witness.used or ())
        heard, ago = seen or (Heard.OFFLINE if node.status is NodeStatus.OFFLINE else Heard.LIVE, None)
        return cls.model_validate(
            {
                **data,
                "gpus": [asdict(g) for g in node.gpus],
                "witnesses": witnesses,
                "heard": heard,
                "heard_ago_s": ago,
            }
        )


class NodeCreated(NodeOut):
    api_token: str = Field(description="shown this once; only its hash is stored")


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

    @model_validator(mode="after")
    def _rentable(self) -> InstanceCreate:
        if self.rent is not None and unrentable(self.spec.to_spec()):
            raise ValueError(RENT_NEEDS_COMMAND)
        return self


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
    address: str | None = Field(
        None, description="the stable address its clients use through your proxy (TAKEOVER_ROUTE_ADDRESS)"
    )
    last_error: str | None
    restored_from: str | None
    last_snapshot: str | None
    snapshot_error: str | None = Field(
        None, description="why its runner's last snapshot failed; null once one is taken again"
    )
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
    def of(cls, instance: Instance, address: str | None = None) -> InstanceOut:
        skip = ("spec", "gpus", "rent", "address")
        data = {f: getattr(instance, f) for f in cls.model_fields if f not in skip}
        gpus, rent = instance.gpus, instance.rent
        request = None
        if gpus is not None:
            request = GpuRequestOut(count=gpus.count, names=list(gpus.names), shared=gpus.shared)
        policy = None
        if rent is not None:
            policy = RentPolicyOut(max_price=rent.max_price, gpu_names=list(rent.gpu_names), spot=rent.spot)
        return cls.model_validate(
            {**data, "spec": SpecOut.of(instance.spec), "gpus": request, "rent": policy, "address": address}
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


class TokenCreate(Request):
    role: Literal["admin", "user"]
    subject: Name


class TokenOut(BaseModel):
    id: UUID
    role: str
    subject: str
    created_at: datetime
    revoked_at: datetime | None


class StatusOut(BaseModel):
    """What the control plane cannot vouch for now; ``ok`` only when nothing."""

    ok: bool
    problems: list[str] = Field(description="each one a sentence: what is wrong and what it means")
    store_writable: bool = Field(description="false: no heartbeat is stored, the pool shown is stale")
    leader: str | None = Field(description="the replica leading now; null: nobody judges the nodes")
    silent_nodes: int = Field(description="online nodes not heard from for longer than silent_after_s")
    silent_after_s: float = Field(description="the agents' fence_after")
    checked_at: datetime

    @classmethod
    def of(cls, status: PlaneStatus) -> StatusOut:
        return cls(
            ok=not status.problems,
            problems=status.problems,
            store_writable=status.store is None,
            leader=status.leading,
            silent_nodes=status.silent,
            silent_after_s=status.silent_after,
            checked_at=status.checked_at,
        )


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


class VolumeCreate(Request):
    region: Region
    size_gb: int = Field(ge=1, le=1_000_000)
    name: Name | None = Field(
        None, description="default: volume-<region>-<random>, as document 002 names none"
    )


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


class RouteOut(BaseModel):
    name: str = Field(description="the instance's name: what a proxy's backend is named after")
    owner: str
    instance_id: UUID
    number: int
    epoch: int = Field(description="the runner that may serve it: a newer epoch always wins")
    state: InstanceState
    node_id: UUID | None
    target: str | None = Field(
        description="host:port of the runner at this epoch while it serves; null: send nobody there"
    )
    address: str | None = Field(description="the stable address its clients use (TAKEOVER_ROUTE_ADDRESS)")

    @classmethod
    def of(cls, route: Route) -> RouteOut:
        return cls.model_validate(asdict(route))


class RoutesOut(BaseModel):
    index: str = Field(description="pass it back as ?index= to wait until anything here changes")
    routes: list[RouteOut]
