"""GPUs as slots: which of a node's GPUs an instance may take, and which node offers them best.

A node's GPUs are slots like its instance slots: an instance holds the indices it was given,
and no other instance gets them unless both asked for ``shared``. All GPUs of one instance
are of one model. A request's ``names`` are document 002's ``preferred_gpus``, in order of
preference; a name matches a model when its words appear in NVML's name (``RTX_4090`` matches
"NVIDIA GeForce RTX 4090"; case, ``_`` and ``-`` do not matter). Among nodes the earlier name
wins, then document 000's order (takeover.domain.placement.rank_key).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from uuid import UUID

from takeover.domain.models import Gpu, GpuRequest, Node
from takeover.domain.placement import Ineligible, PlacementRequest, ineligibility, rank_key


def _words(name: str) -> str:
    return " " + " ".join(re.split(r"[\s_\-]+", name.lower().strip())) + " "


def matches(wanted: str, model: str) -> bool:
    return _words(wanted) in _words(model)


def preference(request: GpuRequest, model: str) -> int | None:
    """The rank of ``model`` among the accepted names (0 is the first), None if not accepted."""
    if not request.names:
        return 0
    return next((i for i, name in enumerate(request.names) if matches(name, model)), None)


@dataclass(frozen=True, slots=True)
class GpuChoice:
    node: Node
    indices: tuple[int, ...]
    model: str
    rank: int  # of the model among the accepted names


def free_by_model(node: Node, used: Mapping[int, bool], request: GpuRequest) -> dict[str, list[Gpu]]:
    """The node's GPUs ``request`` could take, by model, in index order: of an accepted model and
    not held (``used`` maps a held index to whether its holder shares it)."""
    by_model: dict[str, list[Gpu]] = {}
    for gpu in sorted(node.gpus, key=lambda g: g.index):
        if gpu.index in used and not (request.shared and used[gpu.index]):
            continue
        if preference(request, gpu.name) is not None:
            by_model.setdefault(gpu.name, []).append(gpu)
    return by_model


def choose_gpus(node: Node, used: Mapping[int, bool], request: GpuRequest) -> GpuChoice | None:
    """The node's best fitting GPUs."""
    best: GpuChoice | None = None
    for model, free in free_by_model(node, used, request).items():
        rank = preference(request, model)
        if rank is None or len(free) < request.count:
            continue
        choice = GpuChoice(node, tuple(g.index for g in free[: request.count]), model, rank)
        if best is None or rank < best.rank:
            best = choice
    return best


def select_gpu_node(
    nodes: Iterable[Node],
    used: Mapping[UUID, Mapping[int, bool]],
    placement: PlacementRequest,
    request: GpuRequest,
) -> GpuChoice | Ineligible:
    """The placement rule for an instance that asks for GPUs (``used``: per node id)."""
    candidates: list[GpuChoice] = []
    reasons: dict[str, int] = {}
    for node in nodes:
        reason = ineligibility(node, placement)
        choice = None if reason else choose_gpus(node, used.get(node.id, {}), request)
        if reason is None and choice is None:
            reason = "no free GPU of an accepted model" if node.gpus else "no GPUs"
        if reason is not None:
            reasons[reason] = reasons.get(reason, 0) + 1
            continue
        assert choice is not None
        candidates.append(choice)
    if candidates:
        local = [c for c in candidates if c.node.region == placement.preferred_region]
        return min(local or candidates, key=lambda c: (c.rank, rank_key(c.node)))
    if not reasons:
        return Ineligible("no nodes registered")
    detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    return Ineligible(f"no node has {describe(request)} free ({detail})")


def impossible(nodes: Iterable[Node], request: GpuRequest) -> tuple[int, str] | None:
    """Why no node could *ever* take it, whatever frees up: (HTTP status, message), or None."""
    pool = list(nodes)
    accepted = [g for n in pool for g in n.gpus if preference(request, g.name) is not None]
    if request.names and not accepted:
        models = sorted({g.name for n in pool for g in n.gpus})
        have = ", ".join(models) if models else "none"
        return 503, f"no node has a GPU of model {' or '.join(request.names)} (models in the pool: {have})"
    most = max((len(g) for n in pool for g in free_by_model(n, {}, request).values()), default=0)
    if request.count > most:
        return 422, f"it asks for {request.count} GPUs of one model; the largest node has {most}"
    return None


def describe(request: GpuRequest) -> str:
    model = " or ".join(request.names) if request.names else "any model"
    return f"{request.count} GPU{'s' if request.count != 1 else ''} ({model})"
