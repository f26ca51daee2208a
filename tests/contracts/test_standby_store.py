"""The store narrows the warm instances to look at in SQL; it must find exactly those the pure
needs_standby rule picks out of every instance."""

from __future__ import annotations

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takeover.domain.models import NodeStatus
from takeover.domain.standby import needs_standby
from takeover.store.instances import _values
from takeover.store.nodes import _node_values
from takeover.store.standbys import _lacking
from takeover.store.tables import instances, nodes
from tests.unit.factories import T0, instance, node

STRATEGIES = [None, "warm_pool", "both", "cpu_standby", "snapshot_restore", "disabled"]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.sampled_from(list(NodeStatus)), min_size=1, max_size=4),
    st.lists(st.tuples(st.integers(0, 3), st.integers(-1, 4), st.sampled_from(STRATEGIES)), max_size=8),
    st.sampled_from(["warm_pool", "cpu_standby", "both"]),
)
def test_sql_finds_the_instances_the_pure_rule_says_need_a_standby(
    engine: sa.Engine,
    statuses: list[NodeStatus],
    rows: list[tuple[int, int, str | None]],
    default: str,
) -> None:
    pool = [node(f"n{i}", status=s) for i, s in enumerate(statuses)]
    gone = node("gone")  # a standby node that was deleted
    placed = []
    for k, (at, standby, strategy) in enumerate(rows):
        standby_id = None if standby < 0 else gone.id if standby >= len(pool) else pool[standby].id
        placed.append(
            instance(
                pool[at % len(pool)].id,
                name=f"i{k}",
                standby_node_id=standby_id,
                failover_strategy=strategy,
                created_at=T0,
                number=k + 1,
            )
        )
    with engine.begin() as conn:
        conn.execute(instances.delete())
        conn.execute(nodes.delete())
        for n in pool:
            conn.execute(nodes.insert().values({**_node_values(n), "api_token_hash": "x"}))
        for i in placed:
            conn.execute(instances.insert().values({**_values(i), "standby_node_id": i.standby_node_id}))
        found = {i.id for i, _, _ in _lacking(conn, default)}
    status_of = {n.id: n.status for n in pool}
    expected = {
        i.id
        for i in placed
        if needs_standby(i, default, status_of.get(i.standby_node_id))  # type: ignore[arg-type]
    }
    assert found == expected
