"""What a failover's steps record besides their status, and which attempt comes next."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from uuid import uuid4

from takeover.domain.failover import Attempt, FailoverStatus
from takeover.domain.models import NodeStatus
from takeover.domain.steps import after_step, gave_up, placed, placement_for, target_refusal
from takeover.domain.strategies import AttemptPlan, NotPossible, StrategyName
from takeover.domain.strategies.choice import next_attempt
from takeover.store.rows import attempts_from_json, attempts_to_json
from tests.unit.factories import T0, failover, instance, node
from tests.unit.test_strategies import situation, warm

S = FailoverStatus
LATER = T0 + timedelta(seconds=2)


def test_a_step_times_the_one_it_leaves_and_an_end_times_the_whole_failover() -> None:
    f = failover(
        uuid4(), uuid4(), status=S.BACKING_UP, created_at=T0, step_started_at=T0 + timedelta(seconds=1)
    )
    moved = after_step(f, S.MIGRATING, LATER)
    assert (moved.status, moved.step_started_at, moved.timings) == (
        S.MIGRATING,
        LATER,
        {"backing_up_ms": 1000.0},
    )
    assert moved.completed_at is None
    ended = after_step(moved, S.FAILED, LATER + timedelta(seconds=1), error="no node")
    assert ended.timings == {"backing_up_ms": 1000.0, "migrating_ms": 1000.0, "total_ms": 3000.0}
    assert (ended.completed_at, ended.error) == (LATER + timedelta(seconds=1), "no node")


def test_placing_starts_an_attempt_after_the_skipped_ones_and_leaving_restoring_ends_it() -> None:
    target = uuid4()
    f = failover(uuid4(), uuid4(), status=S.MIGRATING, step_started_at=T0)
    skipped = (Attempt("warm_pool", None, 0.0, "warm_pool_not_ready: no standby"),)
    on = placed(f, "cpu_standby", target, T0, skipped, rental={"rental_id": "r1"})
    assert (on.status, on.target_node_id, on.targets_tried, on.tried_node_ids) == (
        S.RESTORING,
        target,
        1,
        (target,),
    )
    assert on.attempts == (
        *skipped,
        Attempt("cpu_standby", target, rental={"rental_id": "r1"}, started_at=T0),
    )
    back = after_step(on, S.MIGRATING, LATER, attempt_error="the target node is offline")
    assert back.attempts[-1] == Attempt(
        "cpu_standby", target, 2000.0, "the target node is offline", {"rental_id": "r1"}, T0
    )
    assert gave_up(back, "cpu_standby tried 1 node(s)") == (
        "the target node is offline; gave up: cpu_standby tried 1 node(s)"
    )
    assert gave_up(f, "nothing") == "gave up: nothing"


def test_a_requested_target_must_be_another_online_node_with_room() -> None:
    home, other = node("home"), node("other")
    web = instance(home.id)
    assert target_refusal(web, None) is None
    assert target_refusal(web, other) is None
    assert target_refusal(web, home) == ("target_node_id", "the instance already runs on the target node")
    assert target_refusal(instance(None), other) == ("instance_id", "the instance is not placed on any node")
    for unable in (
        replace(other, current_instances=other.max_instances),
        replace(other, status=NodeStatus.OFFLINE),
    ):
        field, message = target_refusal(web, unable) or ("", "")
        assert (field, message.split(" (")[0]) == ("target_node_id", "target node other cannot take it")


def test_the_next_attempt_is_the_first_strategy_of_the_chain_that_can_try() -> None:
    f = failover(uuid4(), uuid4(), status=S.MIGRATING, strategy="both")
    ready = warm()
    assert next_attempt(f, ready).plan == AttemptPlan(
        StrategyName.WARM_POOL, target=ready.instance.standby_node_id
    )
    chosen = next_attempt(f, situation())  # no standby: warm_pool is skipped, logged once
    assert chosen.plan == AttemptPlan(StrategyName.CPU_STANDBY)
    [skipped] = chosen.skipped
    assert (skipped.strategy, skipped.ms) == ("warm_pool", 0.0)
    assert str(skipped.error).startswith("warm_pool_not_ready")
    again = next_attempt(f, situation(attempts=chosen.skipped))
    assert (again.plan, again.skipped) == (AttemptPlan(StrategyName.CPU_STANDBY), ())


def test_no_strategy_can_try_says_why_each_could_not() -> None:
    f = failover(uuid4(), uuid4(), status=S.MIGRATING, strategy="both")
    tried = tuple(Attempt("cpu_standby", uuid4(), 10.0, "died") for _ in range(3))
    chosen = next_attempt(f, situation(attempts=tried))
    assert isinstance(chosen.plan, NotPossible)
    assert chosen.plan.reason.startswith("warm_pool_not_ready")
    assert chosen.plan.reason.endswith("; cpu_standby tried 3 node(s)")
    assert [a.strategy for a in chosen.skipped] == ["warm_pool"], "cpu_standby did try: not skipped"


def test_an_operator_s_target_is_tried_once_as_a_promotion_if_it_is_the_standby() -> None:
    ready = warm()
    standby = ready.instance.standby_node_id
    f = failover(uuid4(), uuid4(), status=S.MIGRATING, requested_target_id=standby)
    assert next_attempt(f, ready).plan == AttemptPlan(StrategyName.WARM_POOL, target=standby)
    other = failover(uuid4(), uuid4(), status=S.MIGRATING, requested_target_id=uuid4())
    assert next_attempt(other, ready).plan == AttemptPlan(
        StrategyName.CPU_STANDBY, target=other.requested_target_id
    )
    tried = situation(attempts=(Attempt("warm_pool", standby, 10.0, "died"),))
    assert next_attempt(f, tried).plan == NotPossible("the requested target was tried")


def test_attempts_keep_every_field_through_the_store_s_json_and_older_entries_still_read() -> None:
    attempts = (
        Attempt("warm_pool", None, 0.0, "not ready"),
        Attempt("cpu_standby", uuid4(), 12.5, None, {"rental_id": "r1"}, T0),
        Attempt("cpu_standby", uuid4(), started_at=T0),
    )
    assert attempts_from_json(attempts_to_json(attempts)) == attempts
    old = [{"strategy": "cpu_standby", "node_id": None, "ms": 0.0, "error": "x"}]
    assert attempts_from_json(old) == (Attempt("cpu_standby", None, 0.0, "x"),)
    assert attempts_from_json(None) == ()


def test_an_attempt_goes_where_its_plan_says_and_a_fixed_target_is_never_excluded() -> None:
    web = instance(uuid4(), preferred_region="r1")
    f, tried, standby = failover(web.id, web.node_id, status=S.MIGRATING), uuid4(), uuid4()
    request, fixed = placement_for(f, AttemptPlan(StrategyName.CPU_STANDBY), web, frozenset({tried}), 3)
    assert (request.preferred_region, request.exclude, request.degraded_streak, request.region_only) == (
        "r1",
        frozenset({tried}),
        3,
        False,
    )
    assert fixed is None
    held = AttemptPlan(StrategyName.REGIONAL_VOLUME, region="r2")
    request, _ = placement_for(f, held, web, frozenset(), 0)
    assert (request.preferred_region, request.region_only) == ("r2", True)
    warm_plan = AttemptPlan(StrategyName.WARM_POOL, target=standby)
    request, fixed = placement_for(f, warm_plan, web, frozenset({standby, tried}), 0)
    assert (fixed, request.exclude) == (standby, frozenset({tried}))
    asked = replace(f, requested_target_id=tried)
    assert placement_for(asked, AttemptPlan(StrategyName.CPU_STANDBY), web, frozenset({tried}), 0)[1] == tried
