"""An agent's stream: heartbeats up, acknowledgements and pushed desired state down, on one socket.

Authenticated once when it opens, with the node's token; every heartbeat is still checked in its
group commit, so a token revoked on an open stream closes it at the next heartbeat. Heartbeats
and pushes share a lock, so a push read after a change is never overtaken by an older ack.
A closed stream proves nothing about the node: only missing heartbeats make it offline.
"""

from __future__ import annotations

import asyncio
import contextlib
from uuid import UUID

import structlog
from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from takeover.api.frames import HeartbeatFrame, heartbeat_of, heartbeat_reply
from takeover.api.wire import HeartbeatOut
from takeover.control.services import Services
from takeover.domain.errors import Forbidden, NotFound, TakeoverError, Unauthenticated

log = structlog.get_logger("takeover.api.stream")
router = APIRouter(tags=["nodes"])

# Close codes: RFC 6455's where one fits, 4xxx (private use) mirroring the HTTP statuses.
INVALID_FRAME = 1007  # not a heartbeat frame: malformed JSON, a missing or out-of-range field
# 1009: larger than TAKEOVER_MAX_BODY_BYTES; uvicorn closes it (ws_max_size) before reading it all
STORE_FAILED = 1011  # the heartbeat could not be committed: not acknowledged, send it again
RESTARTING = 1012  # this replica is draining: reconnect, through the balancer, to another one
TRY_LATER = 1013  # over the accept rate (a reconnect storm): back off, heartbeat over HTTP meanwhile
UNAUTHENTICATED = 4401  # missing, unknown or revoked token
FORBIDDEN = 4403  # another node's token, or a frame for another node
GONE = 4404  # the node was deleted


class Closed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        # A close frame's reason holds 123 bytes at most.
        self.reason = reason.encode()[:123].decode(errors="ignore")


@router.websocket("/api/v1/nodes/{node_id}/stream")
async def stream(websocket: WebSocket, node_id: UUID) -> None:
    services: Services = websocket.app.state.services
    await websocket.accept()
    metrics = services.metrics
    try:
        token = await _admit(websocket, services, node_id)
        metrics.streams.inc()
        try:
            await AgentStream(websocket, services, node_id, token).run()
        finally:
            metrics.streams.dec()
    except Closed as closed:
        metrics.streams_closed.labels(str(closed.code)).inc()
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # the agent may have gone already
            await websocket.close(closed.code, closed.reason)
    except WebSocketDisconnect:
        pass


async def _admit(websocket: WebSocket, services: Services, node_id: UUID) -> str:
    if services.is_draining():
        raise Closed(RESTARTING, "this replica is draining; reconnect to another")
    if not services.admit_stream():
        raise Closed(TRY_LATER, "too many new streams at once; retry later")
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    try:
        if scheme.lower() != "bearer":
            raise Unauthenticated("missing bearer token")
        await asyncio.to_thread(services.authenticate_node, token, node_id)
    except TakeoverError as error:
        raise _closing(error) from error
    return token


class AgentStream:
    def __init__(self, websocket: WebSocket, services: Services, node_id: UUID, token: str) -> None:
        self.websocket = websocket
        self.services = services
        self.node_id = node_id
        self.token = token
        self.lock = asyncio.Lock()  # one send at a time; a push never overtakes an older ack

    async def run(self) -> None:
        changed = self.services.pushes.subscribe(self.node_id)
        pusher = asyncio.create_task(self._push(changed))
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                frame = self._parse(message.get("text") or message.get("bytes") or b"")
                await self._heartbeat(frame)
                if self.services.is_draining():
                    raise Closed(RESTARTING, "this replica is draining; reconnect to another")
        finally:
            pusher.cancel()
            self.services.pushes.unsubscribe(self.node_id, changed)
            with contextlib.suppress(asyncio.CancelledError, Closed):
                await pusher

    def _parse(self, data: str | bytes) -> HeartbeatFrame:
        try:
            frame = HeartbeatFrame.model_validate_json(data)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "frame"
            raise Closed(INVALID_FRAME, f"{where}: {first['msg']}") from None
        if frame.node_id != self.node_id:
            raise Closed(FORBIDDEN, f"a frame for node {frame.node_id} on node {self.node_id}'s stream")
        return frame

    async def _heartbeat(self, frame: HeartbeatFrame) -> None:
        async with self.lock:
            try:
                result = await self.services.heartbeat(self.token, heartbeat_of(self.node_id, frame))
            except TakeoverError as error:
                raise _closing(error) from error
            except Exception as error:  # the store failed: this heartbeat is not acknowledged
                log.warning("stream heartbeat not committed", node=str(self.node_id), error=str(error))
                raise Closed(STORE_FAILED, "heartbeat not committed; send it again") from error
            reply = heartbeat_reply(result, self.services.agent_timings, self.services.clock.now())
            await self.websocket.send_text(message("ack", frame.seq, reply))

    async def _push(self, changed: asyncio.Event) -> None:
        """After each notification, the node's state as now committed; a failed read waits for the
        next notification or heartbeat, which carry the same state."""
        while True:
            await changed.wait()
            changed.clear()
            async with self.lock:
                try:
                    result = await asyncio.get_running_loop().run_in_executor(
                        self.services.push_reads, self.services.desired_state, self.node_id
                    )
                except NotFound:
                    await self.websocket.close(GONE, "this node was deleted")
                    return
                except Exception as error:  # noqa: BLE001 - the next heartbeat's ack carries the same state
                    log.warning("push skipped", node=str(self.node_id), error=str(error))
                    continue
                reply = heartbeat_reply(result, self.services.agent_timings, self.services.clock.now())
                await self.websocket.send_text(message("desired", None, reply))
                self.services.metrics.pushes.inc()


def message(kind: str, seq: int | None, reply: HeartbeatOut) -> str:
    """A StreamMessage's JSON, without building the wrapper model on the hot path."""
    return f'{{"type":"{kind}","seq":{"null" if seq is None else seq},"reply":{reply.model_dump_json()}}}'


def _closing(error: TakeoverError) -> Closed:
    if isinstance(error, Unauthenticated):
        return Closed(UNAUTHENTICATED, str(error))
    if isinstance(error, Forbidden):
        return Closed(FORBIDDEN, str(error))
    if isinstance(error, NotFound):
        return Closed(GONE, str(error))
    return Closed(STORE_FAILED, str(error))
