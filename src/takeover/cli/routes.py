"""`takeover routes`: where each instance serves now, and proxies that follow it there."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer

from takeover.cli.client import call
from takeover.cli.output import Output, OutputOption, WatchOption, emit_watching

if TYPE_CHECKING:
    from takeover.follow.follower import Proxy

app = typer.Typer(help="Stable addresses: where each instance serves now, for proxies to follow")
follow_app = typer.Typer(
    help="Keep a running proxy's servers at each instance's current runner", no_args_is_help=True
)
app.add_typer(follow_app, name="follow")

BackendOption = typer.Option(
    "{name}", "--backend", help="the proxy's name for an instance's backend: {name}, {owner}, {number}"
)
WaitOption = typer.Option(
    30.0, min=1, max=300, help="seconds a watch waits for a change; the proxy is checked again after each"
)
LogLevelOption = typer.Option("info", help="debug, info, warning or error")


@app.callback(invoke_without_command=True)
def routes(ctx: typer.Context, output: Output = OutputOption, watch: bool = WatchOption) -> None:
    """Each instance's stable address and the runner it reaches now (a blank target: nobody)."""
    if ctx.invoked_subcommand is not None:
        return

    def frame() -> tuple[str, list[dict[str, Any]], tuple[str, ...], tuple[str, ...]]:
        rows = call("GET", "/api/v1/routes", params={"wait": 0})["routes"]
        return (
            "routes",
            rows,
            ("name", "epoch", "state", "target", "address"),
            ("owner", "instance_id", "node_id"),
        )

    emit_watching(frame, output, watch)


@follow_app.command("haproxy")
def follow_haproxy(
    socket: str = typer.Option(..., help="HAProxy's admin runtime API: a unix socket path or host:port"),
    backend: str = BackendOption,
    server: str = typer.Option("takeover", help="the server, in each followed backend, that this sets"),
    wait: float = WaitOption,
    log_level: str = LogLevelOption,
) -> None:
    """Without reloads: the old runner's server goes to maintenance (its sessions shut) before the
    new address is set and made ready. Backends that hold no such server are left alone."""
    from takeover.follow.haproxy import HAProxyTarget, RuntimeApi

    _run(HAProxyTarget(RuntimeApi(socket), backend, server), wait, log_level)


@follow_app.command("nginx")
def follow_nginx(
    output: Path = typer.Option(..., help="the file of upstreams that your nginx.conf includes"),
    reload: str = typer.Option("nginx -s reload", help="the command that makes nginx read it again"),
    upstream: str = typer.Option("{name}", help="an upstream's name: {name}, {owner}, {number}"),
    wait: float = WaitOption,
    log_level: str = LogLevelOption,
) -> None:
    """Writes one upstream per instance and reloads nginx when any changed."""
    from takeover.follow.nginx import NginxTarget

    if not output.parent.is_dir():
        raise typer.BadParameter(f"{output.parent} is not a directory", param_hint="--output")
    _run(NginxTarget(output, reload, upstream), wait, log_level)


def _run(proxy: Proxy, wait: float, log_level: str) -> None:
    from takeover.follow.follower import follow
    from takeover.follow.watch import RouteWatch
    from takeover.logsetup import configure_logging
    from takeover.secretenv import hide_secrets

    hide_secrets([sys.executable, "-m", "takeover", *sys.argv[1:]])
    configure_logging(log_level, os.environ.get("TAKEOVER_LOG_FORMAT", "console"))
    token = os.environ.get("TAKEOVER_TOKEN") or os.environ.get("TAKEOVER_ADMIN_TOKEN")
    if not token:
        raise typer.BadParameter("set TAKEOVER_TOKEN to a token that sees the instances to route")
    url = os.environ.get("TAKEOVER_URL", "http://127.0.0.1:8080")
    stop = threading.Event()

    def stopped(_signum: int, _frame: FrameType | None) -> None:
        stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stopped)
    watch = RouteWatch(url, token, wait)
    try:
        follow(watch, proxy, stop)
    except KeyboardInterrupt:
        pass
    finally:
        watch.close()
