"""What the benchmarks share: a real server process, a real PostgreSQL, Debian tools."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.process import serve, start, stop  # noqa: E402
from tests.pgserver import PostgresServer  # noqa: E402


def ensure_debian_tool(command: str, package: str) -> str:
    found = shutil.which(command)
    if found is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, capture_output=True)
        found = shutil.which(command)
    assert found is not None, f"{command} missing after installing {package}"
    return found


def backend_parser(doc: str | None) -> argparse.ArgumentParser:
    """A bench's command line, with --backend (sqlite, postgres or both)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--backend", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"]
    )
    return parser


@contextmanager
def database(backend: str, data_dir: Path, durable: bool = False) -> Iterator[str]:
    """A database URL for ``backend``; PostgreSQL is started here and stopped afterwards
    (``durable``: with fsync on, as in production)."""
    if backend == "sqlite":
        yield f"sqlite:///{data_dir / 'takeover.db'}"
        return
    server = PostgresServer(durable).start()
    try:
        yield server.create_database("bench")
    finally:
        server.stop()


def register(url: str, count: int) -> list[tuple[str, str]]:
    """``count`` nodes through the API: (id, token) of each."""
    with httpx.Client(base_url=url, headers={"Authorization": "Bearer admin-secret"}, timeout=30) as api:
        nodes = []
        for i in range(count):
            body = {"name": f"n{i}", "region": f"r{i % 4}", "base_url": f"http://127.0.0.1:{10000 + i}"}
            data = api.post("/api/v1/nodes", json=body).json()
            nodes.append((data["id"], data["api_token"]))
        return nodes


@contextmanager
def pool_on_postgres(count: int) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """One `takeover serve` on a PostgreSQL of its own, with ``count`` nodes registered."""
    with tempfile.TemporaryDirectory() as tmp, database("postgres", Path(tmp)) as url:
        process, server = start(Path(tmp), TAKEOVER_DATABASE_URL=url, TAKEOVER_LOG_LEVEL="warning")
        try:
            yield server, register(server, count)
        finally:
            stop(process)


__all__ = [
    "ROOT",
    "backend_parser",
    "database",
    "ensure_debian_tool",
    "pool_on_postgres",
    "register",
    "serve",
    "start",
    "stop",
]
