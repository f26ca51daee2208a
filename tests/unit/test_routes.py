"""Routes: the runner a client may reach, and how a proxy's slot gets there without ever
admitting traffic to anything but the old runner (until withdrawn) or the new one."""

from __future__ import annotations

from dataclasses import replace
from uuid import uuid4

from hypothesis import given
from hypothesis import strategies as st

from takeover.domain.models import InstanceState
from takeover.domain.routes import (
    Route,
    Server,
    Step,
    proxy_plan,
    route_of,
    routes_index,
    server_steps,
    split_target,
    wanted_targets,
)
from takeover.follow.nginx import render
from tests.unit.factories import instance


def test_only_a_running_runner_with_an_endpoint_is_a_target() -> None:
    running = instance(uuid4(), state=InstanceState.RUNNING, endpoint="10.0.0.2:20001", name="web", number=7)
    assert route_of(running).target == "10.0.0.2:20001"
    assert route_of(replace(running, state=InstanceState.STARTING)).target is None
    assert route_of(replace(running, endpoint=None)).target is None
    assert route_of(running, "{name}-{number}.apps.example.com").address == "web-7.apps.example.com"
    assert route_of(running).address is None


def test_the_index_changes_with_any_route_and_not_with_their_order() -> None:
    a = route_of(instance(uuid4(), state=InstanceState.RUNNING, endpoint="h:1", name="a"))
    b = route_of(instance(uuid4(), name="b"))
    assert routes_index([a, b]) == routes_index([b, a])
    assert routes_index([a, b]) != routes_index([replace(a, epoch=a.epoch + 1), b])
    assert routes_index([a, b]) != routes_index([a])


def test_targets_split_on_the_last_colon() -> None:
    assert split_target("10.0.0.2:20001") == ("10.0.0.2", 20001)
    assert split_target("[::1]:8080") == ("::1", 8080)


targets = st.none() | st.tuples(st.sampled_from(["10.0.0.1", "10.0.0.2"]), st.sampled_from([1, 20001]))
servers = st.builds(
    Server, st.sampled_from([None, "10.0.0.1", "10.0.0.2"]), st.sampled_from([None, 1, 20001]), st.booleans()
)


@given(servers, targets)
def test_a_slot_reaches_its_target_and_takes_traffic_only_at_its_old_or_new_runner(
    actual: Server, target: tuple[str, int] | None
) -> None:
    host, port, ready = actual.host, actual.port, actual.ready
    for step, to in server_steps(actual, target):
        if step is Step.WITHDRAW:
            ready = False
        elif step is Step.POINT:
            assert not ready, "re-pointed while taking traffic"
            assert to is not None
            host, port = to
        else:
            ready = True
        if ready:
            assert (host, port) in ((actual.host, actual.port), target)
            assert (host, port) == target or actual.ready, "admitted traffic to a stale address"
    assert ready == (target is not None)
    if target is not None:
        assert (host, port) == target


def test_a_slot_already_right_is_left_alone() -> None:
    assert server_steps(Server("10.0.0.1", 1, True), ("10.0.0.1", 1)) == []
    assert server_steps(Server("10.0.0.1", 1, False), None) == []


def test_two_routes_on_one_slot_withdraw_it_and_a_slot_no_route_names_is_withdrawn() -> None:
    def serving(name: str, owner: str, port: int) -> Route:
        return route_of(
            instance(
                uuid4(), name=name, owner=owner, state=InstanceState.RUNNING, endpoint=f"10.0.0.1:{port}"
            )
        )

    routes = [serving("web", "alice", 1), serving("web", "bob", 2), serving("db", "alice", 3)]
    wanted, clashes = wanted_targets(routes, "{name}")
    assert clashes == {"web"}
    assert wanted == {"web": None, "db": ("10.0.0.1", 3)}
    wanted, clashes = wanted_targets(routes, "{owner}_{name}")
    assert clashes == set()
    assert wanted["bob_web"] == ("10.0.0.1", 2)
    actual = {"gone": Server("10.0.0.9", 9, True), "db": Server("10.0.0.1", 3, True)}
    assert proxy_plan(actual, {"db": ("10.0.0.1", 3), "unknown": ("10.0.0.1", 4)}) == [
        ("gone", Step.WITHDRAW, None)
    ]


def test_nginx_gets_one_upstream_per_route_and_nobody_for_one_without_a_runner() -> None:
    up = route_of(instance(uuid4(), name="web", state=InstanceState.RUNNING, endpoint="::1:20001"))
    down = route_of(instance(uuid4(), name="db"))
    text = render([up, down])
    assert "upstream web {\n    server [::1]:20001;\n}" in text
    assert "upstream db {\n    server 127.0.0.1:1 down;\n}" in text
