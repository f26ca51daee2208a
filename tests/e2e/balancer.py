"""A real HAProxy from Debian with the shipped configurations: deploy/haproxy.cfg in front of serve
replicas, deploy/routes/haproxy.cfg in front of instances (with a route follower)."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from takeover.domain.routes import Server
from takeover.follow.haproxy import HAProxyTarget, RuntimeApi
from takeover.localcluster import TAKEOVER, free_port, wait_until

HAPROXY_CFG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy.cfg"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"  # Debian's; /usr/sbin is not on every PATH


@contextmanager
def haproxy(replicas: list[str], root: Path, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """The shipped config, with this test's addresses in its environment variables; with
    ``tls`` (its certificate and key PEM, the CA that signed it), the listener speaks TLS only."""
    port = free_port()
    env = {
        **os.environ,
        "TAKEOVER_LISTEN": f"127.0.0.1:{port}",
        **{f"TAKEOVER_REPLICA_{n}": url.removeprefix("http://") for n, url in enumerate(replicas, start=1)},
    }
    if tls is not None:
        env["TAKEOVER_TLS_CERT"] = str(tls[0])
    with (root / "haproxy.log").open("w") as log:
        process = subprocess.Popen([HAPROXY, "-db", "-f", str(HAPROXY_CFG)], env=env, stdout=log, stderr=log)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=tls[1]) if tls else True
    try:
        wait_until(lambda: status_of(url + "/readyz", verify) == 200, 20, "HAProxy to find a ready replica")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def status_of(url: str, verify: ssl.SSLContext | bool = True) -> int:
    """The status code of a GET, 0 if nothing answered."""
    try:
        return httpx.get(url, timeout=1, verify=verify).status_code
    except httpx.HTTPError:
        return 0


def leads(url: str) -> bool:
    try:
        return "takeover_leader 1.0" in httpx.get(url + "/metrics", timeout=1).text
    except httpx.HTTPError:
        return False


ROUTES_CFG = HAPROXY_CFG.parent / "routes" / "haproxy.cfg"


@dataclass
class RoutedProxy:
    """The shipped deploy/routes/haproxy.cfg, running, and a follower keeping it in line."""

    http: str  # host:port of the HTTP frontend
    tcp: str  # host:port of the TCP frontend (backend db)
    api: RuntimeApi

    def server(self, backend: str) -> Server:
        return HAProxyTarget(self.api).servers()[backend]


@contextmanager
def routed_proxy(control_plane: str, token: str, root: Path, wait: float = 1.0) -> Iterator[RoutedProxy]:
    """HAProxy from the shipped routes template, and `takeover routes follow haproxy` on it."""
    socket_path = root / "haproxy-routes.sock"
    http, tcp = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "TAKEOVER_ROUTES_SOCKET": str(socket_path),
        "TAKEOVER_HTTP_LISTEN": http,
        "TAKEOVER_TCP_LISTEN": tcp,
    }
    with (root / "haproxy-routes.log").open("w") as log:
        proxy = subprocess.Popen([HAPROXY, "-db", "-f", str(ROUTES_CFG)], env=env, stdout=log, stderr=log)
    follower = None
    try:
        wait_until(socket_path.exists, 20, "HAProxy's runtime API socket")
        follower_env = {**os.environ, "TAKEOVER_URL": control_plane, "TAKEOVER_TOKEN": token}
        with (root / "follower.log").open("w") as log:
            follower = subprocess.Popen(
                [*TAKEOVER, "routes", "follow", "haproxy", "--socket", str(socket_path), "--wait", str(wait)],
                env=follower_env,
                stdout=log,
                stderr=log,
            )
        yield RoutedProxy(http, tcp, RuntimeApi(str(socket_path)))
    finally:
        for process in (follower, proxy):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)


ROUTES_NGINX_CFG = HAPROXY_CFG.parent / "routes" / "nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"  # Debian's nginx-light


@contextmanager
def routed_nginx(control_plane: str, token: str, root: Path, wait: float = 1.0) -> Iterator[str]:
    """nginx from the shipped routes template, and `takeover routes follow nginx` reloading it;
    its host:port (send ``Host: <instance>.<anything>``)."""
    port = free_port()
    prefix = root / "nginx"
    prefix.mkdir()
    routes = prefix / "takeover-routes.conf"
    routes.write_text("")
    text = ROUTES_NGINX_CFG.read_text().replace("listen 80;", f"listen 127.0.0.1:{port};")
    config = prefix / "nginx.conf"
    config.write_text(text.replace("pid /run/takeover-routes-nginx.pid;", f"pid {prefix / 'nginx.pid'};"))
    nginx = [NGINX, "-p", str(prefix), "-c", str(config)]
    with (root / "nginx.log").open("w") as log:
        server = subprocess.Popen([*nginx, "-g", "daemon off;"], stdout=log, stderr=log)
    follower = None
    try:
        wait_until((prefix / "nginx.pid").exists, 20, "nginx to start")
        reload = " ".join([*nginx, "-s", "reload"])
        follower_env = {**os.environ, "TAKEOVER_URL": control_plane, "TAKEOVER_TOKEN": token}
        command = [
            "routes",
            "follow",
            "nginx",
            "--output",
            str(routes),
            "--reload",
            reload,
            "--wait",
            str(wait),
        ]
        with (root / "follower-nginx.log").open("w") as log:
            follower = subprocess.Popen([*TAKEOVER, *command], env=follower_env, stdout=log, stderr=log)
        yield f"127.0.0.1:{port}"
    finally:
        for process in (follower, server):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)


class ProxyClient:
    """Asks ``GET /`` through a proxy every ``every`` seconds, on a new connection each time (so
    each request goes where the proxy sends it now); ``answers`` holds (moment it ended, epoch of
    the runner that answered, or None for a failed request)."""

    def __init__(
        self, address: str, host: str | None = None, every: float = 0.05, timeout: float = 1.0
    ) -> None:
        self.address = address
        self._headers = {"Host": host} if host else {}
        self._every, self._timeout = every, timeout
        self.answers: list[tuple[float, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with httpx.Client(timeout=self._timeout) as client:
                    answer = client.get(f"http://{self.address}/", headers=self._headers)
                    epoch = int(answer.raise_for_status().json()["epoch"])
            except (httpx.HTTPError, ValueError, KeyError):
                epoch = None
            self.answers.append((time.monotonic(), epoch))
            self._stop.wait(self._every)

    def epochs(self) -> list[int]:
        return [e for _, e in self.answers if e is not None]

    def __enter__(self) -> ProxyClient:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
