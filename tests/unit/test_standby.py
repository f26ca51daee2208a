"""Warm standbys: which instances need one and which node keeps it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from takeover.domain.models import Gpu, GpuRequest, NodeStatus
from takeover.domain.standby import choose_standby, needs_standby, standby_request
from tests.unit.factories import instance, node

HOME, OTHER = node("home"), node("other")


@pytest.mark.parametrize("strategy", ["warm_pool", "both"])
def test_a_warm_instance_without_a_live_standby_needs_one(strategy: str) -> None:
    web = instance(HOME.id, failover_strategy=strategy)
    assert needs_standby(web, "cpu_standby", None)
    assert needs_standby(replace(web, standby_node_id=HOME.id), "cpu_standby", NodeStatus.ONLINE), (
        "its own node"
    )
    for status in (NodeStatus.OFFLINE, NodeStatus.DRAINING, None):
        assert needs_standby(replace(web, standby_node_id=OTHER.id), "cpu_standby", status)
    assert not needs_standby(replace(web, standby_node_id=OTHER.id), "cpu_standby", NodeStatus.ONLINE)


def test_only_placed_warm_instances_need_one_and_the_default_strategy_counts() -> None:
    assert not needs_standby(instance(HOME.id, failover_strategy="cpu_standby"), "warm_pool", None)
    assert needs_standby(instance(HOME.id), "warm_pool", None), "no strategy of its own: the default"
    assert not needs_standby(instance(HOME.id), "snapshot_restore", None)
    assert not needs_standby(instance(None, failover_strategy="warm_pool"), "warm_pool", None)


def test_the_standby_is_where_placement_would_put_it_never_the_instance_s_own_node() -> None:
    best_but_home = replace(HOME, health_score=99.0)
    far, near = node("far", region="r2", health_score=90.0), node("near", region="r1", health_score=40.0)
    web = instance(best_but_home.id)
    request = standby_request(web, "r1", degraded_streak=0)
    assert choose_standby(web, request, [best_but_home, far, near], {}) == near
    assert choose_standby(web, request, [best_but_home], {}) is None
    offline = replace(near, status=NodeStatus.OFFLINE)
    assert choose_standby(web, request, [best_but_home, far, offline], {}) == far, (
        "another region before none"
    )


def test_a_gpu_instance_s_standby_has_the_gpus_it_asks_for_free() -> None:
    gpu = Gpu(0, "NVIDIA GeForce RTX 4090", 24_000)
    with_gpu, without = node("gpu", gpus=(gpu,), health_score=10.0), node("cpu", health_score=99.0)
    web = instance(HOME.id, gpus=GpuRequest(1, ("4090",)))
    request = standby_request(web, "r1", degraded_streak=0)
    assert choose_standby(web, request, [HOME, without, with_gpu], {}) == with_gpu
    assert choose_standby(web, request, [HOME, without, with_gpu], {with_gpu.id: {0: False}}) is None, "held"
