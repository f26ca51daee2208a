from hypothesis import given
from hypothesis import strategies as st

from takeover.domain.models import InstanceSpec, Node, NodeStatus
from takeover.domain.placement import Ineligible, PlacementRequest, assume_placed, rank_key, select_best_node
from tests.unit.factories import node, nodes_strategy


def test_highest_health_score_wins() -> None:
    a, b = node("a", health_score=50), node("b", health_score=90)
    assert select_best_node([a, b], PlacementRequest()) == b


def test_free_capacity_breaks_a_score_tie_then_priority_then_name() -> None:
    a = node("a", health_score=80, current_instances=5)
    b = node("b", health_score=80, current_instances=1)
    assert select_best_node([a, b], PlacementRequest()) == b
    c = node("c", health_score=80, current_instances=1, priority=5)
    assert select_best_node([a, b, c], PlacementRequest()) == c
    d = node("0-first", health_score=80, current_instances=1, priority=5)
    assert select_best_node([c, d], PlacementRequest()) == d


def test_preferred_region_wins_over_a_better_node_elsewhere() -> None:
    far = node("far", region="us", health_score=99)
    near = node("near", region="br", health_score=40)
    assert select_best_node([far, near], PlacementRequest(preferred_region="br")) == near


def test_falls_back_to_other_regions_when_the_preferred_has_no_room() -> None:
    far = node("far", region="us")
    full = node("full", region="br", current_instances=10)
    assert select_best_node([far, full], PlacementRequest(preferred_region="br")) == far


def test_offline_draining_full_excluded_and_degraded_nodes_are_skipped_with_reasons() -> None:
    nodes = [
        node("off", status=NodeStatus.OFFLINE),
        node("drain", status=NodeStatus.DRAINING),
        node("full", current_instances=10),
        node("sick", low_score_streak=5),
    ]
    excluded = node("excluded")
    result = select_best_node(
        [*nodes, excluded], PlacementRequest(exclude=frozenset({excluded.id}), degraded_streak=5)
    )
    assert isinstance(result, Ineligible)
    assert result.reason == "no eligible node (1 degraded, 1 draining, 1 excluded, 1 full, 1 offline)"


def test_an_empty_pool_says_so() -> None:
    assert select_best_node([], PlacementRequest()) == Ineligible("no nodes registered")


@given(nodes_strategy(max_size=12), st.sampled_from([None, "r1", "r2"]))
def test_the_chosen_node_is_eligible_and_no_eligible_node_ranks_better(
    nodes: list[Node], region: str | None
) -> None:
    result = select_best_node(nodes, PlacementRequest(preferred_region=region))
    eligible = [n for n in nodes if n.status is NodeStatus.ONLINE and n.free_capacity > 0]
    if not eligible:
        assert isinstance(result, Ineligible)
        return
    assert isinstance(result, Node)
    local = [n for n in eligible if n.region == region]
    pool = local or eligible
    assert result in pool
    assert all(rank_key(result) <= rank_key(n) for n in pool)


def test_a_burst_spreads_because_each_placement_counts_before_the_next_heartbeat() -> None:
    pool = [
        node(n, health_score=score, max_instances=10) for n, score in (("a", 90.0), ("b", 88.0), ("c", 85.0))
    ]
    chosen = []
    for _ in range(4):
        best = select_best_node(pool, PlacementRequest())
        assert isinstance(best, Node)
        chosen.append(best.name)
        pool = [assume_placed(n) if n.id == best.id else n for n in pool]
    assert chosen == ["a", "b", "c", "a"]  # 90 -> 80 < 88; 88 -> 78 < 85; then a (80) again


def test_an_assumed_placement_costs_a_node_s_share_and_never_goes_below_zero() -> None:
    small = assume_placed(node("s", health_score=30.0, max_instances=4, current_instances=1))
    assert (small.health_score, small.current_instances) == (5.0, 2)
    assert assume_placed(node("t", health_score=10.0, max_instances=2)).health_score == 0.0


def test_an_image_instance_goes_only_where_containers_run_or_to_its_own_image() -> None:
    plain = node("plain", containers=False, health_score=99.0)
    other = node("other", containers=False, image="registry.example/api:1", health_score=98.0)
    itself = node("itself", containers=False, image="registry.example/web:2", health_score=90.0)
    podman = node("podman", health_score=50.0)
    web = PlacementRequest().runs(InstanceSpec(("/app/serve",), image="registry.example/web:2"))
    assert select_best_node([plain, other, itself, podman], web) == itself
    assert select_best_node([plain, other, podman], web) == podman
    assert select_best_node([plain, other], web) == Ineligible("no eligible node (2 without containers)")
    own_command = PlacementRequest().runs(InstanceSpec((), image="registry.example/web:2"))
    assert select_best_node([itself, podman], own_command) == podman  # its command is not known there
    assert select_best_node([plain], PlacementRequest().runs(InstanceSpec(("sleep", "1")))) == plain
