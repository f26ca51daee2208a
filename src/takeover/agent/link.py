"""How an agent reaches the control plane: one request per heartbeat, or one stream that also
carries pushed desired state. A stream that breaks falls back to requests at once while it
reconnects with jittered backoff, so a lost stream never by itself lets the fence expire.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

import httpx
import orjson
import structlog
from pydantic import ValidationError
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from takeover.agent.settings import AgentSettings
from takeover.api.frames import StreamMessage
from takeover.api.wire import HeartbeatOut

if TYPE_CHECKING:
    from takeover.agent.registration import Credentials

log = structlog.get_logger("takeover.agent")

BACKOFF_FIRST = 0.5
BACKOFF_CAP = 30.0
_MAX_FRAME = 16 * 1024 * 1024  # downstream: a node's whole desired state


def reconnect_delay(failures: int, rng: random.Random) -> float:
    """Full jitter: a thousand agents cut off together come back spread over the window, not at once."""
    return rng.uniform(0.0, min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** min(failures, 16)))


def stream_url(takeover_url: str, node_id: UUID) -> str:
    base = takeover_url.rstrip("/")
    scheme = "wss" if base.startswith("https://") else "ws"
    return f"{scheme}://{base.split('://', 1)[1]}/api/v1/nodes/{node_id}/stream"


class Link(Protocol):
    def beat(self, body: dict[str, Any], timeout: float) -> HeartbeatOut | None:
        """Send one heartbeat; its reply once the control plane committed it, else None."""

    def pushed(self, timeout: float) -> HeartbeatOut | None:
        """Wait up to ``timeout`` for desired state pushed between heartbeats."""

    def close(self) -> None: ...


class HttpLink:
    def __init__(self, client: httpx.Client, node_id: UUID, token: str, stop: threading.Event) -> None:
        self.client = client
        self.path = f"/api/v1/nodes/{node_id}/heartbeat"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.stop = stop

    def beat(self, body: dict[str, Any], timeout: float) -> HeartbeatOut | None:
        try:
            response = self.client.post(self.path, json=body, headers=self.headers, timeout=timeout)
        except httpx.HTTPError as exc:
            log.warning("heartbeat failed", error=str(exc) or type(exc).__name__)
            return None
        if response.status_code != 200:
            log.error("heartbeat refused", status=response.status_code, detail=detail(response))
            return None
        try:
            return HeartbeatOut.model_validate_json(response.content)
        except ValidationError as exc:
            log.error("heartbeat reply not understood", error=str(exc)[:500])
            return None

    def pushed(self, timeout: float) -> HeartbeatOut | None:
        self.stop.wait(timeout)
        return None

    def close(self) -> None:
        self.client.close()


class StreamLink:
    def __init__(
        self, url: str, node_id: UUID, token: str, http: HttpLink, rng: random.Random | None = None
    ) -> None:
        self.url = url
        self.node_id = str(node_id)
        self.token = token
        self.http = http
        self.rng = rng or random.Random()
        self.ws: ClientConnection | None = None
        self.failures = 0
        self.retry_at = 0.0  # monotonic: when to try to open the stream again
        self.seq = itertools.count(1)

    def beat(self, body: dict[str, Any], timeout: float) -> HeartbeatOut | None:
        """Over the stream, waiting for its ack half the time at most: the other half is for the
        same heartbeat over HTTP, through the balancer to another replica, when the stream's
        replica has stopped answering without closing it (paused, hung, starved)."""
        deadline = time.monotonic() + timeout
        ws = self._connected(timeout / 2)
        if ws is not None:
            seq = next(self.seq)
            try:
                frame = {"type": "heartbeat", "seq": seq, "node_id": self.node_id, **body}
                ws.send(orjson.dumps(frame).decode())  # compact: no whitespace
                reply = self._ack(ws, seq, deadline - timeout / 2)
            except (ConnectionClosed, TimeoutError, OSError) as exc:
                self._lost(exc)
            else:
                if reply is not None:
                    self.failures = 0
                    return reply
        left = deadline - time.monotonic()
        return self.http.beat(body, left) if left > 0.05 else None  # the fence's deadline is near

    def _ack(self, ws: ClientConnection, seq: int, deadline: float) -> HeartbeatOut | None:
        """Desired states pushed before the ack are older than it: the ack's reply replaces them."""
        while True:
            message = self._decode(ws.recv(timeout=max(0.0, deadline - time.monotonic())))
            if message is None:
                return None
            if message.type == "ack" and message.seq == seq:
                return message.reply

    def pushed(self, timeout: float) -> HeartbeatOut | None:
        ws = self.ws
        if ws is None:
            self.http.stop.wait(timeout)
            return None
        try:
            message = self._decode(ws.recv(timeout=timeout))
        except TimeoutError:
            return None
        except (ConnectionClosed, OSError) as exc:
            self._lost(exc)
            return None
        return message.reply if message is not None and message.type == "desired" else None

    def _decode(self, data: str | bytes) -> StreamMessage | None:
        try:
            return StreamMessage.model_validate_json(data)
        except ValidationError as exc:
            log.error("stream message not understood", error=str(exc)[:500])
            return None

    def _connected(self, timeout: float) -> ClientConnection | None:
        if self.ws is not None or time.monotonic() < self.retry_at:
            return self.ws
        try:
            self.ws = connect(
                self.url,
                additional_headers={"Authorization": f"Bearer {self.token}"},
                open_timeout=max(0.2, min(timeout / 2, 5.0)),
                max_size=_MAX_FRAME,
                user_agent_header="takeover-agent",
            )
        except (InvalidHandshake, InvalidURI, TimeoutError, OSError) as exc:
            self._lost(exc)
            return None
        log.info("stream open", url=self.url)
        return self.ws

    def _lost(self, exc: Exception) -> None:
        if self.ws is not None:
            _abort(self.ws)
            self.ws = None
        delay = reconnect_delay(self.failures, self.rng)
        self.failures += 1
        self.retry_at = time.monotonic() + delay
        log.warning(
            "stream unavailable; heartbeats go over HTTP meanwhile",
            error=_reason(exc),
            retry_in=round(delay, 2),
        )

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close_timeout = 1.0
            self.ws.close()
        self.http.close()


def _abort(ws: ClientConnection) -> None:
    """Drop the socket without a closing handshake: across a partition that handshake waits out
    its timeout, and the agent's loop must not, or its fence would fire late."""
    with contextlib.suppress(OSError):
        ws.socket.shutdown(socket.SHUT_RDWR)
    ws.socket.close()


def _reason(exc: Exception) -> str:
    if isinstance(exc, ConnectionClosed) and exc.rcvd is not None:
        return f"closed {exc.rcvd.code}: {exc.rcvd.reason}"
    return str(exc) or type(exc).__name__


def detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))[:500]
    except ValueError:
        return response.text[:500]


def open_link(
    settings: AgentSettings, client: httpx.Client, credentials: Credentials, stop: threading.Event
) -> Link:
    """NODE_TRANSPORT's: a stream (falling back to requests while it reconnects), or requests."""
    http = HttpLink(client, credentials.node_id, credentials.token, stop)
    if settings.transport == "http":
        return http
    url = stream_url(settings.takeover_url, credentials.node_id)
    return StreamLink(url, credentials.node_id, credentials.token, http)
