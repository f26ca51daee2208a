"""The local provider: the pool's own online nodes, with the GPUs they report free.

A node that reports no GPUs (no NVIDIA driver, or an agent from before GPUs were read) is
described by its labels ``gpu_name`` and ``num_gpus``, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from takeover.domain.gpus import free_by_model, matches
from takeover.domain.models import GpuRequest, Node, NodeStatus
from takeover.ports import Offer
from takeover.store import Store


class LocalProvider:
    name = "local"

    def __init__(self, store: Store) -> None:
        self.store = store

    def offers(
        self,
        region: str,
        max_price: float | None,
        gpu_names: Sequence[str] = (),
        spot: bool = False,  # noqa: ARG002 - the pool's own nodes are not interrupted by anyone
    ) -> list[Offer]:
        """``spot`` changes nothing: the pool's own nodes are not interrupted by anyone."""
        found = []
        used = self.store.nodes.gpus_in_use()
        for node in self.store.nodes.find(NodeStatus.ONLINE, region):
            offer = _offer(node, used.get(node.id, {}), tuple(gpu_names))
            if offer is None or offer.free_slots <= 0:
                continue
            if max_price is not None and (offer.price_per_hour is None or offer.price_per_hour > max_price):
                continue
            found.append(offer)
        return sorted(
            found,
            key=lambda o: (
                o.price_per_hour is None,
                o.price_per_hour or 0,
                -o.num_gpus,
                -o.reliability,
                o.name,
            ),
        )


def _offer(node: Node, used: dict[int, bool], gpu_names: tuple[str, ...]) -> Offer | None:
    """The node as an offer: its free GPUs of an asked model (the most numerous model if none is
    asked); None when it has none of those models."""
    price = node.labels.get("price_per_hour")
    model, count = _free_gpus(node, used, gpu_names)
    if model is None and gpu_names:
        return None
    return Offer(
        offer_id=str(node.id),
        name=node.name,
        region=node.region,
        gpu_name=model,
        num_gpus=count,
        price_per_hour=float(price)
        if isinstance(price, int | float) and not isinstance(price, bool)
        else None,
        reliability=round(node.health_score / 100, 4),
        free_slots=node.free_capacity,
    )


def _free_gpus(node: Node, used: dict[int, bool], gpu_names: tuple[str, ...]) -> tuple[str | None, int]:
    if not node.gpus:
        label, labelled = node.labels.get("gpu_name"), node.labels.get("num_gpus", 0)
        name = str(label) if label is not None else None
        if gpu_names and (name is None or not any(matches(g, name) for g in gpu_names)):
            return None, 0
        return name, int(labelled) if isinstance(labelled, int | float) else 0
    free = free_by_model(node, used, GpuRequest(names=gpu_names))
    if not free:
        return None, 0
    model = max(free, key=lambda m: (len(free[m]), m))
    return model, len(free[model])
