"""Failover bodies: opening, finishing and showing one, each attempt, and document 002's execute."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, field_validator

from takeover.api.fields import Ref, Region, Request
from takeover.domain.failover import Failover, FailoverReason, FailoverStatus
from takeover.domain.snapshots import SnapshotRef


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
    source_heard_at: datetime | None = Field(
        None, description="the source node's last heartbeat when it opened"
    )
    detection_s: float | None = Field(
        None, description="a node failure: from the node's last heartbeat to this failover opening"
    )
    downtime_s: float | None = Field(
        None, description="a node failure: from the node's last heartbeat to serving again (completed)"
    )

    @classmethod
    def of(cls, failover: Failover) -> FailoverOut:
        mapped = (
            "backup_id",
            "backup_taken_at",
            "backup_age_s",
            "attempts",
            "attempt_log",
            "detection_s",
            "downtime_s",
        )
        data: dict[str, Any] = {f: getattr(failover, f) for f in cls.model_fields if f not in mapped}
        data["attempts"] = failover.targets_tried
        data["attempt_log"] = [AttemptOut.model_validate(a, from_attributes=True) for a in failover.attempts]
        taken = SnapshotRef.parse(failover.backup_id).taken_at if failover.backup_id else None
        # A handover's final snapshot is taken after the failover began: nothing was left behind.
        age = max(0.0, round((failover.created_at - taken).total_seconds(), 3)) if taken else None
        return cls.model_validate(
            {
                **data,
                "backup_id": failover.backup_id,
                "backup_taken_at": taken,
                "backup_age_s": age,
                "detection_s": _rounded(failover.detection_s),
                "downtime_s": _rounded(failover.downtime_s),
            }
        )


class CheckOfflineOut(BaseModel):
    offline_nodes: list[str]
    failovers: list[FailoverOut]
    paused_regions: dict[str, str]
    resumed_regions: list[str]
    rate_limited: int


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


class VolumeFailoverIn(Request):
    volume_id: Ref
    region: Region | None = None
    old_instance_id: Ref | None = None
    preferred_gpus: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=50)
    max_price: float | None = Field(None, ge=0, allow_inf_nan=False)
    use_spot: bool = False
    docker_image: Annotated[str, Field(max_length=500)] | None = None
    mount_path: Annotated[str, Field(max_length=4096)] | None = None


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)
