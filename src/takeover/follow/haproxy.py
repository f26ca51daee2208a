"""HAProxy through its runtime API (``stats socket ... level admin``): no reload, no dropped
connections but the old runner's.

A backend is followed when it holds a server named ``server`` (``takeover`` by default): that
server always points at the route's current runner, or is in maintenance while there is none.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

import structlog

from takeover.domain.routes import Route, Server, Step, proxy_plan, wanted_targets

log = structlog.get_logger("takeover.follow")

# srv_admin_state bits that keep traffic out: forced, inherited and resolver maintenance, drain.
_NOT_READY = 0x01 | 0x02 | 0x08 | 0x10 | 0x20


class RuntimeApi:
    """One command per connection, as ``socat`` sends them: a unix socket path or host:port."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        self._address = address
        self._timeout = timeout

    def command(self, line: str) -> str:
        if self._address.startswith("/"):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.settimeout(self._timeout)
            conn.connect(self._address)
        else:
            host, _, port = self._address.rpartition(":")
            conn = socket.create_connection((host.strip("[]"), int(port)), timeout=self._timeout)
        with conn:
            conn.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()


class HAProxyTarget:
    def __init__(self, api: RuntimeApi, backend_format: str = "{name}", server: str = "takeover") -> None:
        self._api = api
        self._format = backend_format
        self._server = server
        self._unplaced: set[str] = set()

    def servers(self) -> dict[str, Server]:
        """The followed backends and what their server holds now, from ``show servers state``."""
        lines = self._api.command("show servers state").splitlines()
        header = next((line[2:].split() for line in lines if line.startswith("# be_id")), None)
        if header is None:
            raise OSError(f"HAProxy answered no server state: {' '.join(lines)[:200]}")
        found: dict[str, Server] = {}
        for line in lines:
            fields = line.split()
            if len(fields) != len(header) or line.startswith("#"):
                continue
            row = dict(zip(header, fields, strict=True))
            if row["srv_name"] == self._server:
                ready = int(row["srv_admin_state"]) & _NOT_READY == 0
                found[row["be_name"]] = Server(row["srv_addr"], int(row["srv_port"]), ready)
        return found

    def sync(self, routes: Iterable[Route]) -> None:
        wanted, clashes = wanted_targets(routes, self._format)
        for slot in sorted(clashes):
            log.error(
                "two routes map to one backend: withdrawn; make --backend tell them apart", backend=slot
            )
        actual = self.servers()
        unplaced = set(wanted) - set(actual)
        for slot in sorted(unplaced - self._unplaced):
            log.warning("a route has no backend with a server for it", backend=slot, server=self._server)
        self._unplaced = unplaced
        for slot, step, target in proxy_plan(actual, wanted):
            self._do(slot, step, target)

    def _do(self, backend: str, step: Step, target: tuple[str, int] | None) -> None:
        server = f"{backend}/{self._server}"
        if step is Step.WITHDRAW:
            self._check(self._api.command(f"set server {server} state maint"), server)
            self._api.command(f"shutdown sessions server {server}")  # the old runner's clients too
        elif step is Step.POINT:
            assert target is not None
            host = _address_of(target[0])
            self._check(self._api.command(f"set server {server} addr {host} port {target[1]}"), server)
        else:
            self._check(self._api.command(f"set server {server} state ready"), server)
        log.info("proxy updated", backend=backend, step=step.value, target=target)

    @staticmethod
    def _check(answer: str, server: str) -> None:
        text = answer.strip()
        if text and not text.startswith("no need to change") and "changed from" not in text:
            raise OSError(f"HAProxy refused a change of {server}: {text}")


def _address_of(host: str) -> str:
    """HAProxy's runtime API takes addresses, not names: a node registered by name is resolved."""
    return str(socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)[0][4][0])
