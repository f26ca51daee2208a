"""The local provider: the pool's own online nodes, described by their labels."""

from __future__ import annotations

from takeover.domain.models import Node, NodeStatus
from takeover.ports import Offer
from takeover.store import Store


class LocalProvider:
    name = "local"

    def __init__(self, store: Store) -> None:
        self.store = store

    def offers(self, region: str, max_price: float | None, gpu_name: str | None) -> list[Offer]:
        found = []
        for node in self.store.nodes.find(NodeStatus.ONLINE, region):
            offer = _offer(node)
            if offer.free_slots <= 0:
                continue
            if max_price is not None and (offer.price_per_hour is None or offer.price_per_hour > max_price):
                continue
            if gpu_name is not None and offer.gpu_name != gpu_name:
                continue
            found.append(offer)
        return sorted(
            found, key=lambda o: (o.price_per_hour is None, o.price_per_hour or 0, -o.reliability, o.name)
        )


def _offer(node: Node) -> Offer:
    price = node.labels.get("price_per_hour")
    gpus = node.labels.get("num_gpus", 0)
    gpu = node.labels.get("gpu_name")
    return Offer(
        offer_id=str(node.id),
        name=node.name,
        region=node.region,
        gpu_name=str(gpu) if gpu is not None else None,
        num_gpus=int(gpus) if isinstance(gpus, int | float) else 0,
        price_per_hour=float(price)
        if isinstance(price, int | float) and not isinstance(price, bool)
        else None,
        reliability=round(node.health_score / 100, 4),
        free_slots=node.free_capacity,
    )
