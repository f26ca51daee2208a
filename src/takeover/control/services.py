"""Use cases behind the API and CLI: who may do what, ids, tokens and the clock.

Routers translate HTTP to these calls; these calls never speak HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from takeover.control.heartbeats import HeartbeatBatcher
from takeover.control.orchestrator import Orchestrator
from takeover.control.pushes import PushHub
from takeover.control.routes import RouteBoard
from takeover.control.scope import owner_scope
from takeover.control.status import PlaneStatus, plane_status
from takeover.control.telemetry import FailoverTelemetry
from takeover.control.values import (
    AgentTimings,
    InstanceDraft,
    NodeDraft,
    RentedMachine,
    hash_token,
    new_token,
)
from takeover.domain.errors import Conflict, Forbidden, NotFound, TakeoverError, Unauthenticated
from takeover.domain.failover import Failover, FailoverReason, FailoverStatus
from takeover.domain.heard import Heard, heard
from takeover.domain.heartbeat import CONTAINERS, Heartbeat, Runs
from takeover.domain.models import (
    Instance,
    InstanceState,
    Node,
    NodeStatus,
    Principal,
    Role,
)
from takeover.domain.monitor import TokenBucket
from takeover.domain.placement import Ineligible
from takeover.domain.rentals import BILLED, IN_FLIGHT, Rental
from takeover.domain.strategies import parse_strategy
from takeover.domain.tokens import ADMIN_SUBJECT, JOIN_TOKEN_PREFIX, JoinToken
from takeover.metrics import Metrics
from takeover.ports import Clock
from takeover.store import HeartbeatResult, Store, TokenRecord

if TYPE_CHECKING:
    from takeover.control.renter import Renter


class Services:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        metrics: Metrics,
        *,
        heartbeat_batch: int = 1000,
        wake: Callable[[], None] = lambda: None,
        agent_timings: AgentTimings | None = None,
        max_attempts: int = 3,
        execute_timeout: float = 300.0,
        renter: Renter | None = None,
        telemetry: FailoverTelemetry | None = None,
        stream_accepts: tuple[float, int] = (200.0, 200),
        route_address: str | None = None,
    ) -> None:
        """``stream_accepts``: new agent streams per second and at once (a reconnect storm's bound)."""
        self.draining = False  # set on SIGTERM: /readyz fails so balancers move traffic away first
        self.drain_file: Path | None = None  # in `serve --workers N`: the parent creates it on SIGTERM
        self.agent_timings = agent_timings or AgentTimings()
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.telemetry = telemetry or FailoverTelemetry(metrics)
        self.wake = wake
        self.batcher = HeartbeatBatcher(
            store.nodes.apply_heartbeats, clock, heartbeat_batch, self._after_batch
        )
        self.pushes = PushHub()
        self.routes = RouteBoard(lambda owner: store.instances.find(owner=owner), route_address)
        # Pushes read on threads of their own: never queued behind heartbeat batches' commits.
        self.push_reads = ThreadPoolExecutor(4, thread_name_prefix="push-reads")
        self._stream_accepts = TokenBucket.full(*stream_accepts, clock.now())
        sync = self.agent_timings.standby_report_interval
        market = renter.market if renter is not None else None
        self.orchestrator = Orchestrator(
            store,
            clock,
            sync,
            max_attempts,
            self._opened,
            execute_timeout,
            market=market,
            route_address=route_address,
        )
        self.renter = renter

    def status(self) -> PlaneStatus:
        return plane_status(self.store, self.clock, self.agent_timings.fence_after)

    # tokens -------------------------------------------------------------------------------
    def authenticate(self, raw: str | None) -> Principal:
        if not raw:
            raise Unauthenticated("missing bearer token")
        principal = self.store.tokens.principal(hash_token(raw))
        if principal is None:
            raise Unauthenticated("unknown or revoked token")
        return principal

    def create_token(self, role: Role, subject: str) -> tuple[TokenRecord, str]:
        if role is Role.NODE:
            raise Conflict("node tokens come with POST /nodes (one per node)", field="role")
        raw = new_token()
        return self.store.tokens.add(uuid4(), hash_token(raw), role, subject, self.clock.now()), raw

    def ensure_admin_token(self, raw: str) -> None:
        """Install TAKEOVER_ADMIN_TOKEN once; an existing identical token is left alone."""
        if self.store.tokens.principal(hash_token(raw)) is None:
            self.store.tokens.add(uuid4(), hash_token(raw), Role.ADMIN, ADMIN_SUBJECT, self.clock.now())

    # nodes --------------------------------------------------------------------------------
    def register_node(self, draft: NodeDraft) -> tuple[Node, str]:
        now = self.clock.now()
        node = Node(
            id=uuid4(),
            name=draft.name,
            region=draft.region,
            base_url=draft.base_url,
            max_instances=draft.max_instances,
            current_instances=0,
            status=NodeStatus.ONLINE,
            health_score=0.0,
            priority=draft.priority,
            labels=draft.labels,
            created_at=now,
            containers=draft.runs.containers,
            image=draft.runs.image,
        )
        raw = new_token()
        return self.store.nodes.add(node, uuid4(), hash_token(raw)), raw

    def join_node(
        self,
        raw_token: str | None,
        name: str,
        base_url: str,
        max_instances: int,
        region: str | None = None,
        runs: Runs = CONTAINERS,
    ) -> tuple[Node, str]:
        """A machine's agent with a join token (``takeover nodes join-token``) or the one-time
        token its rental gave it: it becomes a node of the token's region, with a token of its own."""
        if not raw_token:
            raise Unauthenticated("missing bearer token")
        now = self.clock.now()
        draft = Node(
            uuid4(),
            name,
            "",
            base_url,
            max_instances,
            0,
            NodeStatus.ONLINE,
            0.0,
            created_at=now,
            containers=runs.containers,
            image=runs.image,
        )
        raw = new_token()
        if raw_token.startswith(JOIN_TOKEN_PREFIX):
            node = self.store.join_tokens.join(hash_token(raw_token), draft, region, uuid4(), hash_token(raw))
            return node, raw
        rental, node = self.store.rentals.join(hash_token(raw_token), draft, uuid4(), hash_token(raw), now)
        if rental.rented_at is not None and rental.joined_at is not None:
            self.metrics.rent_join_seconds.observe((rental.joined_at - rental.rented_at).total_seconds())
        self.wake()  # the failover that wanted it can be placed now
        return node, raw

    def may_fetch_agent(self, raw_token: str | None) -> None:
        """The agent bundle goes to a machine that may join (a join token, a rental's one-time
        token, neither used up) and to anyone with a token of this control plane."""
        if raw_token and self.store.rentals.joining(hash_token(raw_token)) is not None:
            return
        if raw_token and raw_token.startswith(JOIN_TOKEN_PREFIX):
            if not self.store.join_tokens.live(hash_token(raw_token), self.clock.now()):
                raise Unauthenticated("unknown, expired or used-up join token")
            return
        self.authenticate(raw_token)

    def boot_failed(self, raw_token: str | None, reason: str) -> None:
        """A rented machine that cannot start the agent says why, with its one-time token."""
        rental = self.store.rentals.joining(hash_token(raw_token)) if raw_token else None
        if rental is None:
            raise Unauthenticated("unknown or used join token")
        self.store.rentals.boot_failed(rental, reason)
        self.wake()

    def create_join_token(
        self, who: Principal, region: str, ttl: timedelta, max_uses: int
    ) -> tuple[JoinToken, str]:
        """A token that can only register ``max_uses`` nodes of ``region`` within ``ttl``."""
        now = self.clock.now()
        raw = new_token(JOIN_TOKEN_PREFIX)
        token = JoinToken(uuid4(), region, who.subject, now, now + ttl, max_uses)
        return self.store.join_tokens.add(token, hash_token(raw)), raw

    def join_tokens(self, include_ended: bool) -> list[JoinToken]:
        now = self.clock.now()
        return [t for t in self.store.join_tokens.find() if include_ended or t.live(now)]

    def revoke_join_token(self, token_id: UUID) -> JoinToken:
        return self.store.join_tokens.revoke(token_id, self.clock.now())

    def list_nodes(self, who: Principal, status: NodeStatus | None, region: str | None) -> list[Node]:
        if not who.is_admin:
            if status not in (None, NodeStatus.ONLINE):
                return []
            status = NodeStatus.ONLINE
        return self.store.nodes.find(status, region)

    def heard(self, node: Node) -> tuple[Heard, float | None]:
        """For views: late from the first missed heartbeat, silent past fence_after."""
        timings = self.agent_timings
        return heard(
            node.status,
            node.last_heartbeat_at,
            self.clock.now(),
            timings.heartbeat_interval,
            timings.fence_after,
        )

    def get_node(self, who: Principal, node_id: UUID) -> Node:
        if who.role is Role.NODE and who.subject != str(node_id):
            raise Forbidden("a node token may read only its own node")
        node = self.store.nodes.get(node_id)
        if who.role is Role.USER and node.status is not NodeStatus.ONLINE:
            raise NotFound(f"node {node_id} not found")
        return node

    def update_node(self, node_id: UUID, changes: dict[str, Any]) -> Node:
        if changes.get("status") is NodeStatus.OFFLINE:
            raise Conflict("offline is decided by the monitor, not set by hand", field="status")
        node = self.store.nodes.update(node_id, changes, self.clock.now())
        if node.status in (NodeStatus.DRAINING, NodeStatus.MAINTENANCE):
            self.wake()
        return node

    def delete_node(self, node_id: UUID) -> None:
        self.store.nodes.delete(node_id, self.clock.now())

    def select_node(self, region: str | None, exclude: frozenset[UUID]) -> Node | Ineligible:
        return self.store.nodes.select(region, exclude)

    async def heartbeat(self, raw_token: str | None, heartbeat: Heartbeat) -> HeartbeatResult:
        """The token is checked inside the batch's transaction: no extra round trip per beat."""
        if not raw_token:
            raise Unauthenticated("missing bearer token")
        return await self.batcher.submit(hash_token(raw_token), heartbeat)

    def admit_stream(self) -> bool:
        """One token of the accept rate; False: the agent backs off and heartbeats over HTTP meanwhile."""
        self._stream_accepts, admitted = self._stream_accepts.take(self.clock.now())
        return admitted

    def authenticate_node(self, raw: str | None, node_id: UUID) -> None:
        who = self.authenticate(raw)
        if who.role is not Role.NODE or who.subject != str(node_id):
            raise Forbidden("only the node's own token may open its stream")

    def desired_state(self, node_id: UUID) -> HeartbeatResult:
        return self.store.nodes.desired_state(node_id)

    def is_draining(self) -> bool:
        return self.draining or (self.drain_file is not None and self.drain_file.exists())

    def _after_batch(self, results: list[HeartbeatResult | TakeoverError]) -> None:
        accepted = sum(1 for r in results if isinstance(r, HeartbeatResult))
        self.metrics.heartbeats.inc(accepted)
        self.metrics.heartbeat_batch.observe(len(results))
        for result in results:
            if isinstance(result, HeartbeatResult) and result.gap is not None:
                self.metrics.heartbeat_gap.observe(result.gap)
        if any(isinstance(r, HeartbeatResult) and r.state_changes for r in results):
            self.wake()  # a target may have reported a failed-over instance running

    # instances ----------------------------------------------------------------------------
    def create_instance(self, who: Principal, draft: InstanceDraft) -> Instance:
        instance = Instance(
            id=uuid4(),
            owner=who.subject,
            name=draft.name,
            spec=draft.spec,
            node_id=None,
            epoch=0,
            state=InstanceState.ASSIGNED,
            preferred_region=draft.preferred_region,
            failover_enabled=draft.failover_enabled,
            failover_strategy=parse_strategy(draft.failover_strategy).value
            if draft.failover_strategy
            else None,
            volume_id=draft.volume_id,
            created_at=self.clock.now(),
            gpus=draft.gpus,
            rent=draft.rent,
        )
        return self.store.instances.create(instance, self.clock.now())

    def list_instances(self, who: Principal) -> list[Instance]:
        return self.store.instances.find(owner=owner_scope(who))

    def instance_page(self, who: Principal, offset: int, limit: int) -> tuple[list[Instance], int]:
        """A page of what ``who`` sees, by name, and how many there are in all."""
        return self.store.instances.page(owner_scope(who), offset, limit)

    def instance_ref(self, who: Principal, ref: UUID | int) -> UUID:
        """An id as it is; a number (document 002's integer ids) is looked up among what ``who`` sees."""
        return ref if isinstance(ref, UUID) else self.store.instances.id_of(ref, owner_scope(who))

    def volume_ref(self, who: Principal, ref: UUID | int) -> UUID:
        return ref if isinstance(ref, UUID) else self.store.volumes.id_of(ref, owner_scope(who))

    def get_instance(self, who: Principal, instance_id: UUID) -> Instance:
        return self.store.instances.get(instance_id, owner_scope(who))

    def instance_logs(
        self, who: Principal, instance_id: UUID, after: int, limit: int
    ) -> list[dict[str, Any]]:
        instance = self.store.instances.get(instance_id, owner_scope(who))  # someone else's: NotFound
        return self.store.logs.read(instance.id, after, limit)

    def delete_instance(self, who: Principal, instance_id: UUID) -> None:
        self.store.instances.delete(instance_id, owner_scope(who), self.clock.now())

    def update_instance(self, who: Principal, instance_id: UUID, changes: dict[str, Any]) -> Instance:
        """Failover settings only: the strategy (validated), whether failover is automatic, where to."""
        if changes.get("failover_strategy"):
            changes["failover_strategy"] = parse_strategy(changes["failover_strategy"]).value
        return self.store.instances.update_settings(instance_id, owner_scope(who), changes, self.clock.now())

    def request_snapshot(self, who: Principal, instance_id: UUID) -> Instance:
        return self.store.instances.request_snapshot(instance_id, owner_scope(who), self.clock.now())

    def assign_instance(self, instance_id: UUID, node_id: UUID) -> Instance:
        return self.store.instances.assign(instance_id, node_id, self.clock.now())

    # failovers ----------------------------------------------------------------------------
    def start_failover(
        self,
        who: Principal,
        instance_id: UUID,
        reason: FailoverReason,
        target_node_id: UUID | None,
        start_empty: bool = False,
    ) -> Failover:
        """Record the intent; the leader's executor does the work (woken up now)."""
        if not who.is_admin and target_node_id is not None:
            raise Forbidden("only an admin may choose the target node")
        if not who.is_admin and start_empty:
            raise Forbidden("only an admin may accept starting an instance empty (its data is lost)")
        failover = self.store.failovers.open(
            instance_id,
            reason,
            self.clock.now(),
            owner=owner_scope(who),
            requested_target_id=target_node_id,
            start_empty=start_empty,
        )
        self._opened(failover)
        return failover

    def _opened(self, failover: Failover) -> None:
        self.telemetry.opened(failover)
        self.wake()

    def list_failovers(
        self, who: Principal, instance_id: UUID | None, status: FailoverStatus | None
    ) -> list[Failover]:
        return self.store.failovers.find(instance_id, status, owner=owner_scope(who))

    def get_failover(self, who: Principal, failover_id: UUID) -> Failover:
        return self.store.failovers.get(failover_id, owner_scope(who))

    def finish_failover(self, failover_id: UUID, success: bool, error: str | None) -> Failover:
        failover = self.store.failovers.finish(failover_id, success, error, self.clock.now())
        self.telemetry.ended(failover)
        return failover

    # rented machines ----------------------------------------------------------------------
    def rented_machines(self, include_ended: bool = False) -> list[RentedMachine]:
        states = None if include_ended else [*IN_FLIGHT, *BILLED]
        return self._held(self.store.rentals.find(states))

    def _held(self, rentals: list[Rental]) -> list[RentedMachine]:
        """Each rental with its node's name and what runs, or waits as a standby, there."""
        names = {n.id: n.name for n in self.store.nodes.find()}
        running: dict[UUID, list[str]] = {}
        for instance in self.store.instances.find():
            for node in (instance.node_id, instance.standby_node_id):
                if node is not None:
                    running.setdefault(node, []).append(instance.name)
        return [
            RentedMachine(
                r,
                names.get(r.node_id) if r.node_id else None,
                sorted(running.get(r.node_id, [])) if r.node_id else [],
            )
            for r in rentals
        ]

    def release_machine(self, rental_id: UUID) -> RentedMachine:
        """An operator gives a rented machine back; refused while an instance runs there."""
        rental = self.store.rentals.get(rental_id)
        if rental is None:
            raise NotFound(f"rented machine {rental_id} not found")
        if self.renter is None:
            raise Conflict("no marketplace is configured here (TAKEOVER_PROVIDER)")
        if rental.state not in (*IN_FLIGHT, *BILLED):
            raise Conflict(f"rented machine {rental_id} is {rental.state} already")
        (held,) = self._held([rental])
        if held.instances:
            raise Conflict(
                f"its node {held.node_name} runs {', '.join(held.instances)}; drain the node first"
            )
        self.renter.release(rental, "released by an admin")
        ended = self.store.rentals.get(rental_id)
        assert ended is not None
        return RentedMachine(ended, held.node_name, [])

    # regions and events -------------------------------------------------------------------
    def resume_region(self, region: str) -> None:
        self.store.pool.resume([region], self.clock.now(), None, "an admin released the brake")
        self.metrics.region_paused.labels(region).set(0)
        self.wake()
