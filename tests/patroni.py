"""A Patroni-managed PostgreSQL on loopback: Debian's etcd (v3 API) and a Patroni per member.

Synchronous mode, so a commit is acknowledged only once the synchronous standby has it, and
Patroni promotes only that standby. Patroni and PostgreSQL run as the ``postgres`` user in
directories it owns; everything is stopped by PID. ``kill`` takes a whole member away, Patroni
and its PostgreSQL at once, as a machine that dies.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import httpx
import psutil
import yaml

from takeover.localcluster import free_port, wait_until
from tests.e2e.balancer import status_of
from tests.pgserver import pg_bin

# A clean environment: Patroni is Debian's, on the system Python, never this virtualenv's.
SYSTEM_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
AS_ROOT = os.geteuid() == 0


def _owned(path: Path) -> Path:
    if AS_ROOT:
        shutil.chown(path, "postgres", "postgres")
    return path


def _kill_tree(pid: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(pid)
        for process in [*root.children(recursive=True), root]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGKILL)


class Etcd:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.client = free_port()
        self.peer = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        client, peer = f"http://127.0.0.1:{self.client}", f"http://127.0.0.1:{self.peer}"
        with (self.root / "etcd.log").open("wb") as log:
            self.process = subprocess.Popen(
                [
                    "etcd", "--name", "e1", "--data-dir", str(self.root / "etcd"),
                    "--listen-client-urls", client, "--advertise-client-urls", client,
                    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                    "--initial-cluster", f"e1={peer}",
                ],
                env=SYSTEM_ENV, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(lambda: status_of(f"{client}/health") == 200, 30, "etcd to serve")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


class Member:
    """One Patroni and the PostgreSQL it manages."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        (root / name).mkdir()
        self.root = _owned(root / name)
        self.port = free_port()
        self.api = f"http://127.0.0.1:{free_port()}"
        self.process: subprocess.Popen[bytes] | None = None

    def config(self, scope: str, etcd: Etcd) -> dict[str, object]:
        bin_dir = pg_bin()
        assert bin_dir is not None, "PostgreSQL server binaries not found; run ./dev test"
        api = self.api.removeprefix("http://")
        return {
            "scope": scope,
            "name": self.name,
            "restapi": {"listen": api, "connect_address": api},
            "etcd3": {"hosts": f"127.0.0.1:{etcd.client}"},
            "bootstrap": {
                "dcs": {
                    # A leader key of 10 s, checked every second: the store fails over in ~10 s.
                    "ttl": 10,
                    "loop_wait": 1,
                    "retry_timeout": 4,
                    "synchronous_mode": True,
                    "postgresql": {"use_pg_rewind": False, "parameters": {"max_connections": 200}},
                },
                "initdb": [{"encoding": "UTF8"}, {"auth": "trust"}],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{self.port}",
                "connect_address": f"127.0.0.1:{self.port}",
                "data_dir": str(self.root / "data"),
                "bin_dir": str(bin_dir),
                "pgpass": str(self.root / "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": "postgres"},
                    "replication": {"username": "replicator", "password": "replicator"},
                },
                "pg_hba": [
                    "local all all trust",
                    "host all all 127.0.0.1/32 trust",
                    "host replication replicator 127.0.0.1/32 trust",
                ],
                "parameters": {"unix_socket_directories": str(self.root), "fsync": "off"},
            },
        }

    def start(self, scope: str, etcd: Etcd) -> None:
        path = self.root / "patroni.yml"
        path.write_text(yaml.safe_dump(self.config(scope, etcd)))
        _owned(path)
        prefix = ["runuser", "-u", "postgres", "--"] if AS_ROOT else []
        with (self.root / "patroni.log").open("wb") as log:
            self.process = subprocess.Popen(
                [*prefix, "patroni", str(path)],
                env=SYSTEM_ENV, stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
            )  # fmt: skip

    def leads(self) -> bool:
        """Patroni's REST API says this member is the primary (200 on ``/primary``)."""
        return status_of(self.api + "/primary") == 200

    def kill(self) -> None:
        """SIGKILL Patroni and its PostgreSQL: the machine is gone."""
        if self.process is not None:
            _kill_tree(self.process.pid)
            self.process.wait()
        postmaster = self.root / "data" / "postmaster.pid"
        with contextlib.suppress(FileNotFoundError, ValueError):
            _kill_tree(int(postmaster.read_text().split("\n")[0]))


class PatroniCluster:
    def __init__(self, size: int = 2, scope: str = "takeover-store") -> None:
        self.root = _owned(Path(tempfile.mkdtemp(prefix="takeover-patroni-")))
        self.scope = scope
        self.etcd = Etcd(self.root)
        self.members = [Member(self.root, f"pg{n}") for n in range(1, size + 1)]

    def start(self) -> PatroniCluster:
        self.etcd.start()
        for member in self.members:
            member.start(self.scope, self.etcd)
        wait_until(self.synchronous, 90, "a Patroni primary with a synchronous standby")
        return self

    def primary(self) -> Member | None:
        return next((m for m in self.members if m.leads()), None)

    def synchronous(self) -> bool:
        """A primary, and a running standby Patroni has made synchronous."""
        try:
            cluster = httpx.get(self.members[0].api + "/cluster", timeout=1).json()
        except (httpx.HTTPError, ValueError):
            return False
        roles = {(m.get("role"), m.get("state")) for m in cluster.get("members", [])}
        return ("leader", "running") in roles and ("sync_standby", "running") in roles

    def dsn(self, database: str = "postgres") -> str:
        """Every member; libpq finds the one that takes writes."""
        hosts = ",".join("127.0.0.1" for _ in self.members)
        ports = ",".join(str(m.port) for m in self.members)
        return (
            f"host={hosts} port={ports} user=postgres dbname={database} "
            "target_session_attrs=read-write connect_timeout=2"
        )

    def url(self, database: str) -> str:
        """The multi-host URL docs/operations.md recommends for a Patroni-managed store."""
        hosts = "&".join(f"host=127.0.0.1:{m.port}" for m in self.members)
        return f"postgresql+psycopg://postgres@/{database}?{hosts}&target_session_attrs=read-write"

    def stop(self) -> None:
        for member in self.members:
            member.kill()
        self.etcd.stop()
        shutil.rmtree(self.root, ignore_errors=True)
