"""Records the rules work on. Frozen: a change is a new value, written by the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID


class NodeStatus(StrEnum):
    ONLINE = "online"  # heartbeating; takes new instances
    OFFLINE = "offline"  # silent for longer than offline_after; its instances fail over
    DRAINING = "draining"  # admin: move instances off, take no new ones
    MAINTENANCE = "maintenance"  # admin: same as draining, for planned work


class InstanceState(StrEnum):
    ASSIGNED = "assigned"  # in a node's desired state, not yet reported running
    STARTING = "starting"  # the agent reported it is starting at the current epoch
    RUNNING = "running"  # the agent reported it running at the current epoch
    STOPPING = "stopping"  # the agent is stopping it and saving its workspace (a handover)
    FAILED = "failed"  # the agent gave up on it (crash loop, bad spec)
    STOPPED = "stopped"  # the agent reported it stopped


class Role(StrEnum):
    ADMIN = "admin"  # everything
    USER = "user"  # own instances and their failovers; sees online nodes
    NODE = "node"  # heartbeats and desired state of its own node only


@dataclass(frozen=True, slots=True)
class Gpu:
    """One GPU of a node, as its agent last read it (NVML)."""

    index: int
    name: str  # NVML's model name, e.g. "NVIDIA GeForce RTX 4090"
    memory_total_mb: int
    memory_used_mb: int = 0
    utilization: float = 0.0  # 0..1
    temperature_c: float = 0.0


@dataclass(frozen=True, slots=True)
class GpuRequest:
    """What an instance asks for: ``count`` GPUs of one model, the earlier of ``names`` preferred
    (empty: any model). ``shared``: it may use GPUs another instance uses."""

    count: int = 1
    names: tuple[str, ...] = ()
    shared: bool = False


@dataclass(frozen=True, slots=True)
class RentPolicy:
    """An instance's permission to rent for its failovers: at most ``max_price`` per hour, one of
    ``gpu_names`` (empty: any), interruptible (``spot``) offers or on-demand ones."""

    max_price: float
    gpu_names: tuple[str, ...] = ()
    spot: bool = False


@dataclass(frozen=True, slots=True)
class Witnessing:
    """A node's part in domain.witnesses."""

    addr: str | None = None  # host:port where its agent answers probes (None: an older agent)
    stamp_held: datetime | None = None  # the newest acknowledgement stamp it holds
    held_for: float | None = None  # seconds it had held it when it said so
    used: tuple[UUID, ...] | None = None  # the witnesses it asks (None: not reported yet)
    offered: tuple[UUID, ...] | None = None  # the set the control plane offers it


@dataclass(frozen=True, slots=True)
class Node:
    id: UUID
    name: str
    region: str
    base_url: str
    max_instances: int
    current_instances: int
    status: NodeStatus
    health_score: float
    priority: int = 0
    cpu_load: float = 0.0
    memory_load: float = 0.0
    avg_latency_ms: float = 0.0
    labels: dict[str, Any] = field(default_factory=dict)
    gpus: tuple[Gpu, ...] = ()
    low_score_streak: int = 0
    last_heartbeat_at: datetime | None = None
    created_at: datetime | None = None
    witness: Witnessing = field(default_factory=Witnessing)
    containers: bool = True  # it runs image instances in containers (podman or docker)
    # The image this node itself is (a machine rented for an image instance boots that image):
    # it runs that image's instances as processes, with their own command.
    image: str | None = None

    @property
    def free_capacity(self) -> int:
        return self.max_instances - self.current_instances


DEFAULT_MOUNT_PATH = "/workspace"


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """What an agent needs to run an instance: a process (argv) or a container image, its
    environment and workspace directory name.

    With an ``image`` the command is optional (empty: the image's own) and the workspace is
    mounted at ``mount_path``; ``image_digest`` is set by the control plane from the first
    runner's report, so that every later runner runs the same image whatever its tag says then.
    """

    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    workspace: str | None = None
    image: str | None = None
    image_digest: str | None = None
    mount_path: str = DEFAULT_MOUNT_PATH


@dataclass(frozen=True, slots=True)
class Instance:
    id: UUID
    owner: str
    name: str
    spec: InstanceSpec
    node_id: UUID | None
    epoch: int
    state: InstanceState
    preferred_region: str | None = None
    failover_enabled: bool = True
    failover_strategy: str | None = None
    last_failover_at: datetime | None = None
    created_at: datetime | None = None
    endpoint: str | None = None  # host:port where the current runner serves
    last_error: str | None = None  # the current runner's last reported problem
    restored_from: str | None = None  # snapshot the current runner started from
    last_snapshot: str | None = None  # newest snapshot of the current epoch
    snapshot_error: str | None = None  # why the current runner's last snapshot failed (None: it did not)
    snapshot_requested_at: datetime | None = None  # an on-demand snapshot newer than this is wanted
    volume_id: UUID | None = None  # a regional volume used as its workspace
    standby_node_id: UUID | None = None  # warm_pool: the node keeping a synced copy
    standby_synced_at: datetime | None = None  # when the standby last caught up
    standby_snapshot: str | None = None  # the snapshot the standby holds
    # The newest snapshot any runner took or started from, kept across moves: once set, a new
    # runner must restore, and may start empty only when an operator chose ``start_empty``.
    recovery_point: str | None = None
    start_empty: bool = False  # an operator accepted that no snapshot can be restored
    number: int = 0  # short id beside the UUID (document 002's integer ids); set by the store
    gpus: GpuRequest | None = None
    gpu_indices: tuple[int, ...] = ()  # the GPUs of its node it holds at this epoch
    rent: RentPolicy | None = None  # None: its failovers never rent a machine


@dataclass(frozen=True, slots=True)
class Volume:
    """A regional volume: a directory on storage every node of ``region`` mounts."""

    id: UUID
    owner: str
    name: str
    region: str
    size_gb: int
    created_at: datetime
    attached_to: UUID | None = None  # the instance using it
    number: int = 0  # short id beside the UUID (document 002's integer ids); set by the store


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's role and subject (a user name or a node id)."""

    role: Role
    subject: str

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN
