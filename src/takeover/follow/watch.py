"""The control plane's routes, watched with blocking queries; the last known ones survive its absence."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

import httpx
import structlog

from takeover.domain.models import InstanceState
from takeover.domain.routes import Route

log = structlog.get_logger("takeover.follow")


def route_from(row: dict[str, Any]) -> Route:
    return Route(
        name=row["name"],
        owner=row["owner"],
        instance_id=UUID(row["instance_id"]),
        number=row["number"],
        epoch=row["epoch"],
        state=InstanceState(row["state"]),
        node_id=UUID(row["node_id"]) if row["node_id"] else None,
        target=row["target"],
        address=row["address"],
    )


class RouteWatch:
    """``next()`` answers when the routes changed, or after ``wait`` seconds with the same ones.

    Without the control plane it answers the last known routes after ``wait`` (retrying all the
    while): a proxy keeps sending clients where they went, never to nobody.
    """

    def __init__(self, url: str, token: str, wait: float = 30.0, verify: bool | str = True) -> None:
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(wait + 10, connect=5),
            verify=verify,
        )
        self._wait = wait
        self.index: str | None = None
        self.routes: list[Route] | None = None  # None: never heard from the control plane
        self.connected = False

    def next(self) -> list[Route] | None:
        deadline = time.monotonic() + self._wait
        pause = 0.2
        while True:
            try:
                return self._ask()
            except (httpx.HTTPError, ValueError, KeyError) as error:
                if self.connected:
                    log.warning("lost the control plane; keeping the last known routes", error=str(error))
                self.connected = False
            left = deadline - time.monotonic()
            if left <= 0:
                return self.routes
            time.sleep(min(pause, left))
            pause = min(pause * 2, 5.0)

    def _ask(self) -> list[Route]:
        params: dict[str, Any] = {"wait": self._wait}
        if self.index is not None and self.connected:
            params["index"] = self.index
        response = self._client.get("/api/v1/routes", params=params)
        if response.status_code in (401, 403):
            raise SystemExit(f"the control plane refused the token: {response.text}")
        response.raise_for_status()
        body = response.json()
        if not self.connected:
            log.info("following the control plane's routes", url=str(self._client.base_url))
        self.connected = True
        self.index = body["index"]
        self.routes = [route_from(r) for r in body["routes"]]
        return self.routes

    def close(self) -> None:
        self._client.close()
