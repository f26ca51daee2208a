"""A reconnect storm: --nodes agents open their streams at the same instant, as after a
control-plane restart, against one `takeover serve` on PostgreSQL.

Each stream that is told 1013 (over the accept rate) retries after the agent's own backoff
(takeover.agent.link.reconnect_delay: full jitter); an accepted one heartbeats every second.
Meanwhile an API client asks /readyz and sends HTTP heartbeats every 50 ms: the control plane
must keep answering them. Prints accepts per second, refusals, the time until every stream was
open, and the probes' latencies.

    .venv/bin/python -m bench.storm --nodes 1000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections import Counter

import httpx

from bench import streamload
from bench.common import pool_on_postgres
from bench.heartbeats import BODY
from takeover.agent.link import reconnect_delay


class Agent(streamload.Stream):
    def __init__(self, storm: Storm, n: int, opened: asyncio.Future[None]) -> None:
        node_id, token = storm.nodes[n]
        super().__init__(f"{storm.host}:{storm.port}", node_id, token, streamload.Tally(), opened)
        self.storm = storm
        self.index = n

    def _received(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x8:
            self.storm.refused += 1
            self.transport.close()
            self.storm.retry(self)
            return
        if opcode == 0x1 and payload.startswith(b'{"type":"ack"'):
            if not self.storm.first_ack.get(id(self)):
                self.storm.first_ack[id(self)] = time.perf_counter()
            asyncio.get_running_loop().call_later(1.0, self._send)
            return
        super()._received(opcode, payload)


class Storm:
    def __init__(self, host: str, port: int, nodes: list[tuple[str, str]]) -> None:
        self.host, self.port, self.nodes = host, port, nodes
        self.refused = 0
        self.failures: Counter[int] = Counter()
        self.first_ack: dict[int, float] = {}
        self.rng = random.Random(1)
        self.tasks: set[asyncio.Task[None]] = set()

    async def open(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        agent = Agent(self, n, loop.create_future())
        await loop.create_connection(lambda: agent, self.host, self.port)

    def retry(self, agent: Agent) -> None:
        n = agent.index
        delay = reconnect_delay(self.failures[n], self.rng)
        self.failures[n] += 1
        task = asyncio.get_running_loop().create_task(self._later(delay, n))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _later(self, delay: float, n: int) -> None:
        await asyncio.sleep(delay)
        await self.open(n)


async def probe(url: str, node: tuple[str, str], stop_at: float) -> tuple[list[float], list[float], int]:
    ready: list[float] = []
    beats: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {node[1]}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while time.perf_counter() < stop_at:
            for into in (ready, beats):
                began = time.perf_counter()
                try:
                    if into is ready:
                        response = await client.get("/readyz")
                    else:
                        response = await client.post(
                            f"/api/v1/nodes/{node[0]}/heartbeat", content=BODY, headers=headers
                        )
                    errors += response.status_code != 200
                except httpx.HTTPError:
                    errors += 1
                into.append(time.perf_counter() - began)
            await asyncio.sleep(0.05)
    return ready, beats, errors


async def run(url: str, nodes: list[tuple[str, str]], probe_node: tuple[str, str], seconds: float) -> None:
    host, port = url.removeprefix("http://").split(":")
    storm = Storm(host, int(port), nodes)
    began = time.perf_counter()
    probing = asyncio.create_task(probe(url, probe_node, began + seconds))
    await asyncio.gather(*(storm.open(n) for n in range(len(nodes))))  # all at once
    ready, beats, errors = await probing
    opened = sorted(t - began for t in storm.first_ack.values())
    per_second = Counter(int(t) for t in opened)
    print(f"{len(nodes)} streams opened at once; {len(opened)} acknowledged within {seconds:.0f} s")
    print(f"refused with 1013 (then retried with the agents' backoff): {storm.refused}")
    print(
        "first heartbeat acknowledged, per second: "
        + ", ".join(f"{per_second[s]}" for s in range(int(seconds)))
    )
    if opened:
        print(f"the last stream was open after {opened[-1]:.1f} s")
    for name, values in (("/readyz", ready), ("HTTP heartbeat", beats)):
        ms = sorted(v * 1000 for v in values)
        print(
            f"{name} during the storm: {len(ms)} calls, median {statistics.median(ms):.1f} ms, "
            f"p99 {ms[min(len(ms) - 1, int(len(ms) * 0.99))]:.1f} ms, max {ms[-1]:.1f} ms"
        )
    print(f"probe errors: {errors}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with pool_on_postgres(args.nodes + 1) as (server, nodes):
        print("accept rate: TAKEOVER_STREAM_ACCEPT_RATE=200/s, burst 200 (the defaults)")
        asyncio.run(run(server, nodes[:-1], nodes[-1], args.seconds))


if __name__ == "__main__":
    main()
