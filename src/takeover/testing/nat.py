"""The fake marketplace's NAT: each port a rent asks for, reached at an outside port of its own.

On Vast a container's inside ports (``-p 8080:8080``) are mapped to random outside ports of
the host's shared public address, and the container is told which in ``VAST_TCP_PORT_8080``.
Here every fake machine has a loopback address of its own for its inside (127.77.x.y), and
this relays 127.0.0.1:<outside> to it: a client that used the inside port, or the machine's
inside address as if it were public, reaches nothing.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from dataclasses import dataclass, field

PUBLIC = "127.0.0.1"
_BUFFER = 65536


def inside_address(machine_id: int) -> str:
    """A machine's own loopback address (Linux answers on all of 127.0.0.0/8)."""
    return f"127.77.{(machine_id >> 8) & 255}.{machine_id & 255}"


@dataclass
class Nat:
    inside: str  # the machine's own address
    tcp: dict[int, int] = field(default_factory=dict)  # inside port: outside port
    udp: dict[int, int] = field(default_factory=dict)
    _sockets: list[socket.socket] = field(default_factory=list)
    _closed: threading.Event = field(default_factory=threading.Event)

    def open(self, port: int, udp: bool) -> int:
        """Map ``port`` inside to a free outside port; the outside port."""
        kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
        outside = socket.socket(socket.AF_INET, kind)
        outside.bind((PUBLIC, 0))
        self._sockets.append(outside)
        number: int = outside.getsockname()[1]
        if udp:
            self.udp[port] = number
            threading.Thread(target=self._relay_udp, args=(outside, port), daemon=True).start()
        else:
            outside.listen(64)
            self.tcp[port] = number
            threading.Thread(target=self._accept, args=(outside, port), daemon=True).start()
        return number

    def env(self) -> dict[str, str]:
        """What Vast tells the container about its mappings."""
        return {
            "PUBLIC_IPADDR": PUBLIC,
            **{f"VAST_TCP_PORT_{p}": str(o) for p, o in self.tcp.items()},
            **{f"VAST_UDP_PORT_{p}": str(o) for p, o in self.udp.items()},
        }

    def docker_ports(self) -> dict[str, list[dict[str, str]]]:
        """The mappings as an instance's ``ports`` field lists them (Docker's shape)."""
        mapped = [(f"{p}/tcp", o) for p, o in self.tcp.items()] + [
            (f"{p}/udp", o) for p, o in self.udp.items()
        ]
        return {key: [{"HostIp": "0.0.0.0", "HostPort": str(o)}] for key, o in mapped}

    def close(self) -> None:
        self._closed.set()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket, port: int) -> None:
        while not self._closed.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection((self.inside, port), timeout=2)
            except OSError:
                client.close()  # nothing listens inside: refused, as through a real NAT
                continue
            self._sockets.extend((client, server))
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        with a, b:
            while not self._closed.is_set():
                readable, _, _ = select.select([a, b], [], [], 0.5)
                for sock in readable:
                    try:
                        data = sock.recv(_BUFFER)
                    except OSError:
                        return
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)

    def _relay_udp(self, outside: socket.socket, port: int) -> None:
        """One inside socket per outside peer, so each answer goes back to whoever asked."""
        peers: dict[tuple[str, int], socket.socket] = {}
        while not self._closed.is_set():
            readable, _, _ = select.select([outside, *peers.values()], [], [], 0.5)
            for sock in readable:
                try:
                    data, sender = sock.recvfrom(_BUFFER)
                except OSError:
                    continue
                if sock is outside:
                    inner = peers.get(sender)
                    if inner is None:
                        inner = peers[sender] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        inner.bind((PUBLIC, 0))
                        self._sockets.append(inner)
                    inner.sendto(data, (self.inside, port))
                else:
                    peer = next(p for p, s in peers.items() if s is sock)
                    with contextlib.suppress(OSError):
                        outside.sendto(data, peer)
