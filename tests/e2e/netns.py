"""A test host in a network namespace of its own, joined to this one by a veth pair (root only).

Cutting it off is ``ip link set DEV down`` inside the namespace: no packet crosses either way,
as when a switch port dies, while both ends keep running. Only the two addresses of the pair
are ever used: traffic never leaves the machine.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from types import TracebackType


def available() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    return None


class TestHost:
    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name = f"tkv-{tag}"
        self._outside, self._inside = f"tkvh{tag}", f"tkvn{tag}"
        third = int(tag[:2], 16)  # 10.231.<third>.0/30: a subnet of the pair's own
        self.host_ip, self.ip = f"10.231.{third}.1", f"10.231.{third}.2"

    @property
    def wrapper(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def __enter__(self) -> TestHost:
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self._outside, "type", "veth", "peer", "name", self._inside)
            _ip("link", "set", self._inside, "netns", self.name)
            _ip("addr", "add", f"{self.host_ip}/30", "dev", self._outside)
            _ip("link", "set", self._outside, "up")
            _ip("-n", self.name, "addr", "add", f"{self.ip}/30", "dev", self._inside)
            _ip("-n", self.name, "link", "set", self._inside, "up")
            _ip("-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def cut(self) -> None:
        _ip("-n", self.name, "link", "set", self._inside, "down")

    def heal(self) -> None:
        _ip("-n", self.name, "link", "set", self._inside, "up")

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)  # takes the pair
        subprocess.run(["ip", "link", "del", self._outside], check=False, capture_output=True)

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)
