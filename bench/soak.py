"""Soak: many real agents on LAN timings for minutes, with the test suite running beside them.

A control plane (SQLite) and --agents `takeover agent` processes on streams, with bench.failover_rto's
LAN_TIMINGS (0.25 s heartbeats, fence after 0.75 s, offline after 1.25 s). Once every agent is up,
the test suite (--load) runs in a loop beside them for --minutes, competing for the 2 cores as CI
does. Counts, over the soak only: nodes declared offline (each one false: nothing was killed),
failovers opened, agents that fenced themselves, and the spread of the gaps between a node's
consecutive heartbeats as the store saw them (takeover_heartbeat_gap_seconds).

    .venv/bin/python -m bench.soak --agents 100 --minutes 10
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT
from bench.failover_rto import LAN_TIMINGS
from takeover.localcluster import LocalCluster, wait_until

LOAD = ".venv/bin/python -m pytest tests/unit tests/api -q -x -p no:cacheprovider"


def scrape(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=10).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(
            r"^(takeover_(?:heartbeat_gap_seconds_bucket|nodes_marked_offline_total|"
            r"failovers_opened_total|heartbeats_total|agent_streams)\S*) (\S+)$",
            line,
        )
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--load", default=LOAD, help="run in a loop beside the agents ('' for none)")
    args = parser.parse_args()
    timings = {**LAN_TIMINGS, "TAKEOVER_BRAKE_MIN_NODES": "1000"}
    print("timings: " + ", ".join(f"{k.removeprefix('TAKEOVER_').lower()}={v}" for k, v in timings.items()))
    with (
        tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp,
        LocalCluster(Path(tmp), timings) as cluster,
    ):
        cluster.start_control_plane(env={"TAKEOVER_LOG_LEVEL": "warning"})
        for n in range(args.agents):
            cluster.start_agent(f"n{n:03d}", TAKEOVER_LOG_LEVEL="warning")
        wait_until(
            lambda: scrape(cluster.url).get("takeover_agent_streams") == args.agents, 60, "every stream"
        )
        time.sleep(5)
        logs = [cluster.root / f"agent-n{n:03d}.log" for n in range(args.agents)]
        offsets = [log.stat().st_size for log in logs]  # fence events count from here on
        before = scrape(cluster.url)
        started = time.monotonic()
        loads = 0
        load: subprocess.Popen[bytes] | None = None
        while time.monotonic() - started < args.minutes * 60:
            if args.load and (load is None or load.poll() is not None):
                load = subprocess.Popen(
                    shlex.split(args.load), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                loads += 1
            time.sleep(1)
        soaked = time.monotonic() - started
        after = scrape(cluster.url)
        if load is not None:
            load.kill()
            load.wait()
        fenced = sum(
            log.read_bytes()[start:].count(b"fencing") for log, start in zip(logs, offsets, strict=True)
        )
        nodes = cluster.api.get("/api/v1/nodes").json()
        report(before, after, soaked, loads, fenced, nodes)


def report(
    before: dict[str, float],
    after: dict[str, float],
    soaked: float,
    loads: int,
    fenced: int,
    nodes: list[dict[str, Any]],
) -> None:
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    beats = delta("takeover_heartbeats_total")
    failovers = sum(delta(k) for k in after if k.startswith("takeover_failovers_opened_total"))
    print(
        f"soaked {soaked / 60:.1f} min beside {loads} test-suite run(s); {beats:.0f} heartbeats ({beats / soaked:.0f}/s)"
    )
    print(f"nodes declared offline: {delta('takeover_nodes_marked_offline_total'):.0f} (every one false)")
    print(
        f"failovers opened: {failovers:.0f}; agents that fenced themselves (no ack within fence_after): {fenced}"
    )
    print(f"nodes online at the end: {sum(1 for n in nodes if n['status'] == 'online')} of {len(nodes)}")
    print("gap between a node's consecutive heartbeats (store commit times):")
    edges = sorted(
        (float(k.split('le="')[1].rstrip('"}')), k)
        for k in after
        if "gap_seconds_bucket" in k and "+Inf" not in k
    )
    total = delta('takeover_heartbeat_gap_seconds_bucket{le="+Inf"}')
    below = 0.0
    for edge, key in edges:
        count = delta(key) - below
        below += count
        if count:
            print(f"  <= {edge:6.2f} s: {count:9.0f}  ({count * 100 / total:6.3f} %)")
    print(f"  >  {edges[-1][0]:6.2f} s: {total - below:9.0f}")


if __name__ == "__main__":
    main()
