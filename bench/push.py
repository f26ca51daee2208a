"""Desired-state push latency with 1,000 connected agents, on PostgreSQL.

One `takeover serve` and --nodes streams held by bench.streamload in this process, each sending
a heartbeat every second (1,000/s in the background). Then --placements instances are created
one after another through the API; each is placed on some node, whose stream should receive a
``desired`` frame naming it. Latency: from sending the create request (so an upper bound: it
includes the request itself, the placement's commit, the NOTIFY and the push) to the frame's
arrival on the stream.

    .venv/bin/python -m bench.push --nodes 1000 --placements 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx

from bench import streamload
from bench.common import pool_on_postgres


class Agent(streamload.Stream):
    """Heartbeats every second (open loop) and notes when each pushed instance arrives."""

    arrived: dict[str, tuple[float, str]]

    def _received(self, opcode: int, payload: bytes) -> None:
        if opcode != 0x1:
            super()._received(opcode, payload)  # pings are answered
            return
        now = time.perf_counter()
        message = json.loads(payload)
        for item in message["reply"]["desired"]:  # learnt from a push, or from an ack that came first
            self.arrived.setdefault(item["id"], (now, message["type"]))
        if message["type"] == "ack":
            self.tally.acks += 1
            asyncio.get_running_loop().call_later(1.0, self._send)


async def run(url: str, nodes: list[tuple[str, str]], placements: int) -> tuple[list[float], int]:
    host, port = url.removeprefix("http://").split(":")
    loop = asyncio.get_running_loop()
    tally = streamload.Tally()
    arrived: dict[str, tuple[float, str]] = {}
    for i, (node_id, token) in enumerate(nodes):
        opened: asyncio.Future[None] = loop.create_future()
        agent = Agent(f"{host}:{port}", node_id, token, tally, opened)
        agent.arrived = arrived
        await loop.create_connection(lambda: agent, host, int(port))  # noqa: B023 - awaited here
        await opened
        if i % 150 == 149:
            await asyncio.sleep(1.0)
    await asyncio.sleep(3)
    sent: dict[str, float] = {}
    answered: list[float] = []
    replied: dict[str, float] = {}  # when the create request's answer came: after the commit
    headers = {"Authorization": "Bearer admin-secret"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as api:
        for n in range(placements):
            began = time.perf_counter()
            made = await api.post(
                "/api/v1/instances", json={"name": f"i{n}", "spec": {"command": ["sleep", "1"]}}
            )
            made.raise_for_status()
            sent[made.json()["id"]] = began
            answered.append(time.perf_counter() - began)
            replied[made.json()["id"]] = time.perf_counter()
            await asyncio.sleep(0.05)
    await asyncio.sleep(2)
    took = sorted(a * 1000 for a in answered)
    print(
        f"the create request itself: median {statistics.median(took):.1f} ms, p99 {took[int(len(took) * 0.99)]:.1f} ms"
    )
    after = sorted((arrived[i][0] - replied[i]) * 1000 for i in sent if i in arrived)
    print(
        "its answer (the commit is before it) -> the node's stream carries it: "
        f"median {statistics.median(after):.1f} ms, p99 {after[int(len(after) * 0.99)]:.1f} ms "
        "(negative: the push came first)"
    )
    by_ack = sum(1 for i in sent if i in arrived and arrived[i][1] == "ack")
    print(f"{by_ack} of {len(sent)} learnt from a heartbeat's ack before any push")
    missing = len(set(sent) - set(arrived))
    return [arrived[i][0] - t for i, t in sent.items() if i in arrived], missing


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--placements", type=int, default=300)
    args = parser.parse_args()
    with pool_on_postgres(args.nodes) as (server, nodes):
        latencies, missing = asyncio.run(run(server, nodes, args.placements))
    ms = sorted(x * 1000 for x in latencies)
    print(f"{args.nodes} streams, {len(ms)} placements reached their node, {missing} not within 2 s")
    print(
        f"create request sent -> the node's stream carries it: median {statistics.median(ms):.1f} ms, "
        f"p90 {ms[int(len(ms) * 0.9)]:.1f} ms, p99 {ms[min(len(ms) - 1, int(len(ms) * 0.99))]:.1f} ms, "
        f"max {ms[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
