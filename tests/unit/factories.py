"""Small builders for domain records in unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from hypothesis import strategies as st

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


def nodes_strategy(max_size: int, min_size: int = 0) -> st.SearchStrategy[list[Node]]:
    """Small pools with many ties, so that every tie-breaker of placement gets exercised."""
    one = st.builds(
        lambda name, score, used, cap, prio, status, region, streak: node(
            name,
            id=uuid4(),
            health_score=score,
            current_instances=min(used, cap),
            max_instances=cap,
            priority=prio,
            status=status,
            region=region,
            low_score_streak=streak,
        ),
        st.text("abcdef", min_size=1, max_size=4),
        st.sampled_from([0.0, 33.33, 50.0, 50.01, 100.0]),
        st.integers(0, 5),
        st.integers(1, 5),
        st.integers(-2, 2),
        st.sampled_from(list(NodeStatus)),
        st.sampled_from(["r1", "r2"]),
        st.integers(0, 3),
    )
    return st.lists(one, min_size=min_size, max_size=max_size, unique_by=lambda n: n.name)
