"""Heartbeat throughput and latency of one `takeover serve` process, over HTTP and over streams.

Registers --nodes nodes through the API. HTTP: wrk (C, so the load generator costs little CPU
on this 2-core machine) sends heartbeats round-robin as those nodes, each with its own token,
over --connections connections. Stream: bench.streamload holds one stream per node in this
process and sends each node's next heartbeat as soon as its previous one is acknowledged.
Both for --duration seconds after a warm-up; prints heartbeats/s, latency percentiles, and the
CPU per heartbeat of the server and of the load generator.

    .venv/bin/python -m bench.heartbeats --backend postgres --transport http stream --workers 1
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from bench import streamload
from bench.common import backend_parser, database, ensure_debian_tool, register, start, stop

BODY = '{"cpu_load":0.2,"memory_load":0.3,"avg_latency_ms":4,"instances":[]}'


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


def run_streams(url: str, nodes: list[tuple[str, str]], duration: int) -> dict[str, float]:
    import uvloop

    host, port = url.removeprefix("http://").split(":")
    started = time.process_time()
    tally = uvloop.run(streamload.drive(host, int(port), nodes, 2.0, duration))
    lat = tally.latencies
    result = {
        "rps": tally.acks / duration,
        "errors": float(tally.errors),
        "gen_cpu_s": time.process_time() - started,
    }
    result |= {f"p{p}_ms": streamload.percentile(lat, p) for p in (50, 90, 99)}
    if tally.closes:
        print("closed:", sorted(set(tally.closes))[:5])
    return result


def bench(
    backend: str, transport: str, nodes: int, duration: int, connections: int, workers: int
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, database(backend, Path(tmp)) as url:
        env = {
            "TAKEOVER_DATABASE_URL": url,
            "TAKEOVER_LOG_LEVEL": "warning",
            "TAKEOVER_WORKERS": str(workers),
        }
        process, server = start(Path(tmp), **env)
        try:
            registered = register(server, nodes)
            if transport == "stream":
                before = cpu_seconds(process.pid)
                result = run_streams(server, registered, duration)
                beats = result["rps"] * duration
                # the connects and the warm-up are in both CPU figures: an upper bound per heartbeat
                result["cpu_ms"] = (cpu_seconds(process.pid) - before) * 1000 / beats
                result["gen_cpu_ms"] = result["gen_cpu_s"] * 1000 / beats
                return result
            script = lua_script(registered, Path(tmp) / "hb.lua")
            run_wrk(server, script, 2, connections)  # warm-up
            before = cpu_seconds(process.pid)
            result = run_wrk(server, script, duration, connections)
            # Server CPU per heartbeat: steadier than throughput on a shared, noisy machine.
            result["cpu_ms"] = (cpu_seconds(process.pid) - before) * 1000 / (result["rps"] * duration)
            result["gen_cpu_ms"] = float("nan")  # wrk's: not measured
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
    parser.add_argument("--transport", nargs="+", choices=["http", "stream"], default=["http", "stream"])
    args = parser.parse_args()
    print(
        f"{args.nodes} nodes, {args.connections} HTTP connections or a stream per node, {args.duration} s per run"
    )
    print(
        f"{'backend':<10} {'transport':<9} {'workers':>7} {'heartbeats/s':>12} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'cpu ms/beat':>11} {'gen ms/beat':>11} {'errors':>6}"
    )
    for backend in args.backend:
        for workers in args.workers:
            for transport in args.transport:
                r = bench(backend, transport, args.nodes, args.duration, args.connections, workers)
                print(
                    f"{backend:<10} {transport:<9} {workers:>7} {r['rps']:>12.0f} {r['p50_ms']:>8.1f} "
                    f"{r['p90_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['cpu_ms']:>11.3f} {r['gen_cpu_ms']:>11.3f} "
                    f"{r['errors']:>6.0f}",
                    flush=True,
                )
    print("cpu ms/beat: CPU time of the server processes per heartbeat answered; gen: the load generator's")


if __name__ == "__main__":
    main()
