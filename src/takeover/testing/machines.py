"""How the fake marketplace's machines run: a process of this host, or a container of the
rented image (``Podman``), either way running the rent's onstart with the environment a Vast
container gets. Nothing here is the marketplace's API: that is takeover.testing.fakevast."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Podman:
    """Boot machines as containers: ``cli`` is podman with its storage options, ``env`` what
    those commands need (CONTAINERS_CONF), ``shared`` host directories every machine mounts at
    the same path (what a test's machines share, e.g. the pool's snapshot directory)."""

    cli: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    shared: tuple[Path, ...] = ()

    def command(self, name: str, image: str, env_file: Path, onstart: str) -> list[str]:
        mounts = [arg for path in self.shared for arg in ("-v", f"{path}:{path}")]
        return [
            *self.cli,
            "run",
            "--rm",
            "--name",
            name,
            "--network",
            "host",  # its own address is a loopback one of its own (testing.nat)
            "--env-file",
            str(env_file),
            "--workdir",
            "/root",
            *mounts,
            "--entrypoint",
            "/bin/sh",
            image,
            "-c",
            onstart,
        ]


def start(
    name: str, image: str, onstart: str, env: dict[str, str], home: Path, boot: Podman | None
) -> subprocess.Popen[bytes]:
    """The machine's onstart, running; its output goes to ``home``/onstart.log."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / "onstart.log").open("ab") as log:
        if boot is None:
            host = {
                "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                "HOME": str(home),
                "TAKEOVER_AGENT_DIR": str(home / "agent"),  # its own disk
                **env,
            }
            return subprocess.Popen(
                ["sh", "-c", onstart],
                env=host,
                cwd=home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        env_file = home / "env"
        env_file.touch(mode=0o600)
        env_file.write_text("".join(f"{k}={v}\n" for k, v in {"HOME": "/root", **env}.items()))
        return subprocess.Popen(
            boot.command(name, image, env_file, onstart),
            env={**os.environ, **boot.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(name: str, process: subprocess.Popen[bytes], boot: Podman | None, kill: bool) -> None:
    """``kill``: at once (a host that died); else SIGTERM, and SIGKILL 10 s later."""
    if process.poll() is not None:
        return
    if boot is not None:
        verb = ["kill", "--signal", "KILL", name] if kill else ["stop", "--time", "10", name]
        subprocess.run([*boot.cli, *verb], env={**os.environ, **boot.env}, capture_output=True, check=False)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        if kill:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
                return
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    process.wait()
