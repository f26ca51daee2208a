"""The failover strategies: readiness, and which attempt each plans next."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from takeover.domain.models import NodeStatus
from takeover.domain.strategies import (
    STRATEGIES,
    Attempt,
    AttemptPlan,
    NotPossible,
    Situation,
    StrategyName,
    chain,
)
from takeover.domain.strategies.base import parse_strategy
from tests.unit.factories import T0, instance

S = StrategyName


def situation(**fields: object) -> Situation:
    values: dict[str, object] = {
        "instance": instance(uuid4(), last_snapshot="000000000001-20261122T000000000000Z-abcdef"),
        "now": T0,
        "sync_interval": timedelta(seconds=10),
        "candidates": 2,
        "candidates_in_region": 1,
    }
    values.update(fields)
    return Situation(**values)  # type: ignore[arg-type]


def warm(**fields: object) -> Situation:
    standby = uuid4()
    inst = instance(uuid4(), standby_node_id=standby, standby_synced_at=T0 - timedelta(seconds=5))
    return situation(
        instance=inst, standby_status=NodeStatus.ONLINE, standby_synced_at=inst.standby_synced_at, **fields
    )


def test_names_and_aliases() -> None:
    assert parse_strategy("snapshot_restore") is S.CPU_STANDBY
    with pytest.raises(ValueError, match="use one of: warm_pool, cpu_standby, both"):
        parse_strategy("magic")
    assert chain("both") == (S.WARM_POOL, S.CPU_STANDBY)
    assert chain("disabled") == (S.CPU_STANDBY,)
    assert chain(None) == (S.CPU_STANDBY,)


def test_cpu_standby_tries_up_to_max_attempts_nodes() -> None:
    strategy = STRATEGIES[S.CPU_STANDBY]
    assert strategy.plan(situation()) == AttemptPlan(S.CPU_STANDBY)
    tried = tuple(Attempt("cpu_standby", uuid4(), 10.0, "boom") for _ in range(3))
    assert strategy.plan(situation(attempts=tried)) == NotPossible("cpu_standby tried 3 node(s)")


def test_cpu_standby_is_not_ready_without_a_snapshot_or_a_node() -> None:
    strategy = STRATEGIES[S.CPU_STANDBY]
    assert strategy.readiness(situation()).ready
    no_snapshot = strategy.readiness(situation(instance=instance(uuid4())))
    assert not no_snapshot.ready
    assert "no snapshot yet" in (no_snapshot.recommended_action or "")
    assert "takeover instances snapshot app" in (no_snapshot.recommended_action or "")
    assert "add a node" in (strategy.readiness(situation(candidates=0)).recommended_action or "")
    point = "000000000001-20261122T000000000000Z-abcdef"
    moved = strategy.readiness(situation(instance=instance(uuid4(), recovery_point=point)))
    assert moved.ready  # moved since: its runner took none yet, but the recovery point restores
    assert moved.details["latest_snapshot"] == point


def test_warm_pool_targets_its_synced_standby_once() -> None:
    strategy = STRATEGIES[S.WARM_POOL]
    ready = warm()
    assert strategy.readiness(ready).ready
    assert strategy.plan(ready) == AttemptPlan(S.WARM_POOL, target=ready.instance.standby_node_id)
    again = warm(attempts=(Attempt("warm_pool", uuid4(), 5.0, "died"),))
    assert isinstance(strategy.plan(again), NotPossible)


@pytest.mark.parametrize(
    ("change", "action"),
    [
        ({"standby_status": NodeStatus.OFFLINE}, "the standby node is offline"),
        ({"standby_synced_at": None}, "has not synced yet"),
        ({"standby_synced_at": T0 - timedelta(seconds=60)}, "standby out of sync"),
    ],
)
def test_warm_pool_is_not_ready_when_its_standby_is_not(change: dict[str, object], action: str) -> None:
    base = warm()
    values: dict[str, object] = {
        "instance": base.instance,
        "standby_status": base.standby_status,
        "standby_synced_at": base.standby_synced_at,
    }
    values.update(change)
    sit = situation(**values)
    readiness = STRATEGIES[S.WARM_POOL].readiness(sit)
    assert not readiness.ready
    assert action in (readiness.recommended_action or "")
    plan = STRATEGIES[S.WARM_POOL].plan(sit)
    assert isinstance(plan, NotPossible)
    assert plan.reason.startswith("warm_pool_not_ready")


def test_both_falls_back_to_cpu_standby() -> None:
    both = STRATEGIES[S.BOTH]
    assert both.plan(warm()).strategy is S.WARM_POOL  # type: ignore[union-attr]
    after_warm = warm(attempts=(Attempt("warm_pool", uuid4(), 900.0, "the target node is offline"),))
    assert both.plan(after_warm) == AttemptPlan(S.CPU_STANDBY)
    not_ready = situation()  # no standby at all
    assert both.plan(not_ready) == AttemptPlan(S.CPU_STANDBY)
    assert both.readiness(not_ready).ready  # cpu_standby is


def test_regional_volume_stays_in_its_region() -> None:
    strategy = STRATEGIES[S.REGIONAL_VOLUME]
    volume = uuid4()
    sit = situation(instance=instance(uuid4(), volume_id=volume), volume_region="eu")
    assert strategy.plan(sit) == AttemptPlan(S.REGIONAL_VOLUME, region="eu")
    assert strategy.readiness(sit).ready
    lonely = situation(
        instance=instance(uuid4(), volume_id=volume), volume_region="eu", candidates_in_region=0
    )
    assert "no other online node in region eu" in (strategy.readiness(lonely).recommended_action or "")
    assert isinstance(strategy.plan(situation()), NotPossible)  # no volume


def test_disabled_is_never_ready_for_automatic_failover() -> None:
    assert not STRATEGIES[S.DISABLED].readiness(situation()).ready
