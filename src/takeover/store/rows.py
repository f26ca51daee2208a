"""Rows to domain records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from takeover.domain.failover import Attempt, Failover, FailoverReason, FailoverStatus
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
    Witnessing,
)
from takeover.domain.tokens import JoinToken


def node_from_row(row: sa.Row[Any]) -> Node:
    return Node(
        id=row.id,
        name=row.name,
        region=row.region,
        base_url=row.base_url,
        max_instances=row.max_instances,
        current_instances=row.current_instances,
        status=NodeStatus(row.status),
        health_score=row.health_score,
        priority=row.priority,
        cpu_load=row.cpu_load,
        memory_load=row.memory_load,
        avg_latency_ms=row.avg_latency_ms,
        labels=dict(row.labels or {}),
        gpus=gpus_from_json(row.gpus),
        low_score_streak=row.low_score_streak,
        last_heartbeat_at=row.last_heartbeat_at,
        created_at=row.created_at,
        witness=Witnessing(
            row.witness_addr,
            row.stamp_held,
            row.stamp_held_for,
            _ids(row.witnesses_used),
            _ids(row.witnesses_offered),
        ),
        containers=row.containers,
        image=row.image,
    )


def _ids(data: list[str] | None) -> tuple[UUID, ...] | None:
    return None if data is None else tuple(UUID(i) for i in data)


def ids_to_json(ids: tuple[UUID, ...] | None) -> list[str] | None:
    return None if ids is None else [str(i) for i in ids]


def gpus_to_json(gpus: tuple[Gpu, ...]) -> list[dict[str, Any]]:
    return [asdict(g) for g in gpus]


def gpus_from_json(data: list[dict[str, Any]] | None) -> tuple[Gpu, ...]:
    return tuple(Gpu(**g) for g in data or [])


def gpu_request_to_json(request: GpuRequest | None) -> dict[str, Any] | None:
    if request is None:
        return None
    return {"count": request.count, "names": list(request.names), "shared": request.shared}


def gpu_request_from_json(data: dict[str, Any] | None) -> GpuRequest | None:
    if data is None:
        return None
    return GpuRequest(int(data["count"]), tuple(data.get("names") or ()), bool(data.get("shared")))


def rent_policy_to_json(policy: RentPolicy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {"max_price": policy.max_price, "gpu_names": list(policy.gpu_names), "spot": policy.spot}


def rent_policy_from_json(data: dict[str, Any] | None) -> RentPolicy | None:
    if data is None:
        return None
    return RentPolicy(float(data["max_price"]), tuple(data.get("gpu_names") or ()), bool(data.get("spot")))


def spec_to_json(spec: InstanceSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"command": list(spec.command), "env": dict(spec.env), "workspace": spec.workspace}
    if spec.image is not None:  # process specs keep the shape they had before containers
        data.update(image=spec.image, image_digest=spec.image_digest, mount_path=spec.mount_path)
    return data


def spec_from_json(data: dict[str, Any]) -> InstanceSpec:
    return InstanceSpec(
        command=tuple(data["command"]),
        env=dict(data.get("env") or {}),
        workspace=data.get("workspace"),
        image=data.get("image"),
        image_digest=data.get("image_digest"),
        mount_path=data.get("mount_path") or DEFAULT_MOUNT_PATH,
    )


# What a new runner (a new epoch) starts with: nothing its predecessor reported.
NEW_RUNNER: dict[str, None] = {
    "endpoint": None,
    "last_error": None,
    "restored_from": None,
    "last_snapshot": None,
    "snapshot_error": None,
}


def instance_from_row(row: sa.Row[Any]) -> Instance:
    return Instance(
        id=row.id,
        owner=row.owner,
        name=row.name,
        spec=spec_from_json(row.spec),
        node_id=row.node_id,
        epoch=row.epoch,
        state=InstanceState(row.state),
        preferred_region=row.preferred_region,
        failover_enabled=row.failover_enabled,
        failover_strategy=row.failover_strategy,
        last_failover_at=row.last_failover_at,
        created_at=row.created_at,
        endpoint=row.endpoint,
        last_error=row.last_error,
        restored_from=row.restored_from,
        last_snapshot=row.last_snapshot,
        snapshot_error=row.snapshot_error,
        snapshot_requested_at=row.snapshot_requested_at,
        volume_id=row.volume_id,
        standby_node_id=row.standby_node_id,
        standby_synced_at=row.standby_synced_at,
        standby_snapshot=row.standby_snapshot,
        recovery_point=row.recovery_point,
        start_empty=row.start_empty,
        number=row.number,
        gpus=gpu_request_from_json(row.gpus),
        gpu_indices=tuple(row.gpu_indices or ()),
        rent=rent_policy_from_json(row.rent_policy),
    )


def failover_from_row(row: sa.Row[Any]) -> Failover:
    return Failover(
        id=row.id,
        instance_id=row.instance_id,
        source_node_id=row.source_node_id,
        target_node_id=row.target_node_id,
        reason=FailoverReason(row.reason),
        status=FailoverStatus(row.status),
        created_at=row.created_at,
        step_started_at=row.step_started_at,
        requested_target_id=row.requested_target_id,
        backup_id=row.backup_id,
        error=row.error,
        targets_tried=row.attempts,
        tried_node_ids=tuple(UUID(x) for x in row.tried_node_ids),
        timings=dict(row.timings),
        completed_at=row.completed_at,
        strategy=row.strategy,
        attempts=attempts_from_json(row.attempt_log),
        start_empty=row.start_empty,
        source_heard_at=row.source_heard_at,
    )


def failover_to_row(f: Failover) -> dict[str, Any]:
    return {
        "id": f.id,
        "instance_id": f.instance_id,
        "source_node_id": f.source_node_id,
        "target_node_id": f.target_node_id,
        "requested_target_id": f.requested_target_id,
        "reason": f.reason.value,
        "status": f.status.value,
        "backup_id": f.backup_id,
        "error": f.error,
        "attempts": f.targets_tried,
        "tried_node_ids": [str(n) for n in f.tried_node_ids],
        "timings": f.timings,
        "created_at": f.created_at,
        "step_started_at": f.step_started_at,
        "completed_at": f.completed_at,
        "strategy": f.strategy,
        "attempt_log": attempts_to_json(f.attempts),
        "start_empty": f.start_empty,
        "source_heard_at": f.source_heard_at,
    }


def attempts_to_json(attempts: Sequence[Attempt]) -> list[dict[str, Any]]:
    """The attempt_log column: one object per try, keys as the API shows them."""
    return [
        {
            "strategy": a.strategy,
            "node_id": str(a.node_id) if a.node_id else None,
            "started_at": a.started_at.isoformat() if a.started_at else None,
            "ms": a.ms,
            "error": a.error,
            **({"rental": a.rental} if a.rental else {}),
        }
        for a in attempts
    ]


def attempts_from_json(data: list[dict[str, Any]] | None) -> tuple[Attempt, ...]:
    """Also reads the entries of older releases, which left out the keys they had no value for."""
    return tuple(
        Attempt(
            strategy=a["strategy"],
            node_id=UUID(a["node_id"]) if a.get("node_id") else None,
            ms=a.get("ms"),
            error=a.get("error"),
            rental=a.get("rental"),
            started_at=datetime.fromisoformat(a["started_at"]) if a.get("started_at") else None,
        )
        for a in data or ()
    )


def join_token_from_row(row: sa.Row[Any]) -> JoinToken:
    """The join_tokens row holds the record's fields and its token's hash."""
    return JoinToken(**{f.name: getattr(row, f.name) for f in fields(JoinToken)})
