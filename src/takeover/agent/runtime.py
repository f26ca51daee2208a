"""The runtime port: how a runner starts, watches and stops what it supervises.

One contract, three adapters: a child process (``ProcessRuntime``), a Podman or a Docker
container (``ContainerRuntime``). tests/contracts/test_runtimes.py holds every adapter to it
against the real thing. The runner above it knows nothing of which one it drives.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class LaunchError(Exception):
    """The runtime could not do what was asked; the message is for the instance's last_error."""


@dataclass(frozen=True, slots=True)
class Launch:
    """Everything one start needs. ``image`` set: a container (its reference pinned already)."""

    instance_id: str
    epoch: int
    command: tuple[str, ...]
    env: dict[str, str]  # the spec's, plus PORT and TAKEOVER_*: what the workload sees
    workspace: Path
    port: int
    log_path: Path
    image: str | None = None
    mount_path: str = "/workspace"
    labels: dict[str, str] = field(default_factory=dict)
    gpus: tuple[int, ...] = ()  # the node's GPU indices it may use (a container gets them by CDI)
    epoch_file: Path | None = None  # on a regional volume: its keeper stops it once a newer epoch is here


class Handle(Protocol):
    """One started workload."""

    @property
    def log_path(self) -> Path:
        """Where its output goes (the runner ships it from there)."""
        ...

    def exit_code(self) -> int | None:
        """None while it runs; its exit status once it is gone (then it holds nothing)."""
        ...

    def signal(self, sig: signal.Signals) -> None:
        """To the whole workload (a process group, a container's init); nothing if it is gone."""
        ...

    def wait(self, timeout: float) -> bool:
        """True once it is gone, waiting up to ``timeout`` seconds."""
        ...


@dataclass(frozen=True, slots=True)
class Leftover:
    """A container an earlier life of this agent started (found by its labels)."""

    name: str
    instance_id: str
    epoch: int
    running: bool


class Runtime(Protocol):
    name: str

    def start(self, launch: Launch) -> Handle:
        """Start it; LaunchError names why it cannot."""
        ...

    def resolve(self, image: str, digest: str | None) -> tuple[str, str]:
        """Make the image present (pulling it if needed): (the reference to run, its digest).
        Slow (a pull): called off the loop thread. LaunchError names what failed."""
        ...

    def leftovers(self, node: str) -> list[Leftover]:
        """What an earlier agent on this node left behind (containers only; processes die with it)."""
        ...

    def adopt(self, leftover: Leftover, log_path: Path) -> Handle:
        """Take over a running leftover instead of starting a second copy."""
        ...

    def remove(self, leftover: Leftover) -> None:
        """Stop (if running) and delete a leftover."""
        ...

    def decode_log(self, data: bytes) -> str:
        """The workload's output from whole lines of its log file (a runtime may frame them)."""
        ...
