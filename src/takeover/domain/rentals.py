"""Renting capacity from a marketplace: which offer, within what budget, and when to let go.

A rental is a row before it is a machine. The executor writes one in ``wanted`` when a
failover finds no node; the renter chooses an offer and writes ``requested`` (the intent,
with the price that counts against the budget) *before* the rent call, then ``rented`` with
the marketplace's machine id, and the machine's agent turns it ``joined`` when it registers.
A control plane killed at any point leaves a row that says what may exist at the marketplace:
the machine carries the rental's label, so the next leader finds it instead of renting again.

    wanted ──> requested ──> rented ──> joined ──> released
       └───────────┴────────────┴──────────┴──────> failed (released if it existed)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from takeover.domain.failover import Attempt
from takeover.domain.gpus import matches
from takeover.domain.models import InstanceSpec, RentPolicy
from takeover.ports import Offer


class RentalState(StrEnum):
    WANTED = "wanted"  # a failover needs a machine; no offer chosen yet
    REQUESTED = "requested"  # offer chosen, rent call made or about to be: a machine may exist
    RENTED = "rented"  # the marketplace gave a machine; its agent has not joined yet
    JOINED = "joined"  # the machine's agent registered: it is a node of the pool
    RELEASED = "released"  # given back to the marketplace
    FAILED = "failed"  # never became a usable machine; ``error`` says why


IN_FLIGHT = frozenset({RentalState.WANTED, RentalState.REQUESTED, RentalState.RENTED})
BILLED = frozenset({RentalState.REQUESTED, RentalState.RENTED, RentalState.JOINED})
NO_POLICY = RentPolicy(0.0)  # accepts nothing


@dataclass(frozen=True, slots=True)
class Rental:
    id: UUID
    provider: str
    region: str
    state: RentalState
    created_at: datetime
    failover_id: UUID | None = None
    instance_id: UUID | None = None
    policy: RentPolicy = NO_POLICY  # what the instance accepts: price, GPU models, spot
    offer_id: str | None = None
    gpu_name: str | None = None
    num_gpus: int = 0
    price_per_hour: float | None = None
    machine_id: str | None = None
    node_id: UUID | None = None
    ssh_host: str | None = None
    ssh_port: int | None = None
    requested_at: datetime | None = None
    rented_at: datetime | None = None
    joined_at: datetime | None = None
    idle_since: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None

    def cost(self, now: datetime) -> float:
        """What it has cost so far: its price for the time it was held."""
        if self.price_per_hour is None or self.requested_at is None:
            return 0.0
        until = self.ended_at or now
        return round(self.price_per_hour * max(0.0, (until - self.requested_at).total_seconds()) / 3600, 6)


def label(prefix: str, rental_id: UUID) -> str:
    """What the machine is labelled with at the marketplace: how a new leader finds it."""
    return f"{prefix}-{rental_id}"


def rental_of(prefix: str, machine_label: str | None) -> UUID | None:
    """The rental a machine's label names, None for a machine that is not ours."""
    if not machine_label or not machine_label.startswith(prefix + "-"):
        return None
    try:
        return UUID(machine_label[len(prefix) + 1 :])
    except ValueError:
        return None


def spend(rentals: Iterable[Rental]) -> float:
    """The pool's hourly spend: every machine that may exist and is not given back."""
    return round(sum(r.price_per_hour or 0.0 for r in rentals if r.state in BILLED), 6)


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    budget: bool = False  # the budget, not the market, said no: the failover ends and an alert fires


def choose_offer(
    offers: Sequence[Offer], policy: RentPolicy, tried: Iterable[str], spent: float, budget: float
) -> Offer | Refusal:
    """The cheapest offer the policy accepts, not tried already, that fits in the budget."""
    seen = set(tried)
    fitting = [
        o
        for o in offers
        if o.offer_id not in seen
        and o.price_per_hour is not None
        and o.price_per_hour <= policy.max_price
        and (not policy.gpu_names or any(o.gpu_name and matches(g, o.gpu_name) for g in policy.gpu_names))
    ]
    if not fitting:
        gpus = ", ".join(policy.gpu_names) or "any GPU"
        return Refusal(f"no offer at or under ${policy.max_price}/h for {gpus} ({len(seen)} tried)")
    room = budget - spent
    affordable = [o for o in fitting if (o.price_per_hour or 0.0) <= room + 1e-9]
    if not affordable:
        cheapest = min(o.price_per_hour or 0.0 for o in fitting)
        return Refusal(
            f"rent budget exhausted: ${spent:.4g}/h of ${budget:.4g}/h in use, the cheapest offer is "
            f"${cheapest:.4g}/h (TAKEOVER_RENT_MAX_HOURLY)",
            budget=True,
        )
    return min(affordable, key=lambda o: (o.price_per_hour or 0.0, -o.reliability, o.offer_id))


@dataclass(frozen=True, slots=True)
class Timeouts:
    rent: timedelta  # a wanted row older than this found no offers; a requested one, no machine
    join: timedelta  # a rented machine whose agent has not joined by then is given back
    idle: timedelta  # a joined machine that runs nothing for this long is given back


def overdue(rental: Rental, now: datetime, timeouts: Timeouts) -> str | None:
    """Why a machine still on its way should be given up, or None while it may still come."""
    requested, rented = rental.requested_at, rental.rented_at
    if rental.state is RentalState.WANTED and now - rental.created_at > timeouts.rent:
        return f"the marketplace gave no offer to choose within {timeouts.rent.total_seconds():.0f} s"
    if rental.state is RentalState.REQUESTED and requested and now - requested > timeouts.rent:
        return f"the rent call left no machine within {timeouts.rent.total_seconds():.0f} s"
    if rental.state is RentalState.RENTED and rented and now - rented > timeouts.join:
        return f"its agent did not join within {timeouts.join.total_seconds():.0f} s"
    return None


NOT_COMING = frozenset({"exited", "offline"})  # the marketplace's words for a machine that stopped
LISTED_WITHIN = timedelta(seconds=60)  # a new machine may take this long to show in the listing


def not_coming(status: str | None, rented_for: timedelta) -> str | None:
    """Why a rented machine whose agent has not joined yet never will, from what the marketplace
    shows (None: not in its listing), or None while it may still boot and join."""
    if status is None:
        return "the machine is gone from the marketplace" if rented_for > LISTED_WITHIN else None
    if status in NOT_COMING:
        return f"the marketplace shows the machine {status}"
    return None


RENT_NEEDS_COMMAND = (
    "a rented machine boots the instance's image and runs its command as a process, and this "
    "instance names no command (its image's own is not known here): give it a command to rent"
)


def unrentable(spec: InstanceSpec) -> str | None:
    """Why a rented machine could not run an instance of ``spec``, or None."""
    return RENT_NEEDS_COMMAND if spec.image is not None and not spec.command else None


def idle_since(rental: Rental, in_use: bool, now: datetime) -> datetime | None:
    """When a joined machine became idle (None while something runs or waits there)."""
    if in_use:
        return None
    return rental.idle_since or now


def idle_too_long(rental: Rental, now: datetime, timeouts: Timeouts) -> bool:
    return rental.idle_since is not None and now - rental.idle_since >= timeouts.idle


def usable(rental: Rental, exclude: frozenset[UUID]) -> bool:
    """A machine rented for a failover that joined and has not been tried by it yet."""
    return rental.state is RentalState.JOINED and rental.node_id is not None and rental.node_id not in exclude


def renting_over(rentals: Sequence[Rental], max_offers: int) -> str | None:
    """Why a failover rents no more: it found no offer at all (or no budget), or it has had
    ``max_offers`` machines already (failed, or joined and not able to take it). None while it
    may rent again."""
    done = [r for r in rentals if r.state not in IN_FLIGHT]
    failed = [r for r in done if r.state is RentalState.FAILED]
    if failed and failed[-1].offer_id is None:
        machines = [r for r in failed if r.machine_id is not None]
        before = f"; the machine rented before failed: {machines[-1].error}" if machines else ""
        return (failed[-1].error or "no offer") + before
    if len(done) >= max_offers:
        last = failed[-1].error if failed else "the machines rented could not take it"
        return f"{len(done)} machine(s) rented, the limit (TAKEOVER_RENT_MAX_OFFERS): {last}"
    return None


def rental_detail(rental: Rental) -> dict[str, Any]:
    """What a failover's attempt log keeps of a rented machine."""
    return {
        "rental_id": str(rental.id),
        "provider": rental.provider,
        "offer_id": rental.offer_id,
        "gpu_name": rental.gpu_name,
        "price_per_hour": rental.price_per_hour,
        "machine_id": rental.machine_id,
    }


def placed_on(rental: Rental) -> dict[str, Any]:
    """The attempt log's record of the machine an attempt was placed on, with its timings."""
    return {
        **rental_detail(rental),
        "rent_ms": elapsed_ms(rental.requested_at, rental.rented_at),
        "join_ms": elapsed_ms(rental.rented_at or rental.requested_at, rental.joined_at),
    }


def elapsed_ms(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() * 1000, 1)


def unlogged_failures(attempts: Sequence[Attempt], rentals: Iterable[Rental]) -> list[Attempt]:
    """Rentals of a failover that failed and are not among its attempts yet, as attempts."""
    logged = {a.rental.get("rental_id") for a in attempts if a.rental}
    return [
        Attempt("rent", None, elapsed_ms(r.created_at, r.ended_at), r.error, rental_detail(r))
        for r in rentals
        if r.state is RentalState.FAILED and str(r.id) not in logged
    ]
