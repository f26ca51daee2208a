"""The renter: turns the rows the executor wants into machines, and gives back what is not used.

It runs on the leader, beside the control loop (a marketplace call must not hold up the
monitor). Every marketplace call is preceded by the row that says it may have happened, so
a leader killed mid-call leaves something the next one resolves: a ``requested`` row is looked
up by its label before anything else is rented; a machine whose label names no live row is
released (the sweep). Nothing here decides placement: a joined machine is a node like any
other, and the executor places the failover that wanted it there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from uuid import UUID

import structlog

from takeover.control.bundle import python_tag
from takeover.control.onstart import ONSTART
from takeover.control.values import hash_token, new_token
from takeover.domain.errors import Conflict, NotFound, OfferGone, ProviderError, ProviderUnavailable
from takeover.domain.images import run_reference
from takeover.domain.models import InstanceSpec, NodeStatus
from takeover.domain.rentals import (
    BILLED,
    IN_FLIGHT,
    Refusal,
    Rental,
    RentalState,
    Timeouts,
    idle_since,
    idle_too_long,
    label,
    not_coming,
    overdue,
    rental_of,
)
from takeover.metrics import Metrics
from takeover.ports import Clock, LeaseToken, Marketplace, RentRequest
from takeover.store import Store

log = structlog.get_logger("takeover.renter")

AGENT_PORTS = 20000  # the first port a rented agent gives its instances (each asked for, mapped)
WITNESS_PORT = 7947  # UDP, mapped too: peers ask it which stamp it holds


@dataclass(frozen=True, slots=True)
class RentSettings:
    budget: float  # dollars per hour, every rented machine together
    timeouts: Timeouts
    public_url: str  # where a rented machine's agent reaches the control plane
    image: str
    disk_gb: int = 32
    env: dict[str, str] = field(default_factory=dict)  # for every rented agent (snapshot store, ...)
    label_prefix: str = "takeover"
    max_instances: int = 1  # each takes two mapped ports (Vast maps at most 64 per machine)
    sweep_every: float = 30.0  # seconds between listings of the account's machines


class Renter:
    def __init__(
        self, store: Store, market: Marketplace, settings: RentSettings, metrics: Metrics, clock: Clock
    ) -> None:
        self.store = store
        self.market = market
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self._last_sweep = float("-inf")

    def run_cycle(self, fence: LeaseToken | None) -> list[str]:
        """One pass over every live rental, then (now and then) the sweep; one line per change."""
        steps: list[str] = []
        live = self.store.rentals.find([*IN_FLIGHT, RentalState.JOINED])
        in_use = self.store.rentals.in_use() if any(r.state is RentalState.JOINED for r in live) else set()
        for rental in sorted(live, key=lambda r: r.created_at):
            try:
                step = self._step(rental, in_use, fence)
            except ProviderError as error:  # unreachable or refusing: the row says where it stands
                step = f"rental {rental.id}: {error}"
                log.warning("marketplace call failed", rental=str(rental.id), error=str(error))
            if step:
                steps.append(step)
        if time.monotonic() - self._last_sweep >= self.settings.sweep_every:
            self._last_sweep = time.monotonic()
            try:
                steps.extend(self.sweep())
            except ProviderError as error:  # the next sweep lists them again
                log.warning("could not list the marketplace's machines", error=str(error))
        return steps

    def _step(self, rental: Rental, in_use: set[UUID], fence: LeaseToken | None) -> str | None:
        now = self.clock.now()
        if rental.state is RentalState.RENTED:
            return self._awaiting_join(rental, now, fence)
        if rental.machine_id is not None and rental.ssh_host is None:
            self._locate(rental)
        if rental.state is RentalState.WANTED:
            reason = overdue(rental, now, self.settings.timeouts)  # the marketplace kept failing
            return (
                self._end(rental, RentalState.FAILED, reason, fence) if reason else self._rent(rental, fence)
            )
        if rental.state is RentalState.REQUESTED or (
            rental.state is RentalState.JOINED and rental.machine_id is None  # joined before the answer
        ):
            return self._resolve(rental, now, fence)
        return self._upkeep(rental, rental.node_id in in_use, now, fence)

    def _awaiting_join(self, rental: Rental, now: datetime, fence: LeaseToken | None) -> str | None:
        """Rented, its agent not joined yet: given back as soon as the marketplace shows the
        machine stopped or gone (not after the whole join timeout), or when the timeout passes."""
        assert rental.machine_id is not None
        shown = self.market.status(rental.machine_id)
        if shown is not None and shown.ssh_host and rental.ssh_host is None:
            self.store.rentals.reach(rental, shown.ssh_host, shown.ssh_port)
        rented_for = now - (rental.rented_at or now)
        lost = not_coming(shown.status if shown is not None else None, rented_for)
        if rental.error:  # its onstart could not start the agent, and said why
            self.metrics.rent_failures.labels("no_agent").inc()
            return self._give_back(
                rental, RentalState.FAILED, f"its machine cannot run the agent: {rental.error}", fence
            )
        reason = lost or overdue(rental, now, self.settings.timeouts)
        if reason is None:
            return None
        self.metrics.rent_failures.labels("lost" if lost else "no_join").inc()
        return self._give_back(rental, RentalState.FAILED, reason, fence)

    def _rent(self, rental: Rental, fence: LeaseToken | None) -> str | None:
        policy = rental.policy
        offers = self.market.offers(rental.region, policy.max_price, policy.gpu_names, policy.spot)
        token = new_token()
        now = self.clock.now()
        chosen = self.store.rentals.request(
            rental, offers, self.settings.budget, hash_token(token), now, fence
        )
        if chosen is None:
            return None
        if isinstance(chosen, Refusal):
            self.metrics.rent_failures.labels("budget" if chosen.budget else "no_offer").inc()
            log.warning("nothing to rent", rental=str(rental.id), reason=chosen.reason)
            return f"rental {rental.id} failed: {chosen.reason}"
        offer = next(o for o in offers if o.offer_id == chosen.offer_id)
        request = self._request(chosen, token)
        started = time.monotonic()
        try:
            machine = self.market.rent(offer, request)
        except OfferGone as error:
            self.metrics.rent_failures.labels("gone").inc()
            return self._end(chosen, RentalState.FAILED, str(error), fence)
        except ProviderUnavailable as error:  # it may have rented: the label will tell
            self.metrics.rent_failures.labels("unreachable").inc()
            log.warning("rent outcome unknown", rental=str(chosen.id), error=str(error))
            return f"rental {chosen.id}: {error}"
        except ProviderError as error:
            self.metrics.rent_failures.labels("refused").inc()
            return self._end(chosen, RentalState.FAILED, str(error), fence)
        self.metrics.rent_seconds.observe(time.monotonic() - started)
        self.store.rentals.rented(chosen, machine, self.clock.now(), fence)
        self._locate(replace(chosen, machine_id=machine.machine_id))
        return f"rental {chosen.id}: machine {machine.machine_id} rented at ${offer.price_per_hour}/h"

    def _request(self, rental: Rental, token: str) -> RentRequest:
        """The machine boots the instance's own image (pinned to the digest its first runner
        ran) and runs its command as a process beside the agent: a rented machine is itself an
        unprivileged container, with no container runtime inside. An instance without an image
        gets TAKEOVER_RENT_IMAGE."""
        spec = self._spec(rental)
        image = run_reference(spec.image, spec.image_digest) if spec and spec.image else self.settings.image
        count = self.settings.max_instances
        ports = 2 * count  # one for what runs, one for what is handed over (stopping) meanwhile
        env = {
            **self.settings.env,
            "TAKEOVER_URL": self.settings.public_url,
            "TAKEOVER_JOIN_TOKEN": token,
            "TAKEOVER_PYTHON": python_tag(),  # named in the onstart's error when the image has none
            "NODE_NAME": f"rent-{rental.id.hex[:12]}",
            "NODE_REGION": rental.region,
            "NODE_MAX_INSTANCES": str(count),
            "NODE_CONTAINER_RUNTIME": "none",
            "NODE_INSTANCE_HOST": "0.0.0.0",  # behind the marketplace's port mapping
            "NODE_PORT_RANGE": f"{AGENT_PORTS}-{AGENT_PORTS + ports - 1}",
            "NODE_WITNESS_PORT": str(WITNESS_PORT),
        }
        if spec is not None and spec.image is not None:
            env["NODE_IMAGE"] = spec.image
        return RentRequest(
            image=image,
            env=env,
            onstart=ONSTART,
            disk_gb=self.settings.disk_gb,
            label=label(self.settings.label_prefix, rental.id),
            ports=(*(str(AGENT_PORTS + i) for i in range(ports)), f"{WITNESS_PORT}/udp"),
        )

    def _spec(self, rental: Rental) -> InstanceSpec | None:
        try:
            return self.store.instances.get(rental.instance_id).spec if rental.instance_id else None
        except NotFound:
            return None

    def _locate(self, rental: Rental) -> None:
        assert rental.machine_id is not None
        shown = self.market.status(rental.machine_id)
        if shown is not None and shown.ssh_host:
            self.store.rentals.reach(rental, shown.ssh_host, shown.ssh_port)

    def _resolve(self, rental: Rental, now: datetime, fence: LeaseToken | None) -> str | None:
        """A rent whose answer was lost (a leader killed mid-call, a dropped connection): the
        machine, if the marketplace made it, carries the rental's label."""
        wanted = label(self.settings.label_prefix, rental.id)
        found = next((m for m in self.market.machines(wanted) if m.label == wanted), None)
        if found is not None:
            self.store.rentals.rented(rental, found, now, fence)
            return f"rental {rental.id}: machine {found.machine_id} found by its label"
        if rental.state is RentalState.JOINED:  # its agent runs, so the machine exists: look again
            return None
        reason = overdue(rental, now, self.settings.timeouts)
        if reason is None:
            return None  # the call may still land; the sweep releases it if it lands too late
        return self._end(rental, RentalState.FAILED, reason, fence)

    def _upkeep(self, rental: Rental, used: bool, now: datetime, fence: LeaseToken | None) -> str | None:
        """A joined machine: given back when its node is gone or offline, or idle too long."""
        try:
            node = self.store.nodes.get(rental.node_id) if rental.node_id else None
        except NotFound:
            node = None
        if node is None or node.status is NodeStatus.OFFLINE:
            return self._give_back(rental, RentalState.RELEASED, "its node is gone or offline", fence)
        since = idle_since(rental, used, now)
        if since != rental.idle_since:
            self.store.rentals.set_idle(rental, since)
            rental = self.store.rentals.get(rental.id) or rental
        if idle_too_long(rental, now, self.settings.timeouts):
            idle = self.settings.timeouts.idle.total_seconds()
            return self._give_back(rental, RentalState.RELEASED, f"idle for {idle:.0f} s", fence)
        return None

    def release(self, rental: Rental, reason: str, fence: LeaseToken | None = None) -> str | None:
        """An operator's release, or the upkeep's: the machine first, then the row."""
        return self._give_back(rental, RentalState.RELEASED, reason, fence)

    def _give_back(
        self, rental: Rental, state: RentalState, reason: str, fence: LeaseToken | None
    ) -> str | None:
        if rental.machine_id is not None:
            self.market.release(rental.machine_id)  # first: a row ended with its machine alive would leak
        if rental.node_id is not None:
            try:
                self.store.nodes.delete(rental.node_id, self.clock.now())
            except NotFound:
                pass
            except Conflict as error:  # one that still holds something stays, to go offline on record
                log.info("rented node kept", node=str(rental.node_id), error=str(error))
        return self._end(rental, state, reason, fence)

    def _end(self, rental: Rental, state: RentalState, reason: str, fence: LeaseToken | None) -> str | None:
        if not self.store.rentals.end(rental, state, reason, self.clock.now(), fence):
            return None
        log.info("rental ended", rental=str(rental.id), state=state.value, reason=reason)
        return f"rental {rental.id} {state.value}: {reason}"

    def sweep(self) -> list[str]:
        """Release every machine of ours whose row is ended or missing (a rent that landed after
        its row gave up on it, a row lost with a restored database). It writes no row: only the
        leader runs it, and a deposed one releases nothing a live row holds."""
        steps = []
        for machine in self.market.machines(self.settings.label_prefix + "-"):
            rental_id = rental_of(self.settings.label_prefix, machine.label)
            if rental_id is None:
                continue
            rental = self.store.rentals.get(rental_id)
            if rental is not None and rental.state in (*IN_FLIGHT, *BILLED):
                continue
            self.market.release(machine.machine_id)
            self.metrics.rent_failures.labels("orphan").inc()
            log.warning("released a machine no rental holds", machine=machine.machine_id, label=machine.label)
            steps.append(f"machine {machine.machine_id} ({machine.label}) released: no live rental holds it")
        return steps
