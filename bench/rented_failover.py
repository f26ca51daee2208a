"""Failover onto rented capacity: SIGKILL of the pool's last node to its instance serving on a
machine rented for it from the fake marketplace (takeover.testing.fakevast: a paid API
cannot run here), split into what the control plane, the marketplace and the agent take.

Real processes on loopback: a control plane on SQLite (1 s heartbeats, offline after 3 s) and
one agent running a counter with a rent policy. Each run kills that agent; the failover finds
no node, rents the cheapest offer, the fake starts the renter's onstart script (a real
`takeover agent` with the env it was sent), which joins; the instance is restored there from
its snapshot. The instance is then deleted, the idle machine given back, a new agent started.

    .venv/bin/python -m bench.rented_failover --runs 10
    .venv/bin/python -m bench.rented_failover --runs 10 --rent-delay 1 --boot-delay 5
    .venv/bin/python -m bench.rented_failover --runs 10 --image --vast-pace
    .venv/bin/python -m bench.rented_failover --runs 10 --image --pool

``--*-delay``: the marketplace's own latency (search, the rent call, the machine's boot), added
by the fake; what is left of the total is takeover's. ``--image``: the counter is a container
image (Podman) and the rented machine boots that image, fetching the agent from the control
plane (the bundle download and unpacking are in the join). ``--vast-pace``: Vast's own minimum
intervals between calls (TAKEOVER_RENT_PACE=1) instead of the fake's 1/20. ``--pool``: the
same kill with a spare node in the pool, for the pool-only failover side by side.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import ROOT  # noqa: F401  (puts the repository on sys.path)
from takeover.examples.image import RENTABLE_IMAGE
from takeover.localcluster import LocalCluster, wait_until
from takeover.testing.fakevast import Delays, FakeVast, offer


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def one_run(cluster: LocalCluster, fake: FakeVast, n: int, image: bool, pool: bool) -> dict[str, float]:
    agent = f"node-{n}"
    region = f"pool-{n}" if pool else None  # a region of its own: the spare is the only place to go
    cluster.start_agent(agent, region)
    extra: dict[str, Any] = {"spec": {"image": RENTABLE_IMAGE, "command": ["/app/serve"]}} if image else {}
    if region:
        extra["preferred_region"] = region
    inst = cluster.create_counter(f"web-{n}", rent={"max_price": 5.0}, **extra)
    if pool:
        cluster.start_agent(f"spare-{n}", region)
    wait_until(lambda: cluster.serving(inst["id"]), 60, "the counter to serve", interval=0.02)
    cluster.hit(inst["id"])
    cluster.snapshot_after(inst["id"], time.time())
    killed = time.time()
    cluster.kill_agent(agent)
    offline = None
    while True:
        if offline is None and (cluster.node(agent) or {}).get("status") == "offline":
            offline = time.time()
        served = cluster.serving(inst["id"], 2)
        if served is not None:
            serving = time.time()
            break
        time.sleep(0.02)
    assert offline is not None
    figures = {"detection": offline - killed}
    if not pool:
        (rental,) = [r for r in cluster.api.get("/api/v1/provider/machines").json() if r["instances"]]
        figures |= {
            "decide": _at(rental["requested_at"]) - offline,
            "rent_call": _at(rental["rented_at"] or rental["joined_at"]) - _at(rental["requested_at"]),
            "join": _at(rental["joined_at"]) - _at(rental["rented_at"] or rental["requested_at"]),
            "restore": serving - _at(rental["joined_at"]),
        }
    figures["total"] = serving - killed
    cluster.ended_failovers(inst["id"], timeout=30)  # serving may come before the record of it
    cluster.api.delete(f"/api/v1/instances/{inst['id']}").raise_for_status()
    if pool:
        return figures
    wait_until(lambda: not fake.live(), 60, "the idle machine to be given back")
    node = cluster.node(agent)
    if node is not None:
        cluster.api.delete(f"/api/v1/nodes/{node['id']}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--search-delay", type=float, default=0.0)
    parser.add_argument("--rent-delay", type=float, default=0.0)
    parser.add_argument("--boot-delay", type=float, default=0.0)
    parser.add_argument(
        "--image", action="store_true", help="a container image, booted by the rented machine"
    )
    parser.add_argument(
        "--vast-pace", action="store_true", help="Vast's own call intervals, not 1/20 of them"
    )
    parser.add_argument("--pool", action="store_true", help="a spare node in the pool: no renting")
    args = parser.parse_args()
    delays = Delays(search=args.search_delay, rent=args.rent_delay, boot=args.boot_delay)
    root = Path(tempfile.mkdtemp(prefix="takeover-rent-bench-"))
    offers = [offer(i, dph_total=0.2 + i / 100) for i in range(1, args.runs + 5)]
    results: list[dict[str, float]] = []
    with ExitStack() as stack:
        cluster = stack.enter_context(LocalCluster(root, containers=args.image))
        boot = cluster.rentable_image() if args.image else None
        pace = 1.0 if args.vast_pace else 0.05
        fake = stack.enter_context(FakeVast(root / "vast", offers, delays=delays, boot=boot, pace=pace))
        agent_env = {"TAKEOVER_SNAPSHOT_DIR": str(cluster.snapshot_dir), "SNAPSHOT_INTERVAL": "1"}
        env = fake.serve_env("local", agent_env, TAKEOVER_RENT_MAX_HOURLY="10", TAKEOVER_RENT_IDLE_GRACE="1")
        cluster.start_control_plane(env=env)
        for n in range(args.runs):
            figures = one_run(cluster, fake, n, args.image, args.pool)
            results.append(figures)
            print(f"run {n + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in figures.items()), flush=True)
    print(
        f"\nfake marketplace delays: search {args.search_delay} s, rent {args.rent_delay} s, "
        f"boot {args.boot_delay} s ({sum((args.search_delay, args.rent_delay, args.boot_delay)):.2f} s); "
        f"pace {pace}; {'image' if args.image else 'process'}{'; pool only' if args.pool else ''}"
    )
    for key in results[0]:
        values = sorted(r[key] for r in results)
        print(
            f"{key:>9}: median {statistics.median(values):.2f} s, min {values[0]:.2f}, max {values[-1]:.2f}"
        )


if __name__ == "__main__":
    main()
