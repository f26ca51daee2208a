"""Opening failovers in bulk (the monitor after a mass failure) opens exactly what opening them
one by one would: every intent whose instance is placed and not being moved already, once."""

from __future__ import annotations

from uuid import uuid4

import sqlalchemy as sa

from takeover.domain.failover import FailoverReason, FailoverStatus
from takeover.store import Store
from takeover.store.instances import _values
from takeover.store.nodes import _node_values
from takeover.store.tables import events, instances, nodes
from tests.unit.factories import T0, instance, node


def test_open_many_skips_the_gone_the_unplaced_and_those_already_moving(engine: sa.Engine) -> None:
    store = Store(engine, low_score_threshold=30, degraded_streak=5)
    source = node("source")
    placed = [instance(source.id, name=f"i{k}", number=k + 1, created_at=T0) for k in range(6)]
    unplaced = instance(None, name="unplaced", number=7, created_at=T0)
    with engine.begin() as conn:
        conn.execute(nodes.insert().values({**_node_values(source), "api_token_hash": "x"}))
        conn.execute(instances.insert(), [_values(i) for i in [*placed, unplaced]])
    failure = FailoverReason.NODE_FAILURE
    (moving,) = store.failovers.open_many([(placed[0].id, failure)], T0, None)

    intents = [(i.id, failure) for i in placed] + [(unplaced.id, failure), (uuid4(), failure)]
    opened = store.failovers.open_many(intents, T0, None)

    assert [f.instance_id for f in opened] == [i.id for i in placed[1:]]  # in the intents' order
    assert {f.status for f in opened} == {FailoverStatus.PENDING}
    assert {f.source_node_id for f in opened} == {source.id}
    assert {f.strategy for f in opened} == {"cpu_standby"}  # the store's default: none named one
    stored = {f.id: f for f in store.failovers.find()}
    assert set(stored) == {moving.id, *(f.id for f in opened)}
    assert stored[opened[0].id] == opened[0]
    with engine.connect() as conn:
        messages = set(
            conn.execute(sa.select(events.c.message).where(events.c.kind == "failover.opened")).scalars()
        )
    assert messages == {f"node_failure failover of {i.name}" for i in placed}
    assert store.failovers.open_many(intents, T0, None) == []  # all moving now: nothing twice
