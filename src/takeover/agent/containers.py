"""The container adapters of the runtime port: Podman and Docker, through their CLIs.

A container is not the agent's child, so it would outlive an agent killed with SIGKILL. Each one
therefore gets a keeper (agent/keeper.py): a tiny process outside the agent's life that stops
the container once the node's fence deadline passes without the agent renewing it. Containers
carry labels (node, instance, epoch), so a restarted agent finds what its earlier life left and
adopts or removes it, never running a second copy beside it.

Containers use the host's network: the workload listens on $PORT as a process would, and the
instance's endpoint is the node's address and that port.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import psutil

from takeover.agent.keeper import Kept, start_keeper
from takeover.agent.runtime import Handle, Launch, LaunchError, Leftover
from takeover.domain.images import ImageRef, parse_image
from takeover.secretenv import child_env

Flavor = Literal["podman", "docker"]
_LABEL = "takeover"
_CLI_TIMEOUT = 60.0


class ContainerHandle:
    def __init__(
        self, runtime: ContainerRuntime, name: str, proc: psutil.Process | None, log_path: Path
    ) -> None:
        self._runtime = runtime
        self.name = name
        self._proc = proc  # the container's init, in the host's view
        self._log_path = log_path
        self._code: int | None = None if proc is not None else runtime.finish(name)

    @property
    def log_path(self) -> Path:
        return self._log_path

    def _alive(self) -> bool:
        if self._proc is None:
            return False
        try:
            return self._proc.is_running() and self._proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def exit_code(self) -> int | None:
        if self._code is None and not self._alive():
            self._proc = None
            self._code = self._runtime.finish(self.name)
        return self._code

    def signal(self, sig: signal.Signals) -> None:
        if self._alive() and self._proc is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                self._proc.send_signal(sig)

    def wait(self, timeout: float) -> bool:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=max(0.0, timeout))
            except psutil.TimeoutExpired:
                return False
            except psutil.NoSuchProcess:
                pass
        return self.exit_code() is not None


class ContainerRuntime:
    """``flavor``: podman or docker (the same CLI verbs; their differences are named here)."""

    def __init__(self, flavor: Flavor, options: str, fence_path: Path, fence_grace: float) -> None:
        self.name: str = flavor
        self.flavor = flavor
        self.cli = [flavor, *shlex.split(options)]
        self.fence_path = fence_path
        self.fence_grace = fence_grace
        self.keepers: dict[str, subprocess.Popen[bytes]] = {}
        self.followers: dict[str, subprocess.Popen[bytes]] = {}  # Docker: `docker logs -f` per container

    # the CLI -------------------------------------------------------------------------------

    def _run(self, *args: str, timeout: float = _CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [*self.cli, *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env=child_env(),
            )
        except FileNotFoundError:
            raise LaunchError(f"{self.flavor} is not installed on this node") from None
        except subprocess.TimeoutExpired:
            raise LaunchError(f"{self.flavor} {args[0]} did not answer within {timeout:.0f}s") from None

    def _ok(self, *args: str, timeout: float = _CLI_TIMEOUT) -> str:
        done = self._run(*args, timeout=timeout)
        if done.returncode != 0:
            raise LaunchError(f"{self.flavor} {args[0]}: {_last_line(done.stderr or done.stdout)}")
        return done.stdout.strip()

    # the port ------------------------------------------------------------------------------

    def resolve(self, image: str, digest: str | None) -> tuple[str, str]:
        ref = parse_image(image)
        candidates = [ref.pinned(digest)] if digest else [image]
        if digest and self.flavor == "docker":
            candidates.append(digest)  # a local Docker image is pinned by its id
        for candidate in candidates:  # one look-up each: present images cost no second call
            found = self._inspect_image(ref, candidate)
            if found is not None:
                return found
        done = self._run("pull", "-q", candidates[0], timeout=600)
        if done.returncode != 0:
            raise LaunchError(f"image {candidates[0]} could not be pulled: {_last_line(done.stderr)}")
        found = self._inspect_image(ref, candidates[0])
        if found is None:
            raise LaunchError(f"image {candidates[0]} was pulled but cannot be inspected")
        return found

    def _inspect_image(self, ref: ImageRef, candidate: str) -> tuple[str, str] | None:
        """(what to run, its digest) when the image is present, else None."""
        fmt = "{{.Digest}}" if self.flavor == "podman" else "{{json .}}"
        done = self._run("image", "inspect", "--format", fmt, candidate)
        if done.returncode != 0:
            return None
        if self.flavor == "podman":
            found = done.stdout.strip()
            return ref.pinned(found), found
        # Docker names an image by a registry digest only once pulled; a local one by its id.
        data = json.loads(done.stdout)
        for repo_digest in data.get("RepoDigests") or []:
            name, _, found = repo_digest.partition("@")
            if name == ref.name or name.endswith("/" + ref.name):
                return repo_digest, found
        return str(data["Id"]), str(data["Id"])

    def start(self, launch: Launch) -> Handle:
        if launch.image is None:
            raise LaunchError("a container needs its image resolved first")
        name = container_name(launch.instance_id, launch.epoch)
        labels = {
            f"{_LABEL}.instance": launch.instance_id,
            f"{_LABEL}.epoch": str(launch.epoch),
            **launch.labels,
        }
        args = ["run", "-d", "--name", name, "--network", "host"]
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        args += ["--volume", f"{launch.workspace}:{launch.mount_path}"]
        for index in launch.gpus:  # CDI names (nvidia-ctk cdi generate): the GPUs it holds, no others
            args += ["--device", f"nvidia.com/gpu={index}"]
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.flavor == "podman":
            args += ["--log-driver", "k8s-file", "--log-opt", f"path={launch.log_path}"]
        with env_file(launch.env) as env_args:
            args += [*env_args, launch.image, *launch.command]
            done = self._run(*args)
            if done.returncode != 0 and "already in use" in done.stderr:  # a crash left this epoch's
                self._run("rm", "-f", *self._now(), name)
                done = self._run(*args)
        if done.returncode != 0:
            self._run("rm", "-f", *self._now(), name)  # one that was created but could not start
            raise LaunchError(f"{self.flavor} run {launch.image}: {_last_line(done.stderr)}")
        try:
            return self._attach(name, launch.log_path, None, launch.epoch_file, launch.epoch)
        except LaunchError:
            self._run("rm", "-f", *self._now(), name)  # never a container nobody supervises
            raise

    def leftovers(self, node: str) -> list[Leftover]:
        ids = self._ok("ps", "-a", "-q", "--filter", f"label={_LABEL}.node={node}").split()
        if not ids:
            return []
        fmt = '{{.Name}}\t{{index .Config.Labels "takeover.instance"}}\t{{index .Config.Labels "takeover.epoch"}}\t{{.State.Running}}'
        found = []
        for line in self._ok("inspect", "--format", fmt, *ids).splitlines():
            name, instance_id, epoch, running = line.split("\t")
            found.append(Leftover(name.lstrip("/"), instance_id, int(epoch), running == "true"))
        return found

    def adopt(self, leftover: Leftover, log_path: Path) -> Handle:
        return self._attach(leftover.name, log_path, since=time.time())

    def remove(self, leftover: Leftover) -> None:
        self._run("rm", "-f", *self._now(), leftover.name)
        self._stop_keeper(leftover.name)
        follower = self.followers.pop(leftover.name, None)
        if follower is not None:
            follower.wait()

    def decode_log(self, data: bytes) -> str:
        return decode_k8s_file(data) if self.flavor == "podman" else data.decode("utf-8", "replace")

    # helpers --------------------------------------------------------------------------------

    def _now(self) -> list[str]:
        """rm -f without the stop timeout (Podman's default waits 10 s before SIGKILL)."""
        return ["--time", "0"] if self.flavor == "podman" else []

    def _attach(
        self, name: str, log_path: Path, since: float | None, epoch_file: Path | None = None, epoch: int = 0
    ) -> ContainerHandle:
        if self.flavor == "docker":
            self._follow(name, log_path, since)
        pid_text = self._ok("inspect", "--format", "{{.State.Pid}}", name)
        proc = None
        with contextlib.suppress(psutil.NoSuchProcess, ValueError):
            if int(pid_text) > 0:
                proc = psutil.Process(int(pid_text))
        if proc is not None:
            self._keep(name, proc, epoch_file, epoch)
        return ContainerHandle(self, name, proc, log_path)

    def _keep(self, name: str, proc: psutil.Process, epoch_file: Path | None, epoch: int) -> None:
        """Its keeper: stops it at the fence deadline unless the agent renews it, or when a newer
        epoch holds its volume (a new session, so it outlives the agent; it ends with the container)."""
        self._stop_keeper(name)
        kept = Kept(proc.pid, epoch_file=epoch_file, epoch=epoch)
        self.keepers[name] = start_keeper(self.fence_path, proc, self.fence_grace, name, kept)

    def _follow(self, name: str, log_path: Path, since: float | None) -> None:
        """Docker deletes a container's log with the container, so its output is copied to
        ``log_path`` as it comes (the follower ends with the container)."""
        since_args = ["--since", f"{since:.3f}"] if since is not None else []
        with open(log_path, "ab") as log:
            self.followers[name] = subprocess.Popen(
                [*self.cli, "logs", "--follow", *since_args, name],
                env=child_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _stop_keeper(self, name: str) -> None:
        keeper = self.keepers.pop(name, None)
        if keeper is not None and keeper.poll() is None:
            keeper.terminate()
            keeper.wait()

    def finish(self, name: str) -> int:
        """A container that ended: its exit code, then it is deleted (its output stays in its log)."""
        follower = self.followers.pop(name, None)
        if follower is not None:
            try:
                follower.wait(5)  # the rest of the output, before the container and its log go
            except subprocess.TimeoutExpired:
                follower.kill()
                follower.wait()
        done = self._run("inspect", "--format", "{{.State.ExitCode}}", name)
        code = (
            int(done.stdout.strip())
            if done.returncode == 0 and done.stdout.strip().lstrip("-").isdigit()
            else -1
        )
        self._run("rm", "-f", *self._now(), name)
        keeper = self.keepers.pop(name, None)
        if keeper is not None:
            keeper.wait()  # it ends by itself once the container is gone
        return code


@contextlib.contextmanager
def env_file(env: dict[str, str]) -> Iterator[list[str]]:
    """The options that give a container ``env``: a file only the agent reads, so the values
    (the spec's secrets) never show on a command line; one with a line break cannot go in
    such a file and is given as ``--env`` (Podman's and Docker's env files are one per line)."""
    multiline = {k: v for k, v in env.items() if "\n" in v or "\r" in v}
    with tempfile.NamedTemporaryFile("w", prefix="takeover-env-", encoding="utf-8") as file:
        file.write("".join(f"{k}={v}\n" for k, v in env.items() if k not in multiline))
        file.flush()
        yield ["--env-file", file.name, *(a for k, v in multiline.items() for a in ("--env", f"{k}={v}"))]


def container_name(instance_id: str, epoch: int) -> str:
    return f"takeover-{instance_id}-{epoch}"


def _last_line(text: str) -> str:
    """The line that says what went wrong (not Docker's closing "Run 'docker run --help'")."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    lines = [line for line in lines if "--help" not in line] or lines
    return lines[-1][:500] if lines else "(no output)"


def decode_k8s_file(data: bytes) -> str:
    """Podman's k8s-file lines are ``time stream F|P text``: P is a piece of a longer line."""
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 3:
            continue
        text = parts[3] if len(parts) == 4 else ""
        out.append(text if parts[2] == "P" else text + "\n")
    return "".join(out)
