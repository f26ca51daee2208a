"""Instances: placed on the best node at creation; owners see only their own."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from takeover.api.deps import AdminDep, InstanceIdDep, PersonDep, ServicesDep
from takeover.api.inputs import StrictJSONRoute
from takeover.api.schemas import AssignIn, InstanceCreate, InstanceOut, InstancePatch, LogsOut
from takeover.control.services import Services
from takeover.control.values import InstanceDraft
from takeover.domain.models import Instance

router = APIRouter(prefix="/instances", tags=["instances"], route_class=StrictJSONRoute)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_instance(body: InstanceCreate, services: ServicesDep, who: PersonDep) -> InstanceOut:
    draft = InstanceDraft(
        body.name,
        body.spec.to_spec(),
        body.preferred_region,
        body.failover_enabled,
        body.failover_strategy,
        services.volume_ref(who, body.volume_id) if body.volume_id is not None else None,
        body.gpus.to_request() if body.gpus is not None else None,
        body.rent.to_policy() if body.rent is not None else None,
    )
    return _out(services, services.create_instance(who, draft))


@router.get("")
def list_instances(services: ServicesDep, who: PersonDep) -> list[InstanceOut]:
    return [_out(services, i) for i in services.list_instances(who)]


@router.get("/{instance_id}")
def get_instance(instance_id: InstanceIdDep, services: ServicesDep, who: PersonDep) -> InstanceOut:
    return _out(services, services.get_instance(who, instance_id))


@router.delete("/{instance_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_instance(instance_id: InstanceIdDep, services: ServicesDep, who: PersonDep) -> Response:
    services.delete_instance(who, instance_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch("/{instance_id}")
def update_instance(
    instance_id: InstanceIdDep, body: InstancePatch, services: ServicesDep, who: PersonDep
) -> InstanceOut:
    """Failover settings: failover_strategy, failover_enabled, preferred_region, rent."""
    changes = body.model_dump(exclude_unset=True)
    if "rent" in changes:
        changes["rent"] = body.rent.to_policy() if body.rent is not None else None
    return InstanceOut.of(services.update_instance(who, instance_id, changes))


@router.post("/{instance_id}/snapshot", status_code=status.HTTP_202_ACCEPTED)
def snapshot_instance(instance_id: InstanceIdDep, services: ServicesDep, who: PersonDep) -> InstanceOut:
    """Its node snapshots it after its next heartbeat; ``last_snapshot`` then names a newer snapshot."""
    return InstanceOut.of(services.request_snapshot(who, instance_id))


@router.post("/{instance_id}/assign")
def assign_instance(
    instance_id: InstanceIdDep, body: AssignIn, services: ServicesDep, _: AdminDep
) -> InstanceOut:
    return InstanceOut.of(services.assign_instance(instance_id, body.node_id))


@router.get("/{instance_id}/logs")
def instance_logs(
    instance_id: InstanceIdDep,
    services: ServicesDep,
    who: PersonDep,
    after: Annotated[int, Query(ge=0, description="the last chunk id you have: newer ones only")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> LogsOut:
    """What its runners printed, shipped by their agents in heartbeats (the newest are kept)."""
    chunks = services.instance_logs(who, instance_id, after, limit)
    return LogsOut(chunks=chunks, next=chunks[-1]["id"] if chunks else after)


def _out(services: Services, instance: Instance) -> InstanceOut:
    return InstanceOut.of(instance, services.routes.address_of(instance))
