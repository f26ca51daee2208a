"""Document 002's failover orchestrator: strategies, readiness, execute, test, regional volumes.

It drives the same durable failovers as the rest of the control plane: execute opens one with
the chosen strategy chain and waits for the leader's executor to finish it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from takeover.control.scope import owner_scope
from takeover.domain.errors import Conflict, NotFound
from takeover.domain.failover import Failover, FailoverReason
from takeover.domain.models import Instance, Node, Principal, Volume
from takeover.domain.rentals import RentalState, rental_detail
from takeover.domain.routes import route_of
from takeover.domain.strategies import (
    STRATEGIES,
    AttemptPlan,
    Readiness,
    Situation,
    StrategyInfo,
    StrategyName,
    chain,
    parse_strategy,
)
from takeover.ports import Clock, Marketplace, Offer, Provider
from takeover.providers.local import LocalProvider
from takeover.store import Store


class Orchestrator:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        sync_interval: timedelta,
        max_attempts: int,
        opened: Callable[[Failover], None],
        execute_timeout: float = 300.0,
        provider: Provider | None = None,
        market: Marketplace | None = None,
        route_address: str | None = None,
    ) -> None:
        """``opened`` is told of every failover this opens (counted, logged, the executor woken);
        ``provider`` offers the pool's nodes; ``market``, when renting is configured, rents more;
        ``route_address``, the stable address template its answers give beside the new host."""
        self.route_address = route_address
        self.store = store
        self.clock = clock
        self.sync_interval = sync_interval
        self.max_attempts = max_attempts
        self.opened = opened
        self.execute_timeout = execute_timeout  # how long POST /failover/execute waits for the outcome
        self.provider: Provider = provider or LocalProvider(store)
        self.market = market

    # strategies ---------------------------------------------------------------------------
    def strategies(self) -> list[StrategyInfo]:
        return [s.info for s in STRATEGIES.values()]

    def effective(self, instance: Instance) -> StrategyName:
        return parse_strategy(instance.failover_strategy or self.store.failovers.default_strategy)

    def situation(self, who: Principal, instance_id: UUID) -> Situation:
        self.store.instances.get(instance_id, owner_scope(who))  # 404 for someone else's
        return self.store.standbys.situation(
            instance_id, self.clock.now(), self.sync_interval, (), self.max_attempts
        )

    def _checks(self, situation: Situation) -> dict[StrategyName, Readiness]:
        """Each strategy's readiness; a warm copy on a rented machine says what it costs."""
        checks = {name: STRATEGIES[name].readiness(situation) for name in _SINGLE}
        standby = situation.instance.standby_node_id
        rental = self.store.rentals.for_node(standby) if standby is not None else None
        if rental is not None and rental.state is RentalState.JOINED:
            warm = checks[StrategyName.WARM_POOL]
            cost = round(rental.cost(self.clock.now()), 4)
            details = {**warm.details, "standby_machine": {**rental_detail(rental), "cost_so_far": cost}}
            checks[StrategyName.WARM_POOL] = replace(warm, details=details)
        return checks

    def readiness(self, who: Principal, instance_id: UUID) -> dict[str, Any]:
        situation = self.situation(who, instance_id)
        effective = self.effective(situation.instance)
        checks = self._checks(situation)
        overall = (
            any(checks[name].ready for name in chain(effective)) and effective is not StrategyName.DISABLED
        )
        return {
            "machine_id": instance_id,
            "effective_strategy": effective,
            "warm_pool_ready": checks[StrategyName.WARM_POOL].ready,
            "warm_pool_status": checks[StrategyName.WARM_POOL].details,
            "cpu_standby_ready": checks[StrategyName.CPU_STANDBY].ready,
            "cpu_standby_status": checks[StrategyName.CPU_STANDBY].details,
            "regional_volume_ready": checks[StrategyName.REGIONAL_VOLUME].ready,
            "regional_volume_status": checks[StrategyName.REGIONAL_VOLUME].details,
            "overall_ready": overall,
        }

    def status(self, who: Principal, instance_id: UUID) -> dict[str, Any]:
        situation = self.situation(who, instance_id)
        effective = self.effective(situation.instance)
        used = chain(effective) if effective is not StrategyName.DISABLED else ()
        checks = self._checks(situation)
        action = next((checks[n].recommended_action for n in used if not checks[n].ready), None)
        if effective is StrategyName.DISABLED:
            action = "automatic failover is disabled for this instance; only a manual failover moves it"
        return {
            "machine_id": instance_id,
            "effective_strategy": effective,
            "warm_pool": {
                "enabled": StrategyName.WARM_POOL in used,
                **checks[StrategyName.WARM_POOL].details,
            },
            "cpu_standby": {
                "enabled": StrategyName.CPU_STANDBY in used,
                **checks[StrategyName.CPU_STANDBY].details,
            },
            "regional_volume": {
                "enabled": StrategyName.REGIONAL_VOLUME in used,
                **checks[StrategyName.REGIONAL_VOLUME].details,
            },
            "recommended_action": action,
        }

    def dry_run(self, who: Principal, instance_id: UUID, strategy: str | None) -> dict[str, Any]:
        """What execute would try, computed from the same rules, writing nothing."""
        situation = self.situation(who, instance_id)
        name = parse_strategy(strategy) if strategy else self.effective(situation.instance)
        checks = {n: STRATEGIES[n].readiness(situation) for n in chain(name)}
        plans = [STRATEGIES[n].plan(situation) for n in chain(name)]
        plan = next((p for p in plans if isinstance(p, AttemptPlan)), None)
        return {
            "dry_run": True,
            "would_succeed": plan is not None and checks[plan.strategy].ready,
            "strategy": name,
            "would_try": plan.strategy if plan is not None else None,
            "readiness": {f"{n.value}_ready": c.ready for n, c in checks.items()},
            "recommended_action": next((c.recommended_action for c in checks.values() if not c.ready), None),
            "message": "Use dry_run=false to run the failover for real",
        }

    def start(self, who: Principal, instance_id: UUID, strategy: str | None) -> Failover:
        forced = parse_strategy(strategy).value if strategy else None
        failover = self.store.failovers.open(
            instance_id, FailoverReason.MANUAL, self.clock.now(), owner=owner_scope(who), strategy=forced
        )
        self.opened(failover)
        return failover

    def response(self, failover: Failover) -> dict[str, Any]:
        """Document 002's FailoverResponse for a failover, finished or not."""
        instance = self.store.instances.get(failover.instance_id)
        node = self._node(failover.target_node_id) if failover.target_node_id else None
        rental = self.store.rentals.for_node(node.id) if node is not None else None
        host, _, port = (instance.endpoint or "").rpartition(":")
        if rental is not None and rental.ssh_host:  # a rented machine: where to reach it
            host, port = rental.ssh_host, str(rental.ssh_port or "")
        attempts = list(failover.attempts)
        succeeded = attempts[-1].strategy if failover.status.value == "completed" and attempts else None

        def spent(name: str) -> float:
            return round(sum(a.ms or 0.0 for a in attempts if a.strategy == name), 1)

        return {
            "success": failover.status.value == "completed",
            "failover_id": failover.id,
            "machine_id": failover.instance_id,
            "status": failover.status,
            "strategy_attempted": failover.strategy,
            "strategy_succeeded": succeeded,
            "new_node_id": node.id if node else None,
            "new_node_name": node.name if node else None,
            **_gpus_given(node, instance),
            **(
                {"new_gpu_id": f"{rental.provider}:{rental.machine_id}"}
                if rental and rental.machine_id
                else {}
            ),
            "rented": rental_detail(rental) if rental is not None else None,
            "new_ssh_host": host or None,
            "new_ssh_port": int(port) if port.isdigit() else None,
            "stable_address": route_of(instance, self.route_address).address,
            "warm_pool_attempt_ms": spent("warm_pool"),
            "cpu_standby_attempt_ms": spent("cpu_standby"),
            "regional_volume_attempt_ms": spent("regional_volume"),
            "total_ms": failover.timings.get("total_ms"),
            "attempts": attempts,
            "error": failover.error,
        }

    def _node(self, node_id: UUID) -> Node | None:
        try:
            return self.store.nodes.get(node_id)
        except NotFound:
            return None

    # regional volumes ---------------------------------------------------------------------
    def create_volume(self, who: Principal, name: str, region: str, size_gb: int) -> Volume:
        volume = Volume(uuid4(), who.subject, name, region, size_gb, self.clock.now())
        return self.store.volumes.create(volume)

    def volumes(self, who: Principal) -> list[Volume]:
        return self.store.volumes.find(owner_scope(who))

    def volume(self, who: Principal, volume_id: UUID) -> Volume:
        return self.store.volumes.get(volume_id, owner_scope(who))

    def delete_volume(self, who: Principal, volume_id: UUID) -> None:
        self.store.volumes.delete(volume_id, owner_scope(who), self.clock.now())

    def search(
        self, region: str, max_price: float | None, gpu_names: Sequence[str] = (), spot: bool = False
    ) -> list[Offer]:
        """The pool's nodes in ``region`` that fit, then what the marketplace would rent there,
        each cheapest first (``source`` says which is which)."""
        found = self.provider.offers(region, max_price, gpu_names, spot)
        if self.market is not None:
            found += self.market.offers(region, max_price, gpu_names, spot)
        return found

    def volume_failover(
        self, who: Principal, volume_id: UUID, gpus: list[str], max_price: float | None
    ) -> tuple[Volume, Failover]:
        """Fail the volume's instance over to the best matching node of the volume's region."""
        volume = self.volume(who, volume_id)
        if volume.attached_to is None:
            raise Conflict(f"volume {volume.name} is not attached to any instance")
        instance = self.store.instances.get(volume.attached_to)
        candidates = [
            o
            for o in self.provider.offers(volume.region, max_price, gpus)
            if o.offer_id != str(instance.node_id)
        ]
        renting = self.market is not None and instance.rent is not None
        if not candidates and not renting:
            raise Conflict(
                f"no online node in region {volume.region} matches (gpus {gpus or 'any'}, max_price "
                f"{max_price}), and the instance may not rent one (its rent policy is not set)"
            )
        failover = self.store.failovers.open(
            instance.id,
            FailoverReason.MANUAL,
            self.clock.now(),
            owner=owner_scope(who),
            requested_target_id=UUID(candidates[0].offer_id) if candidates else None,
            strategy=StrategyName.REGIONAL_VOLUME.value,
        )
        self.opened(failover)
        return volume, failover


_SINGLE = (StrategyName.WARM_POOL, StrategyName.CPU_STANDBY, StrategyName.REGIONAL_VOLUME)


def _gpus_given(node: Node | None, instance: Instance) -> dict[str, str | None]:
    """Document 002's new_gpu_name / new_gpu_id, from the GPUs the placement gave the instance
    (a node that reports none: its gpu_name label, as before GPUs were read)."""
    if node is None:
        return {"new_gpu_name": None, "new_gpu_id": None}
    if instance.node_id == node.id and instance.gpu_indices:
        names = {g.index: g.name for g in node.gpus}
        return {
            "new_gpu_name": names.get(instance.gpu_indices[0]),
            "new_gpu_id": f"{node.name}:{','.join(map(str, instance.gpu_indices))}",
        }
    label = node.labels.get("gpu_name")
    return {"new_gpu_name": str(label) if label is not None else None, "new_gpu_id": None}
