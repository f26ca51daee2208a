"""Failovers: the API records intent (202); the leader's executor does the work."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, status

from takeover.api.deps import AdminDep, PersonDep, ServicesDep
from takeover.api.failover_schemas import FailoverCreate, FailoverFinish, FailoverOut
from takeover.api.inputs import StrictJSONRoute
from takeover.domain.failover import FailoverStatus

router = APIRouter(prefix="/failovers", tags=["failovers"], route_class=StrictJSONRoute)


@router.post("", status_code=status.HTTP_202_ACCEPTED)
def start_failover(body: FailoverCreate, services: ServicesDep, who: PersonDep) -> FailoverOut:
    return FailoverOut.of(
        services.start_failover(
            who,
            services.instance_ref(who, body.instance_id),
            body.reason,
            body.target_node_id,
            body.start_empty,
        )
    )


@router.get("")
def list_failovers(
    services: ServicesDep,
    who: PersonDep,
    instance_id: UUID | None = None,
    status: FailoverStatus | None = None,
) -> list[FailoverOut]:
    return [FailoverOut.of(f) for f in services.list_failovers(who, instance_id, status)]


@router.get("/{failover_id}")
def get_failover(failover_id: UUID, services: ServicesDep, who: PersonDep) -> FailoverOut:
    return FailoverOut.of(services.get_failover(who, failover_id))


@router.post("/{failover_id}/complete")
def complete_failover(
    failover_id: UUID, body: FailoverFinish, services: ServicesDep, _: AdminDep
) -> FailoverOut:
    return FailoverOut.of(services.finish_failover(failover_id, body.success, body.error))
