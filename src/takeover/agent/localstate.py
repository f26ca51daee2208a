"""What the agent keeps on disk: its folders, per instance its epoch and port; and finding a free port."""

from __future__ import annotations

import json
import socket
from collections.abc import Collection
from pathlib import Path
from typing import Any

from takeover.agent.runner import Runner


def make_folders(data_dir: Path) -> None:
    """The agent's folders. Workloads may pass through ``workspaces`` to their own (not list it);
    logs, local state and standby copies only the agent reads (its credentials file is 0600)."""
    for name in ("workspaces", "instances", "logs", "standby"):
        (data_dir / name).mkdir(parents=True, exist_ok=True)
        (data_dir / name).chmod(0o711 if name == "workspaces" else 0o700)


class LocalState:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def read(self, instance_id: str) -> dict[str, Any]:
        path = self.folder / f"{instance_id}.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        except (FileNotFoundError, ValueError):
            return {}

    def save(self, runner: Runner) -> None:
        path = self.folder / f"{runner.instance_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"epoch": runner.epoch, "port": runner.port}))
        tmp.replace(path)


def free_port(ports: tuple[int, int], used: Collection[int], host: str = "0.0.0.0") -> int:
    """A port of the range nobody listens on at ``host`` (where the instance will), or 0 when
    all are taken."""
    low, high = ports
    for port in range(low, high + 1):
        if port in used:
            continue
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            # As servers bind: a connection of an earlier listener in TIME_WAIT does not count.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
        return port
    return 0
