"""GPU rules with no database: model matching, GPUs as slots, the node order, the GPU score,
and NVML read through its port (a fake where no GPU is reachable, the real library here)."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from takeover.agent.gpus import GpuReader
from takeover.domain.gpus import choose_gpus, impossible, matches, select_gpu_node
from takeover.domain.health import health_score
from takeover.domain.models import Gpu, GpuRequest, Node, NodeStatus
from takeover.domain.placement import Ineligible, PlacementRequest
from takeover.testing import FakeNvml

A100, RTX = "NVIDIA A100-SXM4-80GB", "NVIDIA GeForce RTX 4090"


def node(name: str, gpus: list[str], score: float = 80.0, **extra: object) -> Node:
    return Node(
        uuid4(),
        name,
        "r1",
        "http://x",
        max_instances=10,
        current_instances=0,
        status=NodeStatus.ONLINE,
        health_score=score,
        gpus=tuple(Gpu(i, model, 81_920) for i, model in enumerate(gpus)),
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("wanted", "model", "expected"),
    [
        ("RTX_4090", RTX, True),
        ("rtx 4090", RTX, True),
        ("A100", A100, True),
        ("a100-sxm4", A100, True),
        ("A10", A100, False),  # words, not letters: an A10 is not an A100
        ("4090", RTX, True),
        ("H100", A100, False),
    ],
)
def test_a_name_matches_a_model_by_its_words(wanted: str, model: str, expected: bool) -> None:
    assert matches(wanted, model) is expected


def test_held_gpus_are_not_given_again_unless_both_share() -> None:
    n = node("n", [A100, A100])
    assert choose_gpus(n, {0: False}, GpuRequest(1)).indices == (1,)  # type: ignore[union-attr]
    assert choose_gpus(n, {0: False, 1: False}, GpuRequest(1)) is None
    assert choose_gpus(n, {0: True, 1: False}, GpuRequest(1, shared=True)).indices == (0,)  # type: ignore[union-attr]
    assert choose_gpus(n, {0: True}, GpuRequest(1)).indices == (1,)  # type: ignore[union-attr]


def test_all_gpus_of_an_instance_are_of_one_model() -> None:
    mixed = node("mixed", [A100, RTX])
    assert choose_gpus(mixed, {}, GpuRequest(2)) is None
    assert choose_gpus(mixed, {}, GpuRequest(1, ("RTX_4090", "A100"))).indices == (1,)  # type: ignore[union-attr]


def test_the_earlier_name_wins_over_a_better_score_then_document_000_s_order() -> None:
    best_score = node("a100-node", [A100], score=99)
    rtx_low = node("rtx-low", [RTX], score=50)
    rtx_high = node("rtx-high", [RTX], score=70)
    chosen = select_gpu_node(
        [best_score, rtx_low, rtx_high], {}, PlacementRequest(), GpuRequest(1, ("4090", "A100"))
    )
    assert not isinstance(chosen, Ineligible)
    assert chosen.node.name == "rtx-high"


def test_a_node_without_a_free_fitting_gpu_is_ineligible_with_reasons() -> None:
    cpu, busy = node("cpu", []), node("busy", [A100])
    chosen = select_gpu_node([cpu, busy], {busy.id: {0: False}}, PlacementRequest(), GpuRequest(1))
    assert isinstance(chosen, Ineligible)
    assert (
        chosen.reason == "no node has 1 GPU (any model) free (1 no GPUs, 1 no free GPU of an accepted model)"
    )


def test_impossible_requests_name_the_model_or_the_largest_node() -> None:
    pool = [node("a", [A100, A100]), node("b", [RTX])]
    assert impossible(pool, GpuRequest(1, ("H100",))) == (
        503,
        f"no node has a GPU of model H100 (models in the pool: {A100}, {RTX})",
    )
    assert impossible(pool, GpuRequest(3)) == (422, "it asks for 3 GPUs of one model; the largest node has 2")
    assert impossible(pool, GpuRequest(2, ("RTX",))) == (
        422,
        "it asks for 2 GPUs of one model; the largest node has 1",
    )
    assert impossible(pool, GpuRequest(2, ("A100",))) is None


@given(st.lists(st.tuples(st.integers(1, 3), st.booleans()), max_size=12))
def test_placing_one_after_another_never_gives_a_held_gpu_to_a_non_sharer(
    requests: list[tuple[int, bool]],
) -> None:
    pool = [node("a", [A100] * 4), node("b", [A100] * 2)]
    used: dict[UUID, dict[int, bool]] = {n.id: {} for n in pool}
    holders: dict[tuple[UUID, int], bool] = {}
    for count, shared in requests:
        choice = select_gpu_node(pool, used, PlacementRequest(), GpuRequest(count, shared=shared))
        if isinstance(choice, Ineligible):
            continue
        for index in choice.indices:
            key = (choice.node.id, index)
            assert key not in holders or (shared and holders[key]), "a held GPU was given away"
            holders[key] = holders.get(key, True) and shared
            used[choice.node.id][index] = holders[key]


def test_a_node_without_gpus_scores_as_document_000_says() -> None:
    assert health_score(0.5, 0.5, 100) == 20 + 15 + 20


def test_a_gpu_node_s_gpus_carry_half_its_score() -> None:
    cool_idle = [Gpu(0, A100, 1000, 0, 0.0, 40)]
    assert health_score(0, 0, 0, cool_idle) == 100.0
    busy_hot = [Gpu(0, A100, 1000, 1000, 1.0, 95), Gpu(1, A100, 1000, 0, 1.0, 50)]
    # 50 + utilization 20*(1-1) + memory 15*(1-0.5) + temperature 0 (hottest 95 C)
    assert health_score(0, 0, 0, busy_hot) == 57.5
    warm = [Gpu(0, A100, 1000, 0, 0.0, 80)]
    assert health_score(0, 0, 0, warm) == 92.5  # halfway from 70 to 90 C: 7.5 of 15


def test_nvml_values_become_the_heartbeat_s_gpus() -> None:
    fake = FakeNvml(
        [
            FakeNvml.Device(RTX, total_mib=24_564, used_mib=1_024, gpu_percent=37, temperature=61),
            FakeNvml.Device("lost", total_mib=1, broken=True),
            FakeNvml.Device(A100, total_mib=81_920),
        ]
    )
    gpus = GpuReader(fake).read()
    assert gpus == [
        {
            "index": 0,
            "name": RTX,
            "memory_total_mb": 24_564,
            "memory_used_mb": 1_024,
            "utilization": 0.37,
            "temperature_c": 61.0,
        },
        {
            "index": 2,
            "name": A100,
            "memory_total_mb": 81_920,
            "memory_used_mb": 0,
            "utilization": 0.0,
            "temperature_c": 40.0,
        },
    ]


def test_a_node_without_the_driver_reports_no_gpus() -> None:
    assert GpuReader(FakeNvml([], init_error="NVML Shared Library Not Found")).read() == []
    assert GpuReader().read() == []  # this machine, for real: no NVIDIA driver, no error
