"""A network between agents and the control plane that delays, drops, duplicates and reorders
messages, and that faults cut: a node, a region or the control plane from everyone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from takeover.sim.world import World


@dataclass
class Network:
    world: World
    drop: float = 0.002  # the chance a message is lost
    duplicate: float = 0.002  # the chance it arrives twice
    delay: float = 0.002  # the mean one-way delay, seconds (exponential, so messages reorder)
    cut_nodes: set[str] = field(default_factory=set)  # nodes that reach neither side
    cut_regions: set[str] = field(default_factory=set)  # regions cut off from the control plane
    cp_cut: bool = False  # the control plane reaches no one

    def linked(self, node: str, region: str) -> bool:
        return not (self.cp_cut or node in self.cut_nodes or region in self.cut_regions)

    def send(self, node: str, region: str, deliver: Callable[[], None]) -> None:
        """A message between ``node`` and the control plane, either way."""
        rng = self.world.rng
        if not self.linked(node, region) or rng.random() < self.drop:
            return
        copies = 2 if rng.random() < self.duplicate else 1
        for _ in range(copies):
            self.world.after(rng.expovariate(1 / self.delay), lambda: self._arrive(node, region, deliver))

    def peers_linked(self, a: str, a_region: str, b: str, b_region: str) -> bool:
        """Nodes reach each other unless one is cut off, or a cut region's link lies between."""
        if a in self.cut_nodes or b in self.cut_nodes:
            return False
        return a_region == b_region or not {a_region, b_region} & self.cut_regions

    def between(self, a: str, a_region: str, b: str, b_region: str, deliver: Callable[[], None]) -> None:
        """A message from node ``a`` to node ``b`` (a witness's probe or answer)."""
        rng = self.world.rng
        if not self.peers_linked(a, a_region, b, b_region) or rng.random() < self.drop:
            return

        def arrive() -> None:
            if self.peers_linked(a, a_region, b, b_region):
                deliver()

        self.world.after(rng.expovariate(1 / self.delay), arrive)

    def _arrive(self, node: str, region: str, deliver: Callable[[], None]) -> None:
        if self.linked(node, region):  # a cut that came while it travelled loses it too
            deliver()
