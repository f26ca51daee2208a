"""A Redis server from Debian's redis-server, on a free loopback port in a temporary directory."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import redis

from takeover.localcluster import free_port, wait_until

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="takeover-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        with (self.root / "redis.log").open("w") as log:
            self.process = subprocess.Popen([*args, "--dir", str(self.root)], stdout=log, stderr=log)
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        wait_until(lambda: _pings(client), 10, f"redis on {self.url}")
        client.close()
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
