"""Scale by simulation: the control plane's own code on a real PostgreSQL, with 10,000 to
100,000 simulated nodes (bench/scalepool.py says what is real and what is simulated).

    .venv/bin/python -m bench.scale heartbeats --nodes 10000 100000
    .venv/bin/python -m bench.scale placements --nodes 10000 100000
    .venv/bin/python -m bench.scale failover --nodes 10000 --dead 1000 --per-node 10

heartbeats: every node heartbeats every 30 s (the default) through the store's group commit, with
    the leader's control loop (monitor, standbys, executor) running beside in this process, in its
    own (``--leader process``) or not at all (``--leader none``); acknowledgement latency is from
    the moment a heartbeat is due to its batch's commit.
placements: instances created through the store's placement (best node, atomic slot claim, insert,
    commit) from one or more threads; and one best-node selection alone.
failover: ``--dead`` nodes stop at once; the leader detects them, opens failovers (the brake and
    the rate limit as given) and moves every instance; done when each has come up elsewhere.

PostgreSQL runs with fsync on, as in production (``--no-fsync`` to compare).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import multiprocessing
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import psutil
import structlog

from bench.common import database
from bench.scalepool import Leader, Pump, seed
from takeover.control.loop import ControlLoop
from takeover.control.telemetry import FailoverTelemetry
from takeover.control.values import AgentTimings
from takeover.domain.models import Instance, InstanceSpec, InstanceState
from takeover.main import controller_loop, open_store, tune_gc
from takeover.metrics import Metrics
from takeover.settings import Settings
from takeover.store import Store
from takeover.store.changes import ChangeFeed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


class Cpu:
    """CPU seconds of this process (and its ended children) and of the PostgreSQL server's processes,
    between marks."""

    def __init__(self, url: str) -> None:
        port = int(url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
        self.server = [
            p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres" and _listens(p, port)
        ]
        self.me = psutil.Process()
        self.mark()

    def _total(self) -> tuple[float, float]:
        mine = sum(self.me.cpu_times()[:4])  # with the leader's process, once it has ended
        server = 0.0
        for root in self.server:
            for p in [root, *root.children(recursive=True)]:
                with suppress(psutil.Error):
                    server += sum(p.cpu_times()[:2])
        return mine, server

    def mark(self) -> None:
        self._at, (self._mine, self._server) = time.monotonic(), self._total()

    def since(self) -> str:
        mine, server = self._total()
        wall = time.monotonic() - self._at
        return f"CPU: control plane {100 * (mine - self._mine) / wall:.0f} %, PostgreSQL {100 * (server - self._server) / wall:.0f} % of a core"


def _listens(process: psutil.Process, port: int) -> bool:
    try:
        return any(c.laddr and c.laddr.port == port for c in process.net_connections(kind="tcp"))
    except psutil.Error:
        return False


@contextmanager
def control_plane(args: argparse.Namespace, **extra: object) -> Iterator[tuple[Settings, Store, str]]:
    with tempfile.TemporaryDirectory() as tmp, database("postgres", Path(tmp), durable=args.fsync) as url:
        settings = Settings(database_url=url, data_dir=Path(tmp), replica_id="bench-leader", **extra)  # type: ignore[arg-type]
        store = open_store(settings)
        try:
            yield settings, store, url
        finally:
            store.engine.dispose()


def _loop(settings: Settings, store: Store) -> ControlLoop:
    timings = AgentTimings(
        settings.heartbeat_interval, settings.fence_after, settings.sync_interval, settings.fence_grace
    )
    return controller_loop(settings, store, _Clock(), FailoverTelemetry(Metrics()), timings, None)


def leader_of(settings: Settings, store: Store, pump: Pump) -> Leader:
    return Leader(_loop(settings, store), pump.on_change, settings.monitor_interval)


class _Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def elapsed(self) -> float:
        return time.monotonic()


def run_beside(args: argparse.Namespace, settings: Settings, store: Store, pump: Pump) -> list[float]:
    """The leader's loop for ``args.duration`` beside the heartbeats: in this process (as one
    `takeover serve` runs both), in a process of its own (a replica that only runs the
    controllers, TAKEOVER_CONTROLLERS=false on the others), or not at all. Its cycles' seconds."""
    if args.leader == "none":
        time.sleep(args.duration)
        return [float("nan")]
    if args.leader == "process":
        results: multiprocessing.Queue[list[float]] = multiprocessing.get_context("spawn").Queue()
        child = multiprocessing.get_context("spawn").Process(
            target=_leader_alone, args=(settings, args.duration, results)
        )
        child.start()
        cycles = results.get()
        child.join()
        return cycles
    leader = leader_of(settings, store, pump).start()
    time.sleep(args.duration)
    leader.stop()
    return [c[1] for c in leader.cycles]


def _leader_alone(settings: Settings, duration: float, results: multiprocessing.Queue[list[float]]) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    store = open_store(settings, migrated=True)
    tune_gc()
    leader = Leader(_loop(settings, store), threading.Event(), settings.monitor_interval).start()
    time.sleep(duration)
    leader.stop()
    results.put([c[1] for c in leader.cycles])


def heartbeats(args: argparse.Namespace) -> None:
    print(
        f"{'nodes':>8} {'offered/s':>9} {'acked/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
        f"{'batch':>6} {'cycle p50 s':>11} {'cycle max s':>11}  cpu"
    )
    for count in args.nodes:
        with control_plane(args) as (settings, store, url):
            pool = seed(store, count, args.per_node, 16, 10)
            tune_gc()  # as `takeover serve` does once started
            pump = Pump(store, pool, settings.heartbeat_interval, settings.heartbeat_batch, 0.0).start()
            cpu = Cpu(url)
            cycles = run_beside(args, settings, store, pump)
            since = time.monotonic() - args.duration
            cpu_line = cpu.since()
            pump.stop()
            waited = [w * 1000 for at, w in pump.latencies if at >= since]
            print(
                f"{count:>8} {count / settings.heartbeat_interval:>9.0f} {len(waited) / args.duration:>8.0f} "
                f"{pct(waited, 0.5):>7.1f} {pct(waited, 0.99):>7.1f} {max(waited):>7.1f} "
                f"{statistics.mean(pump.batches):>6.1f} {pct(cycles, 0.5):>11.2f} {max(cycles):>11.2f}  "
                f"{cpu_line}; errors {pump.errors}",
                flush=True,
            )


def placements(args: argparse.Namespace) -> None:
    print(
        f"{'nodes':>8} {'threads':>7} {'placed':>7} {'placements/s':>12} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'select p50 ms':>13} {'select p99 ms':>13}"
    )
    for count in args.nodes:
        with control_plane(args) as (_, store, _url):
            seed(store, count, 0, 16, 10)
            tune_gc()
            selects = []
            for _ in range(1000):
                began = time.perf_counter()
                store.nodes.select(None, frozenset())
                selects.append((time.perf_counter() - began) * 1000)
            for threads in args.threads:
                waited: list[float] = []

                def place(k: int, threads: int = threads, out: list[float] = waited) -> None:
                    instance = Instance(
                        id=uuid4(),
                        owner="bench",
                        name=f"p{threads}-{k}",
                        spec=InstanceSpec(("sleep", "1")),
                        node_id=None,
                        epoch=0,
                        state=InstanceState.ASSIGNED,
                        created_at=datetime.now(UTC),
                    )
                    began = time.perf_counter()
                    store.instances.create(instance, datetime.now(UTC))
                    out.append((time.perf_counter() - began) * 1000)

                began = time.perf_counter()
                with concurrent.futures.ThreadPoolExecutor(threads) as pool:
                    list(pool.map(place, range(args.instances)))
                rate = args.instances / (time.perf_counter() - began)
                print(
                    f"{count:>8} {threads:>7} {args.instances:>7} {rate:>12.0f} {pct(waited, 0.5):>7.2f} "
                    f"{pct(waited, 0.99):>7.2f} {pct(selects[100:], 0.5):>13.2f} {pct(selects[100:], 0.99):>13.2f}",
                    flush=True,
                )


def failover(args: argparse.Namespace) -> None:
    extra = {"failover_rate": args.failover_rate, "failover_burst": args.failover_burst}
    with control_plane(args, **extra) as (settings, store, url):
        pool = seed(store, args.nodes[0], args.per_node, args.per_node + 6, 10)
        tune_gc()
        pump = Pump(store, pool, settings.heartbeat_interval, settings.heartbeat_batch, args.restore).start()
        feed = ChangeFeed(store.engine.url, pump.push, lambda: None)
        feed.start()
        leader = leader_of(settings, store, pump).start()
        time.sleep(settings.heartbeat_interval)  # every node heartbeats once under the leader's watch
        dead = random.Random(7).sample(pool, args.dead)  # across regions: no region's majority
        moving = {i for n in dead for i in n.running}
        killed = time.monotonic()
        for node in dead:
            node.alive = False
        cpu = Cpu(url)
        deadline = killed + settings.offline_after + args.timeout
        while time.monotonic() < deadline and not moving <= set(pump.started):
            time.sleep(0.5)
        cpu_line = cpu.since()
        leader.stop()
        feed.close()
        pump.stop()
        report_failover(settings, leader, pump, moving, killed, cpu_line)


def report_failover(
    settings: Settings, leader: Leader, pump: Pump, moving: set[str], killed: float, cpu_line: str
) -> None:
    opening = [c for c in leader.cycles if c[2]]
    up = sorted(pump.started[i] - killed for i in moving if i in pump.started)
    print(
        f"killed at 0.0 s; offline_after {settings.offline_after:.0f} s, "
        f"rate {settings.failover_rate:g}/s, burst {settings.failover_burst}"
    )
    if opening:
        first, last = opening[0][0] - killed, opening[-1][0] - killed
        print(
            f"failovers opened: first at {first:.1f} s, last at {last:.1f} s, "
            f"{sum(c[2] for c in opening)} in {len(opening)} cycles"
        )
        print(
            f"instances up elsewhere: {len(up)} of {len(moving)}; "
            + (
                f"first at {up[0]:.1f} s, median {pct(up, 0.5):.1f} s, last at {up[-1]:.1f} s; "
                f"from the first failover opened to the last instance up: {up[-1] - first:.1f} s"
                if up
                else ""
            )
        )
    else:
        print(f"no failover opened; instances up elsewhere: {len(up)} of {len(moving)}")
    cycles = [c[1] for c in leader.cycles if c[0] > killed]
    steps = sum(c[3] for c in leader.cycles if c[0] > killed)
    print(
        f"leader cycles after the kill: {len(cycles)}, p50 {pct(cycles, 0.5):.2f} s, max {max(cycles):.2f} s; "
        f"{steps} failover steps; heartbeat errors {pump.errors}; {cpu_line}"
    )
    after = [w * 1000 for at, w in pump.latencies if at > killed]
    print(
        f"heartbeats meanwhile: {len(after)}, p50 {pct(after, 0.5):.1f} ms, p99 {pct(after, 0.99):.1f} ms, "
        f"max {max(after):.1f} ms"
    )
    windows: dict[int, list[float]] = {}
    for at, waited in pump.latencies:
        if at > killed:
            windows.setdefault(int((at - killed) // 30) * 30, []).append(waited)
    print(
        "slowest heartbeat acknowledgement per 30 s after the kill: "
        + ", ".join(f"{start} s: {max(w):.1f} s" for start, w in sorted(windows.items()))
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["heartbeats", "placements", "failover"])
    parser.add_argument("--nodes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--per-node", type=int, default=0, help="instances on every node (failover: 10)")
    parser.add_argument("--duration", type=float, default=90.0, help="heartbeats: seconds measured")
    parser.add_argument("--instances", type=int, default=10_000, help="placements: how many")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4], help="placements: at once")
    parser.add_argument("--dead", type=int, default=1000, help="failover: nodes that die at once")
    parser.add_argument("--restore", type=float, default=0.0, help="failover: seconds a start takes")
    parser.add_argument("--failover-rate", type=float, default=1000.0, help="failover: per second")
    parser.add_argument("--failover-burst", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=300.0, help="failover: after offline_after")
    parser.add_argument("--no-fsync", dest="fsync", action="store_false")
    parser.add_argument(
        "--leader",
        choices=["inside", "process", "none"],
        default="inside",
        help="heartbeats: the control loop in this process, in its own, or none",
    )
    args = parser.parse_args()
    if args.what == "failover" and args.per_node == 0:
        args.per_node = 10
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    {"heartbeats": heartbeats, "placements": placements, "failover": failover}[args.what](args)


if __name__ == "__main__":
    main()
