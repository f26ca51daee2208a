from dataclasses import replace
from datetime import timedelta
from uuid import UUID

from takeover.domain.failover import FailoverReason
from takeover.domain.models import Node, NodeStatus
from takeover.domain.monitor import (
    MonitorPolicy,
    TokenBucket,
    failovers_to_open,
    is_stale,
    may_lose_instances,
    regions_to_pause,
    regions_to_resume,
)
from tests.unit.factories import T0, instance, node

POLICY = MonitorPolicy(
    offline_after=timedelta(seconds=120), brake_fraction=0.5, brake_min_nodes=3, degraded_streak=3
)


def test_a_node_is_stale_only_once_watched_silent_past_offline_after() -> None:
    assert not is_stale(node(), 120, POLICY)
    assert is_stale(node(), 121, POLICY)
    assert not is_stale(node(status=NodeStatus.OFFLINE), 86400, POLICY)


def silence(nodes: list[Node], quiet: list[Node], seconds: float = 61) -> dict[UUID, float]:
    return {n.id: seconds if n in quiet else 1.0 for n in nodes}


def test_most_of_a_region_quiet_now_when_one_goes_offline_pauses_that_region_only() -> None:
    region_a = [node(f"a{i}", region="a") for i in range(4)]
    region_b = [node(f"b{i}", region="b") for i in range(4)]
    nodes = [*region_a, *region_b]
    quiet = silence(nodes, [*region_a[:3], region_b[0]]) | {region_a[0].id: 121, region_b[0].id: 121}
    paused = regions_to_pause(nodes, quiet, [region_a[0], region_b[0]], POLICY)
    assert list(paused) == ["a"]  # three of a's four are quiet, though only one is stale yet
    assert "3 of 4 reachable nodes" in paused["a"]


def test_half_or_fewer_quiet_a_tiny_region_or_no_node_going_offline_does_not_pause() -> None:
    region = [node(f"a{i}", region="a") for i in range(4)]
    assert regions_to_pause(region, silence(region, region[:2]), region[:1], POLICY) == {}
    assert regions_to_pause(region, silence(region, region), [], POLICY) == {}
    tiny = [node("t0", region="t"), node("t1", region="t")]
    assert regions_to_pause(tiny, silence(tiny, tiny), tiny, POLICY) == {}
    gone = [replace(n, status=NodeStatus.OFFLINE) for n in region[:3]] + [region[3]]
    assert regions_to_pause(gone, silence(gone, gone), region[3:], POLICY) == {}  # one reachable


def test_a_paused_region_resumes_once_most_nodes_are_back() -> None:
    region = [node(f"a{i}", region="a", status=NodeStatus.OFFLINE) for i in range(3)] + [
        node("a3", region="a")
    ]
    assert regions_to_resume(region, ["a"], POLICY) == []
    back = [node(f"a{i}", region="a") for i in range(3)] + [node("a3", region="a", status=NodeStatus.OFFLINE)]
    assert regions_to_resume(back, ["a"], POLICY) == ["a"]


def test_instances_get_the_reason_of_their_node() -> None:
    dead = node("dead", status=NodeStatus.OFFLINE)
    drained = node("drained", status=NodeStatus.MAINTENANCE)
    sick = node("sick", low_score_streak=3)
    fine = node("fine")
    on = {n.name: instance(n.id) for n in (dead, drained, sick, fine)}
    intents = failovers_to_open(
        [dead, drained, sick, fine],
        on.values(),
        busy_instance_ids=frozenset(),
        paused_regions=frozenset(),
        policy=POLICY,
    )
    reasons = {i.instance_id: i.reason for i in intents}
    assert reasons == {
        on["dead"].id: FailoverReason.NODE_FAILURE,
        on["drained"].id: FailoverReason.MAINTENANCE,
        on["sick"].id: FailoverReason.HEALTH_DEGRADED,
    }


def test_failover_disabled_paused_region_and_busy_instances_are_left_alone_but_maintenance_moves_all() -> (
    None
):
    dead = node("dead", status=NodeStatus.OFFLINE, region="a")
    drained = node("drained", status=NodeStatus.DRAINING, region="a")
    opted_out = instance(dead.id, failover_enabled=False)
    busy = instance(dead.id)
    drained_opted_out = instance(drained.id, failover_enabled=False)
    intents = failovers_to_open(
        [dead, drained],
        [opted_out, busy, drained_opted_out],
        busy_instance_ids=frozenset({busy.id}),
        paused_regions=frozenset(),
        policy=POLICY,
    )
    assert [i.instance_id for i in intents] == [drained_opted_out.id]
    paused = failovers_to_open(
        [dead],
        [instance(dead.id)],
        busy_instance_ids=frozenset(),
        paused_regions=frozenset({"a"}),
        policy=POLICY,
    )
    assert paused == []


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket.full(rate=0.5, burst=2, now=T0)
    results = []
    for _ in range(3):
        bucket, ok = bucket.take(T0)
        results.append(ok)
    assert results == [True, True, False]
    bucket, ok = bucket.take(T0 + timedelta(seconds=1))
    assert not ok
    bucket, ok = bucket.take(T0 + timedelta(seconds=2))
    assert ok


def test_only_nodes_that_can_lose_instances_are_read() -> None:
    assert not may_lose_instances(node(), 1, POLICY)
    assert may_lose_instances(node(), 121, POLICY)  # about to go offline
    assert may_lose_instances(node(status=NodeStatus.DRAINING), 1, POLICY)
    assert may_lose_instances(node(low_score_streak=3), 1, POLICY)


def test_the_disabled_strategy_means_no_automatic_failover() -> None:
    dead = node("dead", status=NodeStatus.OFFLINE)
    disabled = instance(dead.id, failover_strategy="disabled")
    default = instance(dead.id)
    intents = failovers_to_open(
        [dead], [disabled, default], busy_instance_ids=frozenset(), paused_regions=frozenset(), policy=POLICY
    )
    assert [i.instance_id for i in intents] == [default.id]
    everything_disabled = replace(POLICY, default_strategy="disabled")
    explicit = instance(dead.id, failover_strategy="cpu_standby")
    intents = failovers_to_open(
        [dead],
        [default, explicit],
        busy_instance_ids=frozenset(),
        paused_regions=frozenset(),
        policy=everything_disabled,
    )
    assert [i.instance_id for i in intents] == [explicit.id]
