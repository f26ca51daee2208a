"""Nodes: registry, heartbeats (desired state in the reply), placement, offline check."""

from __future__ import annotations

import asyncio
from uuid import UUID

from fastapi import APIRouter, Response, status

from takeover.api.deps import AdminDep, BearerDep, ControllersDep, PersonDep, PrincipalDep, ServicesDep
from takeover.api.failover_schemas import CheckOfflineOut, FailoverOut
from takeover.api.frames import heartbeat_of, heartbeat_reply
from takeover.api.inputs import StrictJSONRoute
from takeover.api.schemas import NodeCreate, NodeCreated, NodeJoin, NodeOut, NodePatch, SelectIn
from takeover.api.wire import HeartbeatIn, HeartbeatOut
from takeover.control.values import NodeDraft
from takeover.domain.errors import Conflict, NoCapacity
from takeover.domain.heartbeat import Runs
from takeover.domain.models import NodeStatus
from takeover.domain.placement import Ineligible

router = APIRouter(prefix="/nodes", tags=["nodes"], route_class=StrictJSONRoute)


@router.post("", status_code=status.HTTP_201_CREATED)
def register_node(body: NodeCreate, services: ServicesDep, _: AdminDep) -> NodeCreated:
    draft = NodeDraft(
        body.name,
        body.region,
        str(body.base_url),
        body.max_instances,
        body.priority,
        body.labels,
        Runs(body.containers, body.image),
    )
    node, token = services.register_node(draft)
    return NodeCreated(**NodeOut.of(node, services.heard(node)).model_dump(), api_token=token)


@router.post("/join", status_code=status.HTTP_201_CREATED)
async def join_node(
    body: NodeJoin, services: ServicesDep, controllers: ControllersDep, token: BearerDep
) -> NodeCreated:
    """A machine's agent with a join token (``takeover nodes join-token``), or a rented
    machine's with the one-time token its rental gave it.

    On the leader it answers after a controller cycle, so the failover that rented the machine
    is placed there before the agent's first heartbeat asks what to run."""
    node, raw = await asyncio.to_thread(
        services.join_node,
        token,
        body.name,
        str(body.base_url),
        body.max_instances,
        body.region,
        Runs(body.containers, body.image),
    )
    if controllers is not None and controllers.leadership.token is not None:
        await asyncio.to_thread(controllers.run_cycle)
    return NodeCreated(**NodeOut.of(node, services.heard(node)).model_dump(), api_token=raw)


@router.get("")
def list_nodes(
    services: ServicesDep, who: PersonDep, status: NodeStatus | None = None, region: str | None = None
) -> list[NodeOut]:
    return [NodeOut.of(n, services.heard(n)) for n in services.list_nodes(who, status, region)]


@router.post("/select")
def select_node(body: SelectIn, services: ServicesDep, _: PersonDep) -> NodeOut:
    choice = services.select_node(body.region, frozenset(body.exclude))
    if isinstance(choice, Ineligible):
        raise NoCapacity(choice.reason)
    return NodeOut.of(choice, services.heard(choice))


@router.post("/check-offline")
def check_offline(controllers: ControllersDep, _: AdminDep) -> CheckOfflineOut:
    if controllers is None:
        raise Conflict("controllers are disabled on this replica (ENABLE_CRON=false); ask another one")
    outcome = controllers.run_cycle()
    if not outcome.leader:
        leader = controllers.leadership.current_leader()
        raise Conflict(
            f"replica {leader.holder if leader else '?'} holds the leader lease and runs this check"
        )
    monitor = outcome.monitor
    if monitor is None:
        raise Conflict(outcome.error or "the check did not run")
    return CheckOfflineOut(
        offline_nodes=monitor.offline_nodes,
        failovers=[FailoverOut.of(f) for f in monitor.failovers],
        paused_regions=monitor.paused_regions,
        resumed_regions=monitor.resumed_regions,
        rate_limited=monitor.rate_limited,
    )


@router.get("/{node_id}")
def get_node(node_id: UUID, services: ServicesDep, who: PrincipalDep) -> NodeOut:
    node = services.get_node(who, node_id)
    return NodeOut.of(node, services.heard(node))


@router.patch("/{node_id}")
def update_node(node_id: UUID, body: NodePatch, services: ServicesDep, _: AdminDep) -> NodeOut:
    node = services.update_node(node_id, body.model_dump(exclude_unset=True))
    return NodeOut.of(node, services.heard(node))


@router.delete("/{node_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_node(node_id: UUID, services: ServicesDep, _: AdminDep) -> Response:
    services.delete_node(node_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{node_id}/heartbeat", response_model=HeartbeatOut)
async def heartbeat(node_id: UUID, body: HeartbeatIn, services: ServicesDep, token: BearerDep) -> Response:
    """The hot path: the reply is serialized once here, not validated again by FastAPI."""
    result = await services.heartbeat(token, heartbeat_of(node_id, body))
    reply = heartbeat_reply(result, services.agent_timings, services.clock.now())
    return Response(reply.model_dump_json(), media_type="application/json")
