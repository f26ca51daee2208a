"""The store evaluates placement in SQL; it must choose exactly what the pure rule chooses."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takeover.domain.models import Node
from takeover.domain.placement import PlacementRequest, assume_placed, select_best_node
from takeover.store.nodes import _node_values, select_node, take_slot
from takeover.store.tables import nodes
from tests.unit.factories import nodes_strategy


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    nodes_strategy(max_size=10),
    st.sampled_from([None, "r1", "r2"]),
    st.integers(0, 3),
    st.booleans(),
    st.data(),
)
def test_sql_placement_matches_the_pure_rule(
    engine: sa.Engine,
    pool: list[Node],
    region: str | None,
    degraded: int,
    region_only: bool,
    data: st.DataObject,
) -> None:
    picked = data.draw(st.lists(st.sampled_from(pool), max_size=2)) if pool else []
    exclude = frozenset(n.id for n in picked)
    request = PlacementRequest(region, exclude, degraded, region_only=region_only and region is not None)
    with engine.begin() as conn:
        conn.execute(nodes.delete())
        for n in pool:
            conn.execute(nodes.insert().values({**_node_values(n), "api_token_hash": "x"}))
        chosen = select_node(conn, request)
    expected = select_best_node(pool, request)
    if isinstance(expected, Node):
        assert isinstance(chosen, Node)
        assert chosen.name == expected.name
    else:
        assert chosen == expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(nodes_strategy(max_size=1, min_size=1))
def test_a_slot_taken_in_sql_counts_against_the_node_as_the_pure_rule_says(
    engine: sa.Engine, pool: list[Node]
) -> None:
    [node] = pool
    with engine.begin() as conn:
        conn.execute(nodes.delete())
        conn.execute(nodes.insert().values({**_node_values(node), "api_token_hash": "x"}))
        taken = take_slot(conn, node.id)
        row = conn.execute(sa.select(nodes).where(nodes.c.id == node.id)).one()
    if not taken:  # not online, or full: nothing changes
        assert (row.current_instances, row.health_score) == (node.current_instances, node.health_score)
        return
    expected = assume_placed(node)
    assert row.current_instances == expected.current_instances
    assert row.health_score == pytest.approx(expected.health_score, abs=1e-9)
