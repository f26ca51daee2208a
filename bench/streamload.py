"""A cheap load generator for agent streams: one process, one asyncio protocol per stream.

Each node's heartbeat frame is built and masked once; a stream sends it again as soon as the
previous one is acknowledged (closed loop, one heartbeat in flight per stream, as an agent
has), so the generator costs a socket write and a frame header parse per heartbeat.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time
from dataclasses import dataclass, field

BODY = {"cpu_load": 0.2, "memory_load": 0.3, "avg_latency_ms": 4, "instances": []}


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked frame (clients must mask): text, built once per stream, or a pong."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


@dataclass
class Tally:
    acks: int = 0
    errors: int = 0
    counting: bool = False
    latencies: list[float] = field(default_factory=list)
    closes: list[str] = field(default_factory=list)


class Stream(asyncio.Protocol):
    def __init__(
        self, host: str, node_id: str, token: str, tally: Tally, opened: asyncio.Future[None]
    ) -> None:
        self.request = (
            f"GET /api/v1/nodes/{node_id}/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
        frame = {"type": "heartbeat", "seq": 1, "node_id": node_id, **BODY}
        self.frame = client_frame(json.dumps(frame).encode())
        self.tally = tally
        self.opened = opened
        self.buffer = b""
        self.upgraded = False
        self.sent = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.WriteTransport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                self.opened.set_exception(RuntimeError(head.decode(errors="replace")))
                return
            self.upgraded, self.buffer = True, rest
            self.opened.set_result(None)
            self._send()
        while len(self.buffer) >= 2:
            opcode, size, start = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
            if size == 126:
                if len(self.buffer) < 4:
                    return
                size, start = struct.unpack("!H", self.buffer[2:4])[0], 4
            elif size == 127:
                if len(self.buffer) < 10:
                    return
                size, start = struct.unpack("!Q", self.buffer[2:10])[0], 10
            if len(self.buffer) < start + size:
                return
            payload, self.buffer = self.buffer[start : start + size], self.buffer[start + size :]
            self._received(opcode, payload)

    def _received(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x9:  # the server's keepalive ping: unanswered, it closes the stream
            self.transport.write(client_frame(payload, 0xA))
            return
        if opcode == 0x8:  # close: code and reason
            self.tally.errors += 1
            self.tally.closes.append(f"{struct.unpack('!H', payload[:2])[0]} {payload[2:].decode()}")
            return
        if opcode != 0x1 or not payload.startswith(b'{"type":"ack"'):
            return  # a push
        if self.tally.counting:
            self.tally.acks += 1
            self.tally.latencies.append(time.perf_counter() - self.sent)
        self._send()

    def _send(self) -> None:
        self.sent = time.perf_counter()
        self.transport.write(self.frame)


async def drive(host: str, port: int, nodes: list[tuple[str, str]], warmup: float, duration: float) -> Tally:
    """Open a stream per node (at most 200 new ones a second: the server's default accept rate),
    warm up, then count ``duration`` seconds of acknowledged heartbeats."""
    loop = asyncio.get_running_loop()
    tally = Tally()
    transports = []
    for i, (node_id, token) in enumerate(nodes):
        opened: asyncio.Future[None] = loop.create_future()
        stream = Stream(f"{host}:{port}", node_id, token, tally, opened)
        transport, _ = await loop.create_connection(lambda: stream, host, port)  # noqa: B023 - awaited here
        transports.append(transport)
        await opened
        if i % 150 == 149:
            await asyncio.sleep(1.0)
    await asyncio.sleep(warmup)
    tally.counting = True
    await asyncio.sleep(duration)
    tally.counting = False
    for transport in transports:
        transport.close()
    return tally


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] * 1000 if ordered else float("nan")
