"""Heartbeat throughput and latency of one `takeover serve` process, over real HTTP.

Registers --nodes nodes through the API, then wrk (C, so the load generator costs little
CPU on this 2-core machine) sends heartbeats round-robin as those nodes, each with its own
token, for --duration seconds. Prints heartbeats/s and latency percentiles per backend.

    .venv/bin/python bench/heartbeats.py --backend sqlite postgres
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import httpx
import psutil

from bench.common import backend_parser, database, ensure_debian_tool, start, stop

BODY = '{"cpu_load":0.2,"memory_load":0.3,"avg_latency_ms":4,"instances":[]}'


def register(url: str, count: int) -> list[tuple[str, str]]:
    with httpx.Client(base_url=url, headers={"Authorization": "Bearer admin-secret"}, timeout=30) as api:
        nodes = []
        for i in range(count):
            body = {"name": f"n{i}", "region": f"r{i % 4}", "base_url": f"http://127.0.0.1:{10000 + i}"}
            data = api.post("/api/v1/nodes", json=body).json()
            nodes.append((data["id"], data["api_token"]))
        return nodes


def lua_script(nodes: list[tuple[str, str]], path: Path) -> Path:
    entries = ",\n".join(f'{{"{i}", "{t}"}}' for i, t in nodes)
    path.write_text(
        f"local nodes = {{\n{entries}\n}}\n"
        "local i = math.random(#nodes)\n"
        f"local body = '{BODY}'\n"
        "request = function()\n"
        "  i = i % #nodes + 1\n"
        "  local n = nodes[i]\n"
        '  return wrk.format("POST", "/api/v1/nodes/" .. n[1] .. "/heartbeat",\n'
        '    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. n[2]}, body)\n'
        "end\n"
    )
    return path


def run_wrk(url: str, script: Path, duration: int, connections: int) -> dict[str, float]:
    wrk = ensure_debian_tool("wrk", "wrk")
    args = [wrk, "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "90", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        result[f"p{pct}_ms"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = float(errors.group(1)) if errors else 0.0
    return result


def bench(backend: str, nodes: int, duration: int, connections: int, workers: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, database(backend, Path(tmp)) as url:
        env = {
            "TAKEOVER_DATABASE_URL": url,
            "TAKEOVER_LOG_LEVEL": "warning",
            "TAKEOVER_WORKERS": str(workers),
        }
        process, server = start(Path(tmp), **env)
        try:
            registered = register(server, nodes)
            script = lua_script(registered, Path(tmp) / "hb.lua")
            run_wrk(server, script, 2, connections)  # warm-up
            before = cpu_seconds(process.pid)
            result = run_wrk(server, script, duration, connections)
            # Server CPU per heartbeat: steadier than throughput on a shared, noisy machine.
            result["cpu_ms"] = (cpu_seconds(process.pid) - before) * 1000 / (result["rps"] * duration)
            return result
        finally:
            stop(process)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the server and its worker processes."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        times = proc.cpu_times()
        total += times.user + times.system
    return total


def main() -> None:
    parser = backend_parser(__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print(f"{args.nodes} nodes, {args.connections} connections, {args.duration} s per run")
    print(
        f"{'backend':<10} {'workers':>7} {'heartbeats/s':>12} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
        f"{'cpu ms/beat':>11} {'errors':>6}"
    )
    for backend in args.backend:
        for workers in args.workers:
            r = bench(backend, args.nodes, args.duration, args.connections, workers)
            print(
                f"{backend:<10} {workers:>7} {r['rps']:>12.0f} {r['p50_ms']:>8.1f} {r['p90_ms']:>8.1f} "
                f"{r['p99_ms']:>8.1f} {r['cpu_ms']:>11.3f} {r['errors']:>6.0f}",
                flush=True,
            )
    print("cpu ms/beat: CPU time of the server processes per heartbeat served; wrk shares the 2 cores")


if __name__ == "__main__":
    main()
