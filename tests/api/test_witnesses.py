"""Witnesses through the API (docs/rules.md, Witnesses): offered by the leader, reported in use,
and a silent node failed over only once its witnesses outdated it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from takeover.main import Runtime
from takeover.store.heartbeats import database_clock
from tests.api.pool import NodeHandle, Pool


def witnessing(pool: Pool, node: NodeHandle, port: int, used: list[str] | None = None) -> dict[str, Any]:
    return pool.beat(node, witness_addr=f"127.0.0.1:{port}", witnesses=used)


def test_the_leader_offers_witnesses_and_a_reply_carries_all_of_them_or_none(
    pool: Pool, runtime: Runtime
) -> None:
    a, b, c = pool.node("a"), pool.node("b"), pool.node("c")
    for port, n in enumerate((a, b, c), start=7001):
        witnessing(pool, n, port)
    pool.cycle()
    reply = witnessing(pool, a, 7001)
    assert reply["stamp"] is not None
    assert reply["witness_lag"] == 1.5 * reply["heartbeat_interval"]
    offered = {w["id"]: w["addr"] for w in reply["witnesses"]}
    assert offered == {b.id: "127.0.0.1:7002", c.id: "127.0.0.1:7003"}
    witnessing(pool, a, 7001, used=list(offered))
    shown = {n["name"]: n["witnesses"] for n in pool.get("/api/v1/nodes")}
    assert sorted(shown["a"]) == sorted(offered)  # what it reported using
    with runtime.store.engine.begin() as conn:  # b's address lost: a part of a set is never sent
        conn.execute(sa.text("UPDATE nodes SET witness_addr = NULL WHERE name = 'b'"))
    assert witnessing(pool, a, 7001, used=list(offered))["witnesses"] == []


def test_a_bad_witness_report_is_refused_naming_the_field(pool: Pool) -> None:
    a = pool.node("a")
    response = pool.client.post(
        f"/api/v1/nodes/{a.id}/heartbeat",
        json={"cpu_load": 0.1, "memory_load": 0.1, "witness_addr": "not an address", "held_for": -1},
        headers={"Authorization": f"Bearer {a.token}"},
    )
    assert response.status_code == 422
    assert "witness_addr" in response.text
    assert "held_for" in response.text


def three_witnessed(pool: Pool) -> tuple[list[NodeHandle], dict[str, dict[str, Any]]]:
    nodes = [pool.node(name) for name in ("a", "b", "c")]
    replies = {n.id: witnessing(pool, n, 7001 + i) for i, n in enumerate(nodes)}
    pool.cycle()  # the leader offers each its witnesses
    for _ in range(2):  # learn them, then report them in use with the stamp held
        replies = {n.id: holding(pool, n, replies[n.id]) for n in nodes}
    return nodes, replies


def holding(pool: Pool, node: NodeHandle, last: dict[str, Any]) -> dict[str, Any]:
    """A heartbeat as an agent sends it: the stamp of the last ack held for 0.5 s, its witnesses."""
    return pool.beat(
        node,
        witness_addr="127.0.0.1:7000",
        stamp_held=last["stamp"],
        held_for=0.5,
        witnesses=[w["id"] for w in last["witnesses"]],
    )


def test_a_silent_node_is_failed_over_once_its_witnesses_heard_from_the_control_plane_since(
    pool: Pool,
) -> None:
    (_, b, c), replies = three_witnessed(pool)
    offline: list[str] = []
    for _ in range(8):  # a is silent; b and c go on, holding newer and newer stamps
        pool.elapse(1)
        for n in (b, c):
            replies[n.id] = holding(pool, n, replies[n.id])
        outcome = pool.cycle().monitor
        assert outcome is not None
        offline += outcome.offline_nodes
    assert offline == ["a"]


def test_nodes_silent_together_vouch_for_each_other_and_none_is_failed_over(pool: Pool) -> None:
    """A region cut off (or every node's link to the control plane): nobody can prove a fence."""
    three_witnessed(pool)
    vouched: list[str] = []
    for _ in range(12):
        pool.elapse(1)
        outcome = pool.cycle().monitor
        assert outcome is not None
        assert outcome.offline_nodes == []
        vouched = outcome.vouched_for
    assert sorted(vouched) == ["a", "b", "c"]
    assert all(n["status"] == "online" for n in pool.get("/api/v1/nodes"))
    assert "takeover_nodes_vouched_for 3.0" in pool.client.get("/metrics").text


def test_stamps_are_the_store_s_clock_on_postgresql_and_the_replica_s_on_sqlite(
    pool: Pool, runtime: Runtime
) -> None:
    """The acknowledgements of every replica come from one clock where replicas share a
    PostgreSQL: a replica whose clock is a day off stamps as the others do."""
    runtime.store.nodes.stamps = database_clock  # as `takeover serve` runs (the tests' fake clock aside)
    pool.clock.advance(-86_400)
    a = pool.node("a")
    reply = pool.beat(a)
    stamp = datetime.fromisoformat(reply["stamp"])
    if runtime.store.engine.dialect.name == "postgresql":
        assert abs((stamp - datetime.now(UTC)).total_seconds()) < 60
    else:
        assert stamp == pool.clock.now()
    assert datetime.fromisoformat(reply["server_time"]) == pool.clock.now()  # snapshots' clock: the replica's
