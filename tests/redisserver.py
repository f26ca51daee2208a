"""Redis servers from Debian's redis-server on free loopback ports in temporary directories: one
server, a master with a replica, and Sentinels watching them (`redis-server --sentinel`)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import redis

from takeover.localcluster import free_port, wait_until

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    def __init__(self, replica_of: int | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="takeover-redis-"))
        self.port = free_port()
        self.replica_of = replica_of  # the master's port
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
        if self.replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        with (self.root / "redis.log").open("w") as log:
            self.process = subprocess.Popen([*args, "--dir", str(self.root)], stdout=log, stderr=log)
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        wait_until(lambda: _pings(client), 10, f"redis on {self.url}")
        client.close()
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


class Sentinels:
    """A master, its replica, and ``count`` Sentinels watching them as MASTER_NAME; a master
    silent for 1 s is down. ``master`` is the first master (Sentinel may promote the replica)."""

    MASTER_NAME = "mymaster"
    FAILOVER_TIMEOUT_MS = 3000  # Sentinel fails the same master over again only after twice this

    def __init__(self, count: int = 3) -> None:
        self.master = RedisServer()
        self.replica = RedisServer(replica_of=self.master.port)
        self.root = Path(tempfile.mkdtemp(prefix="takeover-sentinel-"))
        self.ports = [free_port() for _ in range(count)]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def addresses(self) -> str:
        """As REDIS_SENTINELS wants them."""
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> Sentinels:
        self.master.start()
        self.replica.start()
        quorum = len(self.ports) // 2 + 1
        for port in self.ports:
            config = self.root / f"sentinel-{port}.conf"  # Sentinel rewrites it: its own file
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.root}\n"
                f"sentinel monitor {self.MASTER_NAME} 127.0.0.1 {self.master.port} {quorum}\n"
                f"sentinel down-after-milliseconds {self.MASTER_NAME} 1000\n"
                f"sentinel failover-timeout {self.MASTER_NAME} {self.FAILOVER_TIMEOUT_MS}\n"
            )
            with (self.root / f"sentinel-{port}.log").open("w") as log:
                self.processes.append(
                    subprocess.Popen([REDIS_SERVER, str(config), "--sentinel"], stdout=log, stderr=log)
                )
        for port in self.ports:
            client = redis.Redis(port=port, socket_timeout=1)
            wait_until(partial(self._knows_replicas, client), 20, f"sentinel on {port} to see a replica")
            client.close()
        return self

    @property
    def lease_env(self) -> dict[str, str]:
        """What a `takeover serve` replica needs to elect its leader through these Sentinels."""
        return {
            "TAKEOVER_LEASE_BACKEND": "redis",
            "REDIS_SENTINEL_ENABLED": "true",
            "REDIS_SENTINELS": self.addresses,
            "REDIS_MASTER_NAME": self.MASTER_NAME,
        }

    @property
    def servers(self) -> list[RedisServer]:
        return [self.master, self.replica]

    def replicas(self) -> list[tuple[str, int]]:
        """The replicas of the master that the first Sentinel that answers knows to be up."""
        found = self._first_answer(lambda sentinel: sentinel.sentinel_slaves(self.MASTER_NAME))
        return [(r["ip"], int(r["port"])) for r in found or () if not r["is_sdown"]]

    def master_port(self) -> int | None:
        """The master's port as the first Sentinel that answers sees it."""
        address = self._first_answer(
            lambda sentinel: sentinel.sentinel_get_master_addr_by_name(self.MASTER_NAME)
        )
        return int(address[1]) if isinstance(address, tuple) else None

    def _first_answer(self, ask: Callable[[redis.Redis], Any]) -> Any:
        for port in self.ports:
            try:
                return ask(redis.Redis(port=port, socket_timeout=1, decode_responses=True))
            except redis.RedisError:
                continue
        return None

    def _knows_replicas(self, client: redis.Redis) -> bool:
        try:
            return bool(client.sentinel_slaves(self.MASTER_NAME))
        except redis.RedisError:
            return False

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()
        shutil.rmtree(self.root, ignore_errors=True)
        self.replica.stop()
        self.master.stop()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
