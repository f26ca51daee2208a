"""Routes: where each instance's clients should be sent now, and how a proxy gets there safely.

A route names an instance by its stable name and points at the runner that holds its current
epoch, and only while that runner reports it running with a port. A move bumps the epoch and
clears the endpoint in the same write, so the old runner's address is withdrawn before the new
one is known: a proxy that follows routes never sends a request to two epochs at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from uuid import UUID

from takeover.domain.models import Instance, InstanceState


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    owner: str
    instance_id: UUID
    number: int
    epoch: int
    state: InstanceState
    node_id: UUID | None
    target: str | None  # host:port of the runner at ``epoch``; None while nobody may be sent there
    address: str | None  # the stable address clients use (the operator's proxy), None if not set


def route_of(instance: Instance, address_template: str | None = None) -> Route:
    """``address_template`` (e.g. ``{name}.apps.example.com``) may use name, owner and number."""
    serving = instance.state is InstanceState.RUNNING and instance.endpoint is not None
    address = None
    if address_template:
        address = address_template.format(name=instance.name, owner=instance.owner, number=instance.number)
    return Route(
        instance.name,
        instance.owner,
        instance.id,
        instance.number,
        instance.epoch,
        instance.state,
        instance.node_id,
        instance.endpoint if serving else None,
        address,
    )


def routes_index(routes: Iterable[Route]) -> str:
    """Changes whenever any route does: the same on every replica for the same view, so a watch
    can move between replicas; it is a digest, not a counter, and only equality means anything."""
    rows = sorted((asdict(r) for r in routes), key=lambda r: str(r["instance_id"]))
    text = json.dumps(rows, default=str, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def split_target(target: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` into its parts."""
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


# --- a proxy's servers --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Server:
    """What a proxy's server slot for one route holds: an address, and whether it takes traffic."""

    host: str | None
    port: int | None
    ready: bool


class Step(StrEnum):
    WITHDRAW = "withdraw"  # no new connection may reach it (HAProxy: maint, sessions shut)
    POINT = "point"  # set its address
    ADMIT = "admit"  # let traffic in


def server_steps(actual: Server, target: tuple[str, int] | None) -> list[tuple[Step, tuple[str, int] | None]]:
    """What brings one slot from ``actual`` to ``target`` (None: nobody), withdrawing first: a
    slot never takes traffic while it points anywhere but the current epoch's runner."""
    if target is None:
        return [(Step.WITHDRAW, None)] if actual.ready else []
    if (actual.host, actual.port) == target:
        return [] if actual.ready else [(Step.ADMIT, target)]
    steps: list[tuple[Step, tuple[str, int] | None]] = []
    if actual.ready:
        steps.append((Step.WITHDRAW, None))
    return [*steps, (Step.POINT, target), (Step.ADMIT, target)]


def wanted_targets(
    routes: Iterable[Route], slot_format: str
) -> tuple[dict[str, tuple[str, int] | None], set[str]]:
    """Each proxy slot's wanted target, the slot named by ``slot_format`` (name, owner, number),
    and the slots two routes claim: those are withdrawn, since neither can be told apart."""
    wanted: dict[str, tuple[str, int] | None] = {}
    clashes: set[str] = set()
    for route in routes:
        slot = slot_format.format(name=route.name, owner=route.owner, number=route.number)
        if slot in wanted:
            clashes.add(slot)
        wanted[slot] = split_target(route.target) if route.target else None
    return {s: None if s in clashes else t for s, t in wanted.items()}, clashes


def proxy_plan(
    actual: Mapping[str, Server], wanted: Mapping[str, tuple[str, int] | None]
) -> list[tuple[str, Step, tuple[str, int] | None]]:
    """Every followed slot toward its route; a slot no route names (its instance is gone) is
    withdrawn, and a route with no slot is left out (the proxy was not given one for it)."""
    return [
        (slot, step, target)
        for slot, server in sorted(actual.items())
        for step, target in server_steps(server, wanted.get(slot))
    ]
