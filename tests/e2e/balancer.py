"""A real HAProxy from Debian with the shipped deploy/haproxy.cfg, in front of serve replicas."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from takeover.localcluster import free_port, wait_until

HAPROXY_CFG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy.cfg"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"  # Debian's; /usr/sbin is not on every PATH


@contextmanager
def haproxy(replicas: list[str], root: Path) -> Iterator[str]:
    """The shipped config, with this test's addresses in its environment variables."""
    port = free_port()
    env = {
        **os.environ,
        "TAKEOVER_LISTEN": f"127.0.0.1:{port}",
        **{f"TAKEOVER_REPLICA_{n}": url.removeprefix("http://") for n, url in enumerate(replicas, start=1)},
    }
    with (root / "haproxy.log").open("w") as log:
        process = subprocess.Popen(
            ["haproxy", "-db", "-f", str(HAPROXY_CFG)], env=env, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: status_of(url + "/readyz") == 200, 20, "HAProxy to find a ready replica")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def status_of(url: str) -> int:
    """The status code of a GET, 0 if nothing answered."""
    try:
        return httpx.get(url, timeout=1).status_code
    except httpx.HTTPError:
        return 0


def leads(url: str) -> bool:
    try:
        return "takeover_leader 1.0" in httpx.get(url + "/metrics", timeout=1).text
    except httpx.HTTPError:
        return False
