"""The renting rules, without a database or a marketplace."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from hypothesis import given
from hypothesis import strategies as st

from takeover.domain.models import RentPolicy
from takeover.domain.rentals import (
    Refusal,
    Rental,
    RentalState,
    Timeouts,
    choose_offer,
    idle_since,
    idle_too_long,
    label,
    not_coming,
    overdue,
    placed_on,
    rental_of,
    renting_over,
    spend,
    usable,
)
from takeover.ports import Offer

NOW = datetime(2026, 12, 3, tzinfo=UTC)
TIMEOUTS = Timeouts(rent=timedelta(seconds=30), join=timedelta(seconds=60), idle=timedelta(seconds=120))


def _offer(
    offer_id: str, price: float | None, gpu: str | None = "RTX 4090", reliability: float = 0.9
) -> Offer:
    return Offer(offer_id, offer_id, "r1", gpu, 1, price, reliability, 1, "vast")


def _rental(state: RentalState, price: float | None = 0.5, **extra: object) -> Rental:
    return Rental(uuid4(), "vast", "r1", state, NOW, price_per_hour=price, requested_at=NOW, **extra)  # type: ignore[arg-type]


def test_the_cheapest_accepted_offer_is_chosen_then_the_most_reliable() -> None:
    offers = [_offer("a", 0.5, reliability=0.8), _offer("b", 0.5, reliability=0.99), _offer("c", 0.2, "A100")]
    chosen = choose_offer(offers, RentPolicy(1.0, ("4090",)), [], 0.0, 10.0)
    assert isinstance(chosen, Offer)
    assert chosen.offer_id == "b"


def test_an_offer_above_the_price_an_unpriced_one_or_one_tried_is_never_chosen() -> None:
    offers = [_offer("a", 1.5), _offer("b", None), _offer("c", 0.4)]
    assert choose_offer(offers, RentPolicy(1.0), ["c"], 0.0, 10.0) == Refusal(
        "no offer at or under $1.0/h for any GPU (1 tried)"
    )


def test_the_budget_says_no_with_its_figures() -> None:
    refused = choose_offer([_offer("a", 0.4)], RentPolicy(1.0), [], 0.8, 1.0)
    assert isinstance(refused, Refusal)
    assert refused.budget
    assert refused.reason.startswith(
        "rent budget exhausted: $0.8/h of $1/h in use, the cheapest offer is $0.4/h"
    )


@given(
    prices=st.lists(st.floats(0.01, 5, allow_nan=False), min_size=1, max_size=20),
    spent=st.floats(0, 10, allow_nan=False),
    budget=st.floats(0, 10, allow_nan=False),
    max_price=st.floats(0.01, 5, allow_nan=False),
)
def test_a_chosen_offer_always_fits_the_price_and_the_budget(
    prices: list[float], spent: float, budget: float, max_price: float
) -> None:
    offers = [_offer(str(i), p) for i, p in enumerate(prices)]
    chosen = choose_offer(offers, RentPolicy(max_price), [], spent, budget)
    if isinstance(chosen, Offer):
        assert chosen.price_per_hour is not None
        assert chosen.price_per_hour <= max_price
        assert spent + chosen.price_per_hour <= budget + 1e-9
        assert chosen.price_per_hour == min(
            p for p in prices if p <= max_price and spent + p <= budget + 1e-9
        )


def test_spend_counts_what_may_exist_and_is_not_given_back() -> None:
    rentals = [
        _rental(RentalState.WANTED, None),
        _rental(RentalState.REQUESTED, 0.1),
        _rental(RentalState.RENTED, 0.2),
        _rental(RentalState.JOINED, 0.3),
        _rental(RentalState.RELEASED, 0.4),
        _rental(RentalState.FAILED, 0.5),
    ]
    assert spend(rentals) == 0.6


def test_a_wanted_row_the_marketplace_never_answered_for_is_overdue() -> None:
    wanted = _rental(RentalState.WANTED, None)
    assert overdue(wanted, NOW + timedelta(seconds=30), TIMEOUTS) is None
    assert overdue(wanted, NOW + timedelta(seconds=31), TIMEOUTS) == (
        "the marketplace gave no offer to choose within 30 s"
    )


def test_a_request_with_no_machine_and_a_machine_with_no_agent_are_overdue_in_time() -> None:
    requested = _rental(RentalState.REQUESTED)
    assert overdue(requested, NOW + timedelta(seconds=30), TIMEOUTS) is None
    assert (
        overdue(requested, NOW + timedelta(seconds=31), TIMEOUTS)
        == "the rent call left no machine within 30 s"
    )
    rented = replace(_rental(RentalState.RENTED), rented_at=NOW)
    assert overdue(rented, NOW + timedelta(seconds=60), TIMEOUTS) is None
    assert overdue(rented, NOW + timedelta(seconds=61), TIMEOUTS) == "its agent did not join within 60 s"
    assert overdue(_rental(RentalState.JOINED), NOW + timedelta(days=1), TIMEOUTS) is None


def test_idleness_starts_when_nothing_runs_and_ends_when_something_does() -> None:
    joined = _rental(RentalState.JOINED)
    assert idle_since(joined, in_use=True, now=NOW) is None
    since = idle_since(joined, in_use=False, now=NOW)
    assert since == NOW
    idle = replace(joined, idle_since=since)
    assert idle_since(idle, in_use=False, now=NOW + timedelta(seconds=50)) == NOW  # it keeps its start
    assert not idle_too_long(idle, NOW + timedelta(seconds=119), TIMEOUTS)
    assert idle_too_long(idle, NOW + timedelta(seconds=120), TIMEOUTS)


def test_a_label_names_its_rental_and_nothing_else() -> None:
    rental_id = uuid4()
    assert rental_of("takeover", label("takeover", rental_id)) == rental_id
    assert rental_of("takeover", "takeover-not-a-uuid") is None
    assert rental_of("takeover", f"other-{rental_id}") is None
    assert rental_of("takeover", None) is None


def test_cost_is_the_price_for_the_time_held() -> None:
    held = _rental(RentalState.RELEASED, 0.6, ended_at=NOW + timedelta(minutes=30))
    assert held.cost(NOW + timedelta(days=1)) == 0.3
    assert _rental(RentalState.WANTED, None).cost(NOW) == 0.0


def test_renting_is_over_after_no_offer_or_the_last_offer_tried() -> None:
    gone = replace(_rental(RentalState.FAILED), offer_id="1", error="offer 1 is no longer available")
    none = replace(_rental(RentalState.FAILED), error="no offer at or under $1/h for any GPU (0 tried)")
    assert renting_over([], 3) is None
    assert renting_over([gone], 3) is None  # the next offer, then
    assert renting_over([gone, gone, gone], 3) == (
        "3 machine(s) rented, the limit (TAKEOVER_RENT_MAX_OFFERS): offer 1 is no longer available"
    )
    assert renting_over([gone, none], 3) == "no offer at or under $1/h for any GPU (0 tried)"
    booted = replace(gone, machine_id="7001", error="its machine cannot run the agent: no python3")
    assert renting_over([booted, none], 3) == (  # why the machine before failed, not only "no offer"
        "no offer at or under $1/h for any GPU (0 tried); the machine rented before failed: "
        "its machine cannot run the agent: no python3"
    )
    joined = _rental(RentalState.JOINED)
    assert renting_over([joined], 2) is None
    assert renting_over([joined, gone], 2) is not None  # a machine that joined counts too


def test_a_joined_machine_is_usable_until_its_failover_tried_it() -> None:
    node = uuid4()
    joined = replace(_rental(RentalState.JOINED), node_id=node)
    assert usable(joined, frozenset())
    assert not usable(joined, frozenset({node}))
    assert not usable(replace(joined, state=RentalState.RELEASED), frozenset())


def test_placed_on_says_how_long_the_rent_and_the_join_took() -> None:
    rental = replace(
        _rental(RentalState.JOINED),
        rented_at=NOW + timedelta(seconds=1),
        joined_at=NOW + timedelta(seconds=3.5),
    )
    detail = placed_on(rental)
    assert (detail["rent_ms"], detail["join_ms"]) == (1000.0, 2500.0)
    early = placed_on(replace(rental, rented_at=None))  # its agent joined before the rent's answer
    assert (early["rent_ms"], early["join_ms"]) == (None, 3500.0)


def test_a_machine_shown_stopped_or_long_unlisted_is_not_coming() -> None:
    soon, later = timedelta(seconds=5), timedelta(seconds=61)
    assert not_coming("loading", later) is None
    assert not_coming("running", later) is None
    assert not_coming("exited", soon) == "the marketplace shows the machine exited"
    assert not_coming("offline", soon) == "the marketplace shows the machine offline"
    assert not_coming(None, soon) is None  # just rented: the listing may not show it yet
    assert not_coming(None, later) == "the machine is gone from the marketplace"
