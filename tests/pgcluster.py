"""A PostgreSQL primary and streaming replicas on loopback ports, from the Debian binaries.

The replicas are made with pg_basebackup -R (streaming replication, a replication slot each),
so they are real hot standbys: read-only, replaying the primary's WAL. Every server can be
killed (SIGKILL of the postmaster), restarted, promoted or paused (SIGSTOP) by the tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

import psycopg

from tests.pgserver import PostgresServer


class Member(PostgresServer):
    """One server of the cluster; ``name`` is its region's connection id in the tests."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def options(self) -> str:
        return (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
            "-c max_connections=100 -c wal_level=replica -c max_wal_senders=10 "
            "-c max_replication_slots=10 -c hot_standby=on -c wal_receiver_status_interval=1s "
            "-c hot_standby_feedback=on"
        )

    def start_existing(self) -> None:
        log = self.root / "postgres.log"
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(log),
            "-o",
            self.options(),
            "-w",
            "start",
        )

    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split("\n")[0])

    def kill(self) -> None:
        """SIGKILL the postmaster and its children: the machine is gone."""
        pid = self.pid()
        # Stopped first, so it forks nothing new and its backends are still its children when
        # they are listed (once it is dead they belong to init, and a backend that had not yet
        # noticed its postmaster's death could still answer a query: seen in CI).
        os.kill(pid, signal.SIGSTOP)
        doomed = [pid, *_children(pid)]
        for one in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(one, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(one) for one in doomed):
            time.sleep(0.05)
        # A killed postmaster leaves its lock files; its PID may linger as a zombie that nothing
        # here reaps, which a restart would take for a live server.
        (self.data / "postmaster.pid").unlink(missing_ok=True)
        (self.root / f".s.PGSQL.{self.port}.lock").unlink(missing_ok=True)

    def pause(self) -> None:
        """SIGSTOP the postmaster and its backends: a hung machine, whose kernel still accepts TCP."""
        self._signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_all(signal.SIGCONT)

    def _signal_all(self, signum: int) -> None:
        pid = self.pid()
        for process in (pid, *_children(pid)):
            with contextlib.suppress(ProcessLookupError):  # a backend that just ended
                os.kill(process, signum)

    def promote(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_promote(wait => true)")

    def in_recovery(self) -> bool:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            return bool(row and row[0])


class PostgresCluster:
    def __init__(self, replicas: int = 2) -> None:
        self.primary = Member("primary")
        self.replicas = [Member(f"replica{n + 1}") for n in range(replicas)]

    @property
    def members(self) -> list[Member]:
        return [self.primary, *self.replicas]

    def start(self) -> PostgresCluster:
        p = self.primary
        p._run(str(p.bin / "initdb"), "-D", str(p.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with open(p.data / "pg_hba.conf", "a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        p.start_existing()
        for n, replica in enumerate(self.replicas, start=1):
            with psycopg.connect(p.dsn, autocommit=True) as conn:
                conn.execute(f"SELECT pg_create_physical_replication_slot('slot{n}')")
            replica._run(
                str(replica.bin / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(p.port),
                "-U",
                "postgres",
                "-D",
                str(replica.data),
                "-R",
                "-X",
                "stream",
                "-S",
                f"slot{n}",
            )
            replica.start_existing()
        self.wait_replicated()
        return self

    def wait_replicated(self, timeout: float = 30) -> None:
        """Until every running replica has replayed what the primary has written so far."""
        with psycopg.connect(self.primary.dsn, autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
            assert row is not None
            target = row[0]
        deadline = time.monotonic() + timeout
        for replica in self.replicas:
            while True:
                with psycopg.connect(replica.dsn, autocommit=True) as conn:
                    row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]).fetchone()
                if row and row[0]:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{replica.name} did not catch up")
                time.sleep(0.05)

    def stop(self) -> None:
        for member in self.members:
            with contextlib.suppress(Exception):  # teardown: the next member is stopped whatever happened
                if (member.data / "postmaster.pid").exists():
                    member.stop()
                else:
                    shutil.rmtree(member.root, ignore_errors=True)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


__all__ = ["Member", "PostgresCluster"]
