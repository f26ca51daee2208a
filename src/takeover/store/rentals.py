"""Rented machines: a row per machine, written before the marketplace is asked for it.

Every change is conditional on the state it read, so a step taken by another leader meanwhile
is not taken twice; the budget is checked in the transaction that records the intent, with
the table locked on PostgreSQL (SQLite serializes every write), so concurrent failovers
cannot together spend more than it allows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa

from takeover.domain.errors import Conflict, Unauthenticated
from takeover.domain.failover import OPEN_STATUSES
from takeover.domain.models import Gpu, Node, RentPolicy
from takeover.domain.rentals import (
    BILLED,
    IN_FLIGHT,
    NO_POLICY,
    Refusal,
    Rental,
    RentalState,
    choose_offer,
    spend,
)
from takeover.ports import LeaseToken, Machine, Offer
from takeover.store.base import check_fence, record_event, transaction
from takeover.store.nodes import insert_node
from takeover.store.rows import rent_policy_from_json, rent_policy_to_json
from takeover.store.tables import failovers, instances, nodes, rentals


class RentalRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    # reads --------------------------------------------------------------------------------
    def get(self, rental_id: UUID) -> Rental | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(rentals).where(rentals.c.id == rental_id)).one_or_none()
        return _rental(row) if row is not None else None

    def find(self, states: Iterable[RentalState] | None = None, limit: int = 1000) -> list[Rental]:
        query = sa.select(rentals).order_by(rentals.c.created_at.desc()).limit(limit)
        if states is not None:
            query = query.where(rentals.c.state.in_([s.value for s in states]))
        with self._engine.connect() as conn:
            return [_rental(r) for r in conn.execute(query)]

    def for_failover(self, failover_id: UUID) -> list[Rental]:
        query = sa.select(rentals).where(rentals.c.failover_id == failover_id).order_by(rentals.c.created_at)
        with self._engine.connect() as conn:
            return [_rental(r) for r in conn.execute(query)]

    def for_node(self, node_id: UUID) -> Rental | None:
        query = sa.select(rentals).where(rentals.c.node_id == node_id).order_by(rentals.c.created_at.desc())
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return _rental(row) if row is not None else None

    def reserved(self, except_failover: UUID) -> frozenset[UUID]:
        """Nodes of machines rented for another failover that is still open and not placed on
        it yet: placement leaves them to that failover (else it would rent again)."""
        query = (
            sa.select(rentals.c.node_id)
            .select_from(rentals.join(failovers, failovers.c.id == rentals.c.failover_id))
            .where(
                rentals.c.state == RentalState.JOINED.value,
                rentals.c.failover_id != except_failover,
                failovers.c.status.in_([s.value for s in OPEN_STATUSES]),
                sa.or_(failovers.c.target_node_id.is_(None), failovers.c.target_node_id != rentals.c.node_id),
            )
        )
        with self._engine.connect() as conn:
            return frozenset(n for n in conn.execute(query).scalars() if n is not None)

    def in_use(self) -> set[UUID]:
        """Nodes of joined machines that run, or keep a standby of, some instance."""
        joined = sa.select(rentals.c.node_id).where(rentals.c.state == RentalState.JOINED.value)
        query = sa.select(instances.c.node_id, instances.c.standby_node_id).where(
            sa.or_(instances.c.node_id.in_(joined), instances.c.standby_node_id.in_(joined))
        )
        with self._engine.connect() as conn:
            return {n for row in conn.execute(query) for n in row if n is not None}

    # writes -------------------------------------------------------------------------------
    def want(
        self,
        failover_id: UUID,
        instance_id: UUID,
        region: str,
        policy: RentPolicy,
        provider: str,
        now: datetime,
        fence: LeaseToken | None,
    ) -> Rental | None:
        """A failover needs a machine; None when one is already on its way for it."""
        rental = Rental(
            uuid4(), provider, region, RentalState.WANTED, now,
            failover_id=failover_id, instance_id=instance_id, policy=policy,
        )  # fmt: skip
        try:
            with transaction(self._engine) as conn:
                check_fence(conn, fence, now)
                _insert_wanted(conn, rental, f"failover {failover_id} needs a machine")
        except Conflict:
            return None
        return rental

    def want_standbys(
        self,
        default_strategy: str,
        provider: str,
        now: datetime,
        fence: LeaseToken | None,
        retry_after: timedelta,
    ) -> list[Rental]:
        """A machine for every warm instance that may rent and has no standby node (the pool
        had none to offer), unless one is on its way, joined, or failed within ``retry_after``."""
        with transaction(self._engine) as conn:
            check_fence(conn, fence, now)
            strategy = sa.func.coalesce(instances.c.failover_strategy, default_strategy)
            busy = sa.select(rentals.c.instance_id).where(
                rentals.c.failover_id.is_(None),
                sa.or_(
                    rentals.c.state.in_([s.value for s in (*IN_FLIGHT, RentalState.JOINED)]),
                    sa.and_(
                        rentals.c.state == RentalState.FAILED.value, rentals.c.ended_at > now - retry_after
                    ),
                ),
            )
            rows = conn.execute(
                sa.select(
                    instances.c.id, instances.c.rent_policy, instances.c.preferred_region, nodes.c.region
                )
                .select_from(instances.join(nodes, nodes.c.id == instances.c.node_id))
                .where(
                    strategy.in_(("warm_pool", "both")),
                    instances.c.rent_policy.is_not(None),
                    instances.c.standby_node_id.is_(None),
                    instances.c.id.not_in(busy),
                )
            ).all()
            wanted = []
            for row in rows:
                policy = rent_policy_from_json(row.rent_policy)
                assert policy is not None
                rental = Rental(
                    uuid4(), provider, row.preferred_region or row.region, RentalState.WANTED, now,
                    instance_id=row.id, policy=policy,
                )  # fmt: skip
                _insert_wanted(conn, rental, f"instance {row.id} needs a standby machine")
                wanted.append(rental)
            return wanted

    def request(
        self,
        rental: Rental,
        offers: list[Offer],
        budget: float,
        join_token_hash: str,
        now: datetime,
        fence: LeaseToken | None,
    ) -> Rental | Refusal | None:
        """wanted -> requested with the chosen offer, or failed with the refusal; in one transaction
        that sums the spend, so what it allows is within the budget. None: it moved on meanwhile."""
        with transaction(self._engine) as conn:
            check_fence(conn, fence, now)
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("LOCK TABLE rentals IN SHARE ROW EXCLUSIVE MODE")
            billed = [
                _rental(r)
                for r in conn.execute(
                    sa.select(rentals).where(rentals.c.state.in_([s.value for s in BILLED]))
                )
            ]
            choice = choose_offer(offers, rental.policy, _offers_tried(conn, rental), spend(billed), budget)
            if isinstance(choice, Refusal):
                moved = _move(conn, rental, RentalState.FAILED, error=choice.reason, ended_at=now)
                return choice if moved else None
            moved = _move(
                conn,
                rental,
                RentalState.REQUESTED,
                offer_id=choice.offer_id,
                gpu_name=choice.gpu_name,
                num_gpus=choice.num_gpus,
                price_per_hour=choice.price_per_hour,
                join_token_hash=join_token_hash,
                requested_at=now,
            )
            if not moved:
                return None
            record_event(
                conn,
                "rental.requested",
                rental.id,
                f"renting offer {choice.offer_id} ({choice.gpu_name or 'no GPU'}) at ${choice.price_per_hour}/h",
                now,
            )
            return _get(conn, rental.id)

    def rented(self, rental: Rental, machine: Machine, now: datetime, fence: LeaseToken | None) -> bool:
        """The marketplace's answer (or the machine found by its label): requested -> rented.
        A machine whose agent joined first keeps ``joined`` and gets its id."""
        with transaction(self._engine) as conn:
            check_fence(conn, fence, now)
            values: dict[str, Any] = {
                "machine_id": machine.machine_id,
                "ssh_host": machine.ssh_host,
                "ssh_port": machine.ssh_port,
            }
            done = conn.execute(
                rentals.update()
                .where(rentals.c.id == rental.id, rentals.c.state == RentalState.REQUESTED.value)
                .values(state=RentalState.RENTED.value, rented_at=now, **values)
            ).rowcount
            done += conn.execute(
                rentals.update()
                .where(
                    rentals.c.id == rental.id,
                    rentals.c.state == RentalState.JOINED.value,
                    rentals.c.machine_id.is_(None),
                )
                .values(**values)
            ).rowcount
            if done:
                record_event(conn, "rental.rented", rental.id, f"machine {machine.machine_id} rented", now)
            return bool(done)

    def end(
        self,
        rental: Rental,
        state: RentalState,
        reason: str,
        now: datetime,
        fence: LeaseToken | None,
    ) -> bool:
        """failed or released, from the state it was read in; the join token dies with it."""
        assert state in (RentalState.FAILED, RentalState.RELEASED)
        with transaction(self._engine) as conn:
            check_fence(conn, fence, now)
            moved = _move(conn, rental, state, error=reason, ended_at=now, join_token_hash=None)
            if moved:
                record_event(conn, f"rental.{state.value}", rental.id, reason, now)
            return moved

    def reach(self, rental: Rental, host: str, port: int | None) -> None:
        """Where the machine is reached (the marketplace knows once it has provisioned it)."""
        with transaction(self._engine) as conn:
            conn.execute(
                rentals.update().where(rentals.c.id == rental.id).values(ssh_host=host, ssh_port=port)
            )

    def set_idle(self, rental: Rental, since: datetime | None) -> None:
        with transaction(self._engine) as conn:
            conn.execute(
                rentals.update()
                .where(rentals.c.id == rental.id, rentals.c.state == RentalState.JOINED.value)
                .values(idle_since=since)
            )

    def joining(self, token_hash: str) -> Rental | None:
        """The rental whose machine may still join with this token (its agent fetching itself)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(rentals).where(
                    rentals.c.join_token_hash == token_hash,
                    rentals.c.state.in_([RentalState.REQUESTED.value, RentalState.RENTED.value]),
                )
            ).one_or_none()
            return None if row is None else _rental(row)

    def boot_failed(self, rental: Rental, reason: str) -> None:
        """What the machine's onstart said when it could not start the agent: the renter gives
        the machine back with it at its next step instead of waiting out the join timeout."""
        with transaction(self._engine) as conn:
            conn.execute(
                rentals.update()
                .where(rentals.c.id == rental.id, rentals.c.state == rental.state.value)
                .values(error=reason)
            )

    def join(
        self, token_hash: str, node: Node, token_id: UUID, node_token_hash: str, now: datetime
    ) -> tuple[Rental, Node]:
        """A rented machine's agent registers with its one-time token: ``node`` becomes a node of
        the rental's region, labelled with what was rented. The token cannot be used again."""
        with transaction(self._engine) as conn:
            row = conn.execute(
                sa.select(rentals).where(
                    rentals.c.join_token_hash == token_hash,
                    rentals.c.state.in_([RentalState.REQUESTED.value, RentalState.RENTED.value]),
                )
            ).one_or_none()
            if row is None:
                raise Unauthenticated("unknown or used join token")
            rental = _rental(row)
            labels = {
                **node.labels,
                "rental_id": str(rental.id),
                "provider": rental.provider,
                "price_per_hour": rental.price_per_hour,
                "gpu_name": rental.gpu_name,
                "num_gpus": rental.num_gpus,
            }
            # The GPUs it was rented with, until its agent's first heartbeat reports what NVML reads:
            # a GPU instance waiting for this machine is placed at the join, not a beat later.
            gpus = (
                tuple(Gpu(i, rental.gpu_name, 0) for i in range(rental.num_gpus)) if rental.gpu_name else ()
            )
            joined = replace(
                node,
                region=rental.region,
                labels={k: v for k, v in labels.items() if v is not None},
                gpus=gpus,
            )
            insert_node(conn, joined, token_id, node_token_hash)
            if not _move(
                conn, rental, RentalState.JOINED, node_id=node.id, joined_at=now, join_token_hash=None
            ):
                raise Unauthenticated("unknown or used join token")
            return _get(conn, rental.id), joined


def _insert_wanted(conn: sa.Connection, rental: Rental, why: str) -> None:
    conn.execute(
        rentals.insert().values(
            id=rental.id,
            provider=rental.provider,
            region=rental.region,
            state=rental.state.value,
            failover_id=rental.failover_id,
            instance_id=rental.instance_id,
            policy=rent_policy_to_json(rental.policy),
            created_at=rental.created_at,
        )
    )
    record_event(conn, "rental.wanted", rental.id, why, rental.created_at)


def _move(conn: sa.Connection, rental: Rental, state: RentalState, **values: Any) -> bool:
    done = conn.execute(
        rentals.update()
        .where(rentals.c.id == rental.id, rentals.c.state == rental.state.value)
        .values(state=state.value, **values)
    )
    return done.rowcount == 1


def _get(conn: sa.Connection, rental_id: UUID) -> Rental:
    return _rental(conn.execute(sa.select(rentals).where(rentals.c.id == rental_id)).one())


def _rental(row: sa.Row[Any]) -> Rental:
    return Rental(
        id=row.id,
        provider=row.provider,
        region=row.region,
        state=RentalState(row.state),
        created_at=row.created_at,
        failover_id=row.failover_id,
        instance_id=row.instance_id,
        policy=rent_policy_from_json(row.policy) or NO_POLICY,
        offer_id=row.offer_id,
        gpu_name=row.gpu_name,
        num_gpus=row.num_gpus,
        price_per_hour=row.price_per_hour,
        machine_id=row.machine_id,
        node_id=row.node_id,
        ssh_host=row.ssh_host,
        ssh_port=row.ssh_port,
        requested_at=row.requested_at,
        rented_at=row.rented_at,
        joined_at=row.joined_at,
        idle_since=row.idle_since,
        ended_at=row.ended_at,
        error=row.error,
    )


def _offers_tried(conn: sa.Connection, rental: Rental) -> list[str]:
    """Offers the earlier rentals for the same failover (or standby of the instance) asked for."""
    same = (
        rentals.c.failover_id == rental.failover_id
        if rental.failover_id is not None
        else sa.and_(rentals.c.failover_id.is_(None), rentals.c.instance_id == rental.instance_id)
    )
    tried = conn.execute(sa.select(rentals.c.offer_id).where(same, rentals.c.offer_id.is_not(None))).scalars()
    return [t for t in tried if t]
