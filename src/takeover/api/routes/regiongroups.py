"""Shared decisions of takeover.regions groups, so every application process uses one region."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path

from takeover.api.deps import PersonDep, ServicesDep
from takeover.api.inputs import StrictJSONRoute
from takeover.api.schemas import GroupDecisionIn, GroupDecisionOut

router = APIRouter(prefix="/region-groups", tags=["regions"], route_class=StrictJSONRoute)
GroupId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


@router.get("")
def list_groups(services: ServicesDep, _: PersonDep) -> list[GroupDecisionOut]:
    return [GroupDecisionOut(**asdict(d)) for d in services.store.region_groups.find()]


@router.get("/{group_id}")
def get_group(group_id: GroupId, services: ServicesDep, _: PersonDep) -> GroupDecisionOut:
    return GroupDecisionOut(**asdict(services.store.region_groups.get(group_id)))


@router.put("/{group_id}")
def decide(
    group_id: GroupId, body: GroupDecisionIn, services: ServicesDep, who: PersonDep
) -> GroupDecisionOut:
    """Move the group; with ``expected_epoch`` only if nobody moved it since (409 otherwise)."""
    decision = services.store.region_groups.decide(
        group_id, body.current_region, body.expected_epoch, who.subject, body.reason, services.clock.now()
    )
    return GroupDecisionOut(**asdict(decision))
