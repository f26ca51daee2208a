"""Warm standbys: which instances need a node keeping a synced copy, and which node that is.

The warm_pool strategy promotes that copy when the instance's node dies, so the standby must
be a node the instance could be placed on, never its own node, and must be online.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from uuid import UUID

from takeover.domain.gpus import select_gpu_node
from takeover.domain.models import Instance, Node, NodeStatus
from takeover.domain.placement import Ineligible, PlacementRequest, select_best_node
from takeover.domain.strategies.base import StrategyName

WARM_STRATEGIES = frozenset({StrategyName.WARM_POOL.value, StrategyName.BOTH.value})


def needs_standby(instance: Instance, default_strategy: str, standby_status: NodeStatus | None) -> bool:
    """A placed warm instance whose standby is missing, is its own node, or is not online
    (``standby_status``: None when the standby node is gone or there is none)."""
    if (instance.failover_strategy or default_strategy) not in WARM_STRATEGIES or instance.node_id is None:
        return False
    return (
        instance.standby_node_id is None
        or instance.standby_node_id == instance.node_id
        or standby_status is not NodeStatus.ONLINE
    )


def standby_request(instance: Instance, region: str, degraded_streak: int) -> PlacementRequest:
    """Placement as for a failover: in the instance's region first, anywhere but its own node."""
    exclude = frozenset({instance.node_id}) if instance.node_id is not None else frozenset()
    return PlacementRequest(region, exclude, degraded_streak).runs(instance.spec)


def choose_standby(
    instance: Instance,
    request: PlacementRequest,
    pool: Iterable[Node],
    gpus_in_use: Mapping[UUID, Mapping[int, bool]],
) -> Node | None:
    """Where the warm copy may wait: the node placement would choose (with the GPUs it asks for);
    nothing is taken there until a failover promotes it."""
    if instance.gpus is None:
        choice = select_best_node(pool, request)
        return None if isinstance(choice, Ineligible) else choice
    gpu_choice = select_gpu_node(pool, gpus_in_use, request, instance.gpus)
    return None if isinstance(gpu_choice, Ineligible) else gpu_choice.node
