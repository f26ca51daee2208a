"""Every API request timed into one histogram by its route template, as a pure ASGI middleware."""

from __future__ import annotations

import time

from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RequestMetrics:
    """The route's template (``/api/v1/nodes/{node_id}``), never the raw path, keeps the series
    few; a request that matched no route is counted as ``unmatched``."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = _template(scope)
            self.histogram.labels(scope["method"], route, f"{status // 100}xx").observe(
                time.perf_counter() - started
            )


def _template(scope: Scope) -> str:
    """The matched route's path under its routers' prefixes: the request path's leading segments
    (the prefixes are fixed text) followed by the route's own template."""
    route = getattr(scope.get("route"), "path", None)
    if not isinstance(route, str):
        return "unmatched"
    path: str = scope["path"]
    prefix = path.split("/")[: path.count("/") - route.count("/") + 1]
    return "/".join(prefix) + route
