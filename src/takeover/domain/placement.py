"""Where an instance goes: the one placement rule of document 000, with reasons.

A node is eligible when it is online, has a free slot, is not excluded, is not degraded, and
can run the instance: an image instance needs a container runtime, or a node that is that
image itself (a machine rented for it, which runs the instance's command as a process).
Among eligible nodes the preferred region wins; inside it (or, when it has none, across the
pool) the order is ``health_score DESC, free capacity DESC, priority DESC, name ASC``; the
name makes the order total so that every store picks the same node.

A node's score changes only when it heartbeats, so a burst of placements would all pick the
same best node. As the Kubernetes scheduler counts assumed pods, each placement counts against
its node at once (``assume_placed``): one slot, and the share of the node one instance is
expected to use (100 / max_instances score points) until the next heartbeat measures it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from uuid import UUID

from takeover.domain.models import InstanceSpec, Node, NodeStatus


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    preferred_region: str | None = None
    exclude: frozenset[UUID] = field(default_factory=frozenset)
    degraded_streak: int = 0  # nodes this many low-score heartbeats in a row are skipped; 0: off
    region_only: bool = False  # the preferred region is required (a regional volume lives there)
    image: str | None = None  # an image instance's image: the node must be able to run it
    native: bool = False  # a node that is that image may run it (the instance names its command)

    def runs(self, spec: InstanceSpec) -> PlacementRequest:
        """This request for an instance of ``spec``."""
        return replace(self, image=spec.image, native=spec.image is not None and bool(spec.command))


@dataclass(frozen=True, slots=True)
class Ineligible:
    """No node fits; ``reason`` says why, counted per cause, for the log and the API."""

    reason: str


def ineligibility(node: Node, request: PlacementRequest) -> str | None:
    """Why ``node`` cannot take an instance, or None when it can."""
    if node.id in request.exclude:
        return "excluded"
    if request.region_only and node.region != request.preferred_region:
        return "in another region"
    if node.status is not NodeStatus.ONLINE:
        return str(node.status)
    if node.free_capacity <= 0:
        return "full"
    if request.degraded_streak and node.low_score_streak >= request.degraded_streak:
        return "degraded"
    return cannot_run(node, request)


def cannot_run(node: Node, request: PlacementRequest) -> str | None:
    """Why ``node`` could not run the instance even with a free slot, or None."""
    if request.image is None or node.containers:
        return None
    if node.image != request.image:
        return "without containers"
    return None if request.native else "its image, with no command named"


ASSUMED_SHARE = 100.0  # score points one node's worth of instances is expected to cost


def assumed_cost(node: Node) -> float:
    return ASSUMED_SHARE / node.max_instances


def assume_placed(node: Node) -> Node:
    """``node`` as the next placement sees it, before its next heartbeat says how it really is."""
    return replace(
        node,
        current_instances=node.current_instances + 1,
        health_score=max(0.0, node.health_score - assumed_cost(node)),
    )


def rank_key(node: Node) -> tuple[float, int, int, str]:
    """Sort key: the smallest key is the best node."""
    return (-node.health_score, -node.free_capacity, -node.priority, node.name)


def select_best_node(nodes: Iterable[Node], request: PlacementRequest) -> Node | Ineligible:
    best: Node | None = None
    best_local: Node | None = None
    reasons: Counter[str] = Counter()
    for node in nodes:
        reason = ineligibility(node, request)
        if reason is not None:
            reasons[reason] += 1
            continue
        if best is None or rank_key(node) < rank_key(best):
            best = node
        if node.region == request.preferred_region and (
            best_local is None or rank_key(node) < rank_key(best_local)
        ):
            best_local = node
    chosen = best_local or best
    if chosen is not None:
        return chosen
    if not reasons:
        return Ineligible("no nodes registered")
    detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    return Ineligible(f"no eligible node ({detail})")
