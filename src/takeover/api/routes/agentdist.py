"""What a rented machine's onstart fetches: the agent itself, and where it says it could not."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Response, status
from pydantic import Field

from takeover.api.deps import BearerDep, ServicesDep
from takeover.api.fields import Request
from takeover.api.inputs import StrictJSONRoute
from takeover.control.bundle import agent_bundle

router = APIRouter(prefix="/agent", tags=["nodes"], route_class=StrictJSONRoute)


class BootFailedIn(Request):
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


@router.get(
    "/bundle",
    response_class=Response,
    responses={200: {"content": {"application/gzip": {}}, "description": "a gzipped tar of site/"}},
)
async def get_agent_bundle(services: ServicesDep, token: BearerDep, s3: bool = False) -> Response:
    """This control plane's own agent and its dependencies, as installed here, for a machine that
    may join (a join token or a rental's one-time token) or anyone with a token; ``s3``: with
    boto3, for an s3:// snapshot store. Headers: the Python minor version and machine type its
    compiled files need, and its SHA-256."""
    await asyncio.to_thread(services.may_fetch_agent, token)
    bundle = await asyncio.to_thread(agent_bundle, s3)
    return Response(
        bundle.data,
        media_type="application/gzip",
        headers={
            "X-Takeover-Python": bundle.python,
            "X-Takeover-Machine": bundle.machine,
            "X-Takeover-Sha256": bundle.sha256,
        },
    )


@router.post("/failed", status_code=status.HTTP_204_NO_CONTENT)
def boot_failed(body: BootFailedIn, services: ServicesDep, token: BearerDep) -> None:
    """A rented machine whose onstart cannot start the agent (no python3, another Python) says
    why, with its one-time token: the rental fails with that reason at once and the machine is
    given back."""
    services.boot_failed(token, body.reason)
