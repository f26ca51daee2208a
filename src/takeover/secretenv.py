"""Credentials in a long-running process's environment stay in that process.

A process can read ``/proc/<pid>/environ`` of every process of its own user, and that file shows
the environment a process was started with, whatever it changed since. An operator's shell may
have exported the admin token (for the CLI) when it started an agent or the control plane; a
workload running as the same user could read it there. So, when credentials are in its
environment, `takeover agent` (and `serve`) starts itself again without them (the same pid, with
``exec``) and receives them through a pipe; they go back into ``os.environ`` (which ``/proc``
does not show) for the settings and the S3 client to read. The tools the agent runs get
``child_env()``: the environment without them. Workloads get neither: their environment is
built from nothing (agent/processes.py).
"""

from __future__ import annotations

import json
import os
import sys

SECRETS = frozenset(
    {
        "TAKEOVER_TOKEN",
        "TAKEOVER_ADMIN_TOKEN",
        "TAKEOVER_JOIN_TOKEN",
        "NODE_TOKEN",
        "VAST_API_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "TAKEOVER_REDIS_PASSWORD",
        "TAKEOVER_REDIS_URL",
        "TAKEOVER_DATABASE_URL",
    }
)
_FD = "TAKEOVER_SECRETS_FD"
_MOST = 60_000  # below a pipe's buffer (64 KiB): writing it before exec never blocks


def secret(name: str) -> bool:
    return name.upper() in SECRETS


def hide_secrets(argv: list[str]) -> None:
    """Exec ``argv`` (this command again) with the credentials moved from the environment to a
    pipe; in the new image, put them back into ``os.environ`` from the pipe. Returns at once
    when there are none."""
    fd = os.environ.pop(_FD, None)
    if fd is not None:  # the new image
        with os.fdopen(int(fd), "rb") as pipe:
            os.environ.update(json.loads(pipe.read()))
        return
    found = {k: v for k, v in os.environ.items() if secret(k)}
    if not found:
        return
    data = json.dumps(found).encode()
    if len(data) > _MOST:
        raise SystemExit(f"the credentials in the environment are over {_MOST} bytes")
    read, write = os.pipe()
    os.write(write, data)
    os.close(write)
    os.set_inheritable(read, True)
    env = {k: v for k, v in os.environ.items() if k not in found} | {_FD: str(read)}
    os.execve(sys.executable, argv, env)


def child_env() -> dict[str, str]:
    """This process's environment without credentials, for the tools it runs (podman, keepers)."""
    return {k: v for k, v in os.environ.items() if not secret(k)}
