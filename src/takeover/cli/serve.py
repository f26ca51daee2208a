"""`takeover serve`: the control plane (API + controllers when this replica may lead)."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import typer
import uvicorn
from pydantic import ValidationError
from rich.console import Console
from uvicorn.supervisors import Multiprocess

from takeover.settings import Settings

if TYPE_CHECKING:
    from takeover.control.services import Services
    from takeover.main import Runtime

err = Console(stderr=True)


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings.model_validate({k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(str(p) for p in problem["loc"])
            for message in problem["msg"].removeprefix("Value error, ").split("; "):
                prefix = f"TAKEOVER_{where.upper()}: " if where else ""
                err.print(f"[red]invalid setting:[/] {prefix}{message}", soft_wrap=True)
        raise typer.Exit(2) from error


def serve(
    host: str | None = typer.Option(None, help="listen address (TAKEOVER_HOST)"),
    port: int | None = typer.Option(None, help="listen port (TAKEOVER_PORT)"),
    workers: int | None = typer.Option(None, help="server processes sharing the store (TAKEOVER_WORKERS)"),
) -> None:
    """Run the control plane: REST API, and the controllers when this replica holds the lease."""
    from takeover.secretenv import hide_secrets

    options = [
        a
        for name, v in (("--host", host), ("--port", port), ("--workers", workers))
        if v
        for a in (name, str(v))
    ]
    hide_secrets([sys.executable, "-m", "takeover", "serve", *options])

    from takeover.logsetup import configure_logging
    from takeover.main import tune_gc

    settings = load_settings(host=host, port=port, workers=workers)
    _check_regions(settings)
    configure_logging(settings.log_level, settings.log_format)
    where = settings.store_url.split("@")[-1]
    err.print(
        f"takeover serving on http://{settings.host}:{settings.port} with {settings.workers} worker(s) "
        f"(store: {where})",
        soft_wrap=True,
    )
    host, port, level = settings.host, settings.port, settings.log_level
    max_frame = settings.max_body_bytes  # a stream's frame, like a request's body (close code 1009)
    runtime = _runtime(settings)
    if runtime is not None:
        tune_gc()
        config = uvicorn.Config(
            runtime.app, host=host, port=port, log_level=level, access_log=False, ws_max_size=max_frame
        )
        DrainingServer(config, runtime.services, settings.drain_seconds).run()
        return
    _serve_workers(settings)


def _runtime(settings: Settings) -> Runtime | None:
    """The app and its controllers (one worker), or None after migrating once (each of several
    workers builds its own); a store that TAKEOVER_STORE_ID does not name stops it here."""
    from takeover.main import StoreRefused, build, open_store

    try:
        if settings.workers > 1:
            open_store(settings).engine.dispose()
            return None
        runtime = build(settings)
    except StoreRefused as error:
        err.print(f"[red]refusing to start:[/] {error}", soft_wrap=True)
        raise typer.Exit(2) from error
    identity = runtime.store.known_identity
    if settings.store_id is None and identity is not None:
        err.print(f"store {identity} (TAKEOVER_STORE_ID={identity} refuses any other)", soft_wrap=True)
    return runtime


def _check_regions(settings: Settings) -> None:
    """The regions file, and every region's driver (an SQLAlchemy URL's dialect must load)."""
    if settings.regions_config is None:
        return
    from prometheus_client import CollectorRegistry

    from takeover.regions import ConfigError, MultiRegion, load_config

    try:
        MultiRegion(load_config(settings.regions_config), registry=CollectorRegistry()).close()
    except ConfigError as error:
        err.print(f"[red]invalid setting:[/] TAKEOVER_REGIONS_CONFIG: {error}", soft_wrap=True)
        raise typer.Exit(2) from error


def _serve_workers(settings: Settings) -> None:
    """Several processes on one socket; each builds its own runtime (main.worker_app)."""
    drain_file = Path(tempfile.mkdtemp(prefix="takeover-serve-")) / "draining"  # only ours to create
    for name, value in (
        ("HOST", settings.host),
        ("PORT", settings.port),
        ("WORKERS", settings.workers),
        ("DRAIN_FILE", drain_file),
    ):
        os.environ[f"TAKEOVER_{name}"] = str(value)  # the workers read the same settings
    config = uvicorn.Config(
        "takeover.main:worker_app",
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        ws_max_size=settings.max_body_bytes,
    )
    try:
        DrainingSupervisor(config, [config.bind_socket()], drain_file, settings.drain_seconds).run()
    finally:
        shutil.rmtree(drain_file.parent, ignore_errors=True)


class DrainingServer(uvicorn.Server):
    """On SIGTERM/SIGINT: first fail /readyz for ``drain`` seconds while still serving, so the
    load balancer moves traffic away, then shut down (the controllers hand the lease over)."""

    def __init__(self, config: uvicorn.Config, services: Services, drain: float) -> None:
        super().__init__(config)
        self.services = services
        self.drain = drain

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain > 0 and not self.services.draining:
            self.services.draining = True
            err.print(f"draining for {self.drain:g}s: /readyz now fails", soft_wrap=True)
            timer = threading.Timer(self.drain, super().handle_exit, (sig, frame))
            timer.daemon = True
            timer.start()
            return
        super().handle_exit(sig, frame)  # no drain, or a second signal: now


class DrainingSupervisor(Multiprocess):
    """``--workers N``: on SIGTERM/SIGINT the parent creates ``drain_file``, so every worker's
    /readyz fails while they all still serve, then after ``drain`` seconds stops them."""

    def __init__(
        self, config: uvicorn.Config, sockets: list[socket.socket], drain_file: Path, drain: float
    ) -> None:
        super().__init__(config, sockets)
        self.drain_file = drain_file
        self.drain = drain

    def handle_term(self) -> None:
        if self.drain > 0 and not self.drain_file.exists():
            self.drain_file.touch()
            err.print(f"draining for {self.drain:g}s: /readyz now fails in every worker", soft_wrap=True)
            timer = threading.Timer(self.drain, self.should_exit.set)
            timer.daemon = True
            timer.start()
            return
        self.should_exit.set()  # no drain, or a second signal: now

    handle_int = handle_term
