"""Routes: where each instance serves now, for proxies to follow and Prometheus to scrape."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from takeover.api.deps import PersonDep, ServicesDep
from takeover.api.inputs import StrictJSONRoute
from takeover.api.schemas import RouteOut, RoutesOut
from takeover.control.scope import owner_scope

router = APIRouter(prefix="/routes", tags=["routes"], route_class=StrictJSONRoute)


@router.get("")
async def list_routes(
    services: ServicesDep,
    who: PersonDep,
    response: Response,
    index: Annotated[
        str | None, Query(max_length=64, description="the index you have: answer once the routes differ")
    ] = None,
    wait: Annotated[float, Query(ge=0, le=300, description="seconds to wait for a change")] = 60.0,
) -> RoutesOut:
    """Every instance you see, with the runner that may serve it. With ``index`` this is a
    blocking query: it answers as soon as a route changes on any replica, or after ``wait``."""
    current, routes = await services.routes.watch(owner_scope(who), index, wait if index else 0.0)
    response.headers["X-Takeover-Index"] = current
    return RoutesOut(index=current, routes=[RouteOut.of(r) for r in routes])


@router.get("/prometheus")
def prometheus_targets(services: ServicesDep, who: PersonDep) -> list[dict[str, Any]]:
    """Prometheus ``http_sd_configs``: each serving instance's current address, with labels."""
    return [
        {
            "targets": [r.target],
            "labels": {
                "instance_name": r.name,
                "owner": r.owner,
                "instance_id": str(r.instance_id),
                "epoch": str(r.epoch),
                "node_id": str(r.node_id),
            },
        }
        for r in services.routes.routes(owner_scope(who))
        if r.target is not None
    ]
