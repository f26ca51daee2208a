"""Small builders for domain records in unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from takeover.domain.failover import Failover, FailoverReason, FailoverStatus
from takeover.domain.models import Instance, InstanceSpec, InstanceState, Node, NodeStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def node(name: str = "n1", **fields: Any) -> Node:
    values: dict[str, Any] = {
        "id": uuid4(),
        "name": name,
        "region": "r1",
        "base_url": "http://127.0.0.1:1",
        "max_instances": 10,
        "current_instances": 0,
        "status": NodeStatus.ONLINE,
        "health_score": 80.0,
        "last_heartbeat_at": T0,
        "created_at": T0,
    }
    values.update(fields)
    return Node(**values)


def instance(node_id: UUID | None, **fields: Any) -> Instance:
    values: dict[str, Any] = {
        "id": uuid4(),
        "owner": "alice",
        "name": "app",
        "spec": InstanceSpec(("sleep", "1")),
        "node_id": node_id,
        "epoch": 1,
        "state": InstanceState.RUNNING,
    }
    values.update(fields)
    return Instance(**values)


def failover(instance_id: UUID, source: UUID | None, **fields: Any) -> Failover:
    values: dict[str, Any] = {
        "id": uuid4(),
        "instance_id": instance_id,
        "source_node_id": source,
        "target_node_id": None,
        "reason": FailoverReason.NODE_FAILURE,
        "status": FailoverStatus.PENDING,
        "created_at": T0,
        "step_started_at": T0,
    }
    values.update(fields)
    return Failover(**values)
