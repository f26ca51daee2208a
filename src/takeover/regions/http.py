"""Document 004's health endpoints, as a router an application can mount (takeover serve does)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from takeover.regions.manager import MultiRegion


def health_router(regions: MultiRegion) -> APIRouter:
    """GET /health/connections and /health/connections/{connection_id}: 503 when a region is down."""
    router = APIRouter(prefix="/health/connections", tags=["regions"])

    def connections() -> list[dict[str, Any]]:
        found = []
        for group in regions.status():
            for region in group["regions"]:
                current = region["connection_id"] == group["current_region"]
                found.append({**region, "group_id": group["group_id"], "current": current})
        return found

    @router.get("")
    def all_connections() -> JSONResponse:
        found = connections()
        healthy = all(c["healthy"] for c in found)
        return JSONResponse({"healthy": healthy, "connections": found}, status_code=200 if healthy else 503)

    @router.get("/{connection_id}")
    def one_connection(connection_id: str) -> JSONResponse:
        found = [c for c in connections() if c["connection_id"] == connection_id]
        if not found:
            known = sorted({c["connection_id"] for c in connections()})
            return JSONResponse(
                {"detail": f"no connection {connection_id!r}; known: {known}"}, status_code=404
            )
        healthy = all(c["healthy"] for c in found)
        return JSONResponse({"healthy": healthy, "connections": found}, status_code=200 if healthy else 503)

    return router


def no_regions_router() -> APIRouter:
    """What /health/connections answers when ``takeover serve`` watches no groups: why, not a bare 404."""
    router = APIRouter(prefix="/health/connections", tags=["regions"])

    @router.get("", include_in_schema=False)
    @router.get("/{connection_id}", include_in_schema=False)
    def not_configured() -> JSONResponse:
        detail = (
            "no application database groups are watched here: set TAKEOVER_REGIONS_CONFIG to a "
            "takeover.regions groups file and restart takeover serve (docs/regions.md)"
        )
        return JSONResponse({"detail": detail}, status_code=404)

    return router
