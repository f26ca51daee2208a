"""How long the web console's pages take with a large pool: 1,000 nodes and 10,000 instances.

Seeds the store through the services (nodes registered, instances placed, failovers run to
their end), then times each page two ways: on the server (the request through the ASGI app,
store reads and template rendering included) and in a real Chromium against a `takeover serve`
process on the same store (Navigation Timing: request start to the DOM ready).

    .venv/bin/python bench/console.py --backend sqlite postgres
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from bench.common import backend_parser, database, start, stop
from takeover.console.session import COOKIE
from takeover.control.values import InstanceDraft, NodeDraft, hash_token
from takeover.domain.failover import FailoverReason
from takeover.domain.heartbeat import Heartbeat
from takeover.domain.models import InstanceSpec, Principal, Role
from takeover.logsetup import configure_logging
from takeover.main import Runtime, build
from takeover.settings import Settings
from tests.e2e.browser import chromium

ADMIN = "admin-secret"
ME = Principal(Role.ADMIN, "admin")


def seed(runtime: Runtime, nodes: int, instances: int, failovers: int) -> dict[str, str]:
    services = runtime.services
    made = [
        services.register_node(NodeDraft(f"n{i:04d}", f"r{i % 4}", f"http://127.0.0.1:{10000 + i}", 20))
        for i in range(nodes)
    ]
    now = services.clock.now()
    beats = [
        (hash_token(token), Heartbeat(node.id, cpu_load=i % 7 / 10, memory_load=0.3, avg_latency_ms=5))
        for i, (node, token) in enumerate(made)
    ]
    runtime.store.nodes.apply_heartbeats(beats, now)
    spec = InstanceSpec(command=("sleep", "1000"))
    placed = [services.create_instance(ME, InstanceDraft(f"i{i:05d}", spec)) for i in range(instances)]
    for instance in placed[:failovers]:
        failover = services.start_failover(ME, instance.id, FailoverReason.MANUAL, None)
        services.finish_failover(failover.id, False, "ended by the bench")  # a finished row to show
    runtime.store.scores.sample(now)
    return {
        "pool": "/ui",
        "pool, page 5": "/ui?page=5",
        "instances": "/ui/instances",
        "instances, page 50": "/ui/instances?page=50",
        "failovers": "/ui/failovers",
        "system": "/ui/system",
        "a node": f"/ui/nodes/{made[0][0].id}",
        "an instance": f"/ui/instances/{placed[0].id}",
    }


def server_times(runtime: Runtime, pages: dict[str, str], rounds: int) -> dict[str, list[float]]:
    client = TestClient(runtime.app)
    client.cookies.set(COOKIE, ADMIN)
    times: dict[str, list[float]] = {}
    for name, path in pages.items():
        client.get(path)  # warm: templates compiled, connections open
        for _ in range(rounds):
            started = time.perf_counter()
            response = client.get(path)
            times.setdefault(name, []).append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (path, response.status_code)
    return times


def browser_times(url: str, pages: dict[str, str], rounds: int) -> dict[str, list[float]]:
    """Navigation Timing in Chromium: from the request's start to DOMContentLoaded's end."""
    times: dict[str, list[float]] = {}
    with chromium() as driver:
        driver.get(url + "/ui/login")
        driver.add_cookie({"name": COOKIE, "value": ADMIN, "path": "/ui"})
        for name, path in pages.items():
            driver.get(url + path)
            for _ in range(rounds):
                driver.get(url + path)
                entry: dict[str, Any] = driver.execute_script(
                    "return performance.getEntriesByType('navigation')[0].toJSON()"
                )
                times.setdefault(name, []).append(entry["domContentLoadedEventEnd"] - entry["requestStart"])
    return times


def report(title: str, times: dict[str, list[float]]) -> None:
    print(f"  {title}")
    print(f"    {'page':<20} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
    for name, samples in times.items():
        ordered = sorted(samples)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        print(
            f"    {name:<20} {statistics.median(samples):>10.1f} {p95:>8.1f} {max(samples):>8.1f}", flush=True
        )


def bench(backend: str, nodes: int, instances: int, failovers: int, rounds: int, browser: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp, database(backend, Path(tmp)) as url:
        settings = Settings.model_validate(
            {
                "database_url": url,
                "admin_token": ADMIN,
                "data_dir": tmp,
                "controllers": False,
                "log_level": "warning",
            }
        )
        configure_logging("warning", "console")
        runtime = build(settings)
        started = time.monotonic()
        pages = seed(runtime, nodes, instances, failovers)
        print(
            f"{backend}: seeded {nodes} nodes, {instances} instances, {failovers} failovers in {time.monotonic() - started:.0f} s"
        )
        report("server (ASGI request, store reads and rendering)", server_times(runtime, pages, rounds))
        runtime.store.engine.dispose()
        if not browser:
            return
        process, server = start(Path(tmp), TAKEOVER_DATABASE_URL=url, TAKEOVER_LOG_LEVEL="warning")
        try:
            report("Chromium (request start to DOMContentLoaded)", browser_times(server, pages, rounds))
        finally:
            stop(process)


def main() -> None:
    parser = backend_parser(__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--failovers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--no-browser", action="store_true", help="server timing only")
    args = parser.parse_args()
    for backend in args.backend:
        bench(backend, args.nodes, args.instances, args.failovers, args.rounds, not args.no_browser)


if __name__ == "__main__":
    main()
