"""Start `takeover serve` as a real process on a free loopback port; stop it by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from takeover.localcluster import free_port, wait_until

TAKEOVER = str(Path(sys.executable).parent / "takeover")


def start(data_dir: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """A running `takeover serve` (on env's TAKEOVER_PORT, or a free port) and its URL; the
    caller stops it (see ``stop``)."""
    port = int(env.pop("TAKEOVER_PORT", 0)) or free_port()
    environment = {
        **os.environ,
        "TAKEOVER_DATA_DIR": str(data_dir),
        "TAKEOVER_PORT": str(port),
        "TAKEOVER_ADMIN_TOKEN": "admin-secret",
        **env,
    }
    with (data_dir / f"serve-{port}.log").open("a") as log:
        process = subprocess.Popen([TAKEOVER, "serve"], env=environment, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(url), timeout=20, what=f"takeover serve on {url}")
    except TimeoutError:
        stop(process)
        raise
    return process, url


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def serve(data_dir: Path, **env: str) -> Iterator[str]:
    process, url = start(data_dir, **env)
    try:
        yield url
    finally:
        stop(process)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def threads_running(threads: list[threading.Thread], stop: threading.Event) -> Iterator[None]:
    """Clients on threads of their own: started here, stopped (``stop`` set) and joined on the way out."""
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()
