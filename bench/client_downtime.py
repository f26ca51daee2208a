"""What a client sees of a failover through a real HAProxy that `takeover routes follow haproxy`
keeps at the current runner: from its first failed request to its first answered one, beside the
recovery time to the new endpoint (RTO, as bench.failover_rto measures it) in the same runs.

Real processes on loopback: a control plane on SQLite, three agents, HAProxy from the shipped
deploy/routes/haproxy.cfg (HTTP frontend, backend `web`) and the follower. A client sends
`GET /` through HAProxy every 10 ms on a new connection (timeout 5 s); each run places a fresh
counter named `web`, waits until its data is protected, SIGKILLs its node, and ends once the
client has been answered by epoch 2 for a second. Client downtime is the client's own view:
from its last answer before the kill to its first answer from the new runner, whether the
requests between failed or were held. Every answer names the runner's epoch: no answer may
come from an older epoch than one already answered.

    .venv/bin/python -m bench.client_downtime --runs 10 --timings lan \
        --strategy cpu_standby warm_pool regional_volume
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import ROOT  # noqa: F401  (puts the repository on sys.path)
from bench.failover_rto import AGENTS, LAN_TIMINGS, bring_back, percentile, place, protected
from takeover.localcluster import ADMIN_TOKEN, FAST_TIMINGS, LocalCluster, wait_until
from tests.e2e.balancer import ProxyClient, routed_proxy  # the tests' HAProxy, follower and client

Answer = tuple[float, int | None]  # (monotonic moment it ended, epoch that answered or None: failed)


def downtime(answers: list[Answer], killed: float) -> tuple[float, int]:
    """(last answer before the kill to the first from epoch 2, requests failed meanwhile)."""
    last = max(t for t, e in answers if t < killed and e is not None)
    first = min(t for t, e in answers if e == 2)
    return first - last, sum(1 for t, e in answers if last < t < first and e is None)


Result = tuple[float, float, int, bool]  # RTO s, client downtime s, requests failed, epochs in order


def one_run(cluster: LocalCluster, client: ProxyClient, strategy: str, n: int) -> Result:
    """One kill, as the client and the API saw it."""
    placed, extra = place(cluster, "web", strategy, n)
    start = len(client.answers)
    wait_until(lambda: any(e == 1 for _, e in client.answers[start:]), 30, "the client answered by epoch 1")
    cluster.hit(placed["id"])
    since = time.time()
    wait_until(
        lambda: protected(cluster, placed, strategy, since), 300, "the data to be protected", interval=0.2
    )
    victim = cluster.node_name(placed["node_id"])
    assert victim is not None
    killed = time.monotonic()
    cluster.kill_agent(victim)
    serving = None
    while serving is None:
        if cluster.serving(placed["id"], epoch=2):
            serving = time.monotonic()
        elif time.monotonic() - killed > 300:
            raise TimeoutError(f"run {n}: not serving 300 s after the kill")
        time.sleep(0.02)
    wait_until(lambda: any(e == 2 for _, e in client.answers[start:]), 60, "the client answered by epoch 2")
    time.sleep(1)
    answers = client.answers[start:]
    epochs = [e for _, e in answers if e is not None]
    bring_back(cluster, victim, placed["id"], extra)
    down, failed = downtime(answers, killed)
    return serving - killed, down, failed, epochs == sorted(epochs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument(
        "--strategy",
        nargs="+",
        default=["cpu_standby"],
        choices=["cpu_standby", "warm_pool", "regional_volume"],
    )
    parser.add_argument("--timings", choices=["fast", "lan"], default="lan")
    args = parser.parse_args()
    base = LAN_TIMINGS if args.timings == "lan" else FAST_TIMINGS
    timings = {**base, "TAKEOVER_SYNC_INTERVAL": "1", "TAKEOVER_BRAKE_MIN_NODES": "10"}
    print("timings: " + ", ".join(f"{k.removeprefix('TAKEOVER_').lower()}={v}" for k, v in timings.items()))
    summary: list[tuple[str, list[Result]]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-downtime-") as tmp,
        LocalCluster(Path(tmp), timings=timings) as cluster,
    ):
        url = cluster.start_control_plane()
        for name in AGENTS:
            cluster.start_agent(name, NODE_VOLUME_ROOT=str(cluster.root / "volumes"))
        with (
            routed_proxy(url, ADMIN_TOKEN, Path(tmp), wait=30) as proxy,
            ProxyClient(proxy.http, "web.bench", every=0.01, timeout=5) as client,
        ):
            for strategy in args.strategy:
                results = []
                for n in range(args.runs):
                    result = one_run(cluster, client, strategy, n)
                    results.append(result)
                    print(
                        f"{strategy:16s} run {n + 1:2d}: RTO {result[0]:5.2f} s, client downtime {result[1]:5.2f} s "
                        f"({result[1] - result[0]:+5.2f} s; {result[2]} requests failed), epochs in order: {result[3]}",
                        flush=True,
                    )
                summary.append((strategy, results))
    print(
        f"\n{'strategy':16s} {'RTO to the new endpoint':>30s} {'client downtime via HAProxy':>34s} {'gap':>18s}"
    )
    for strategy, results in summary:
        rto = [r[0] for r in results]
        down = [r[1] for r in results]
        gap = [r[1] - r[0] for r in results]
        print(
            f"{strategy:16s} median {statistics.median(rto):5.2f} s p95 {percentile(rto, 95):5.2f} s   "
            f"median {statistics.median(down):5.2f} s p95 {percentile(down, 95):5.2f} s   "
            f"median {statistics.median(gap):+5.2f} s max {max(gap):+5.2f} s   "
            f"failed requests {sum(r[2] for r in results)}, older epoch after newer: {sum(not r[3] for r in results)} runs"
        )


if __name__ == "__main__":
    main()
