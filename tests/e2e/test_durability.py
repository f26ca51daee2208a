"""Nothing acknowledged is lost: SIGKILL the control plane in the middle of a stream of
writes, start it again on the same store, and find every write it had acknowledged."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from takeover.localcluster import wait_until
from tests.e2e.process import start, stop

pytestmark = pytest.mark.e2e
ADMIN = {"Authorization": "Bearer admin-secret"}


def test_acknowledged_writes_survive_a_sigkill(tmp_path: Path) -> None:
    process, url = start(tmp_path)
    node = httpx.post(
        url + "/api/v1/nodes",
        json={"name": "n1", "region": "r1", "base_url": "http://127.0.0.1:1", "max_instances": 100_000},
        headers=ADMIN,
    ).json()
    acknowledged: list[str] = []
    beats: list[str] = []
    killed = threading.Event()

    def create(worker: int) -> None:
        with httpx.Client(base_url=url, headers=ADMIN, timeout=5) as api:
            for k in range(100_000):
                try:
                    name = f"w{worker}-{k}"
                    body = {"name": name, "spec": {"command": ["true"]}}
                    if api.post("/api/v1/instances", json=body).status_code == 201:
                        acknowledged.append(name)
                except httpx.HTTPError:
                    if killed.is_set():
                        return

    def beat() -> None:
        headers = {"Authorization": f"Bearer {node['api_token']}"}
        with httpx.Client(base_url=url, headers=headers, timeout=5) as api:
            while True:
                try:
                    reply = api.post(
                        f"/api/v1/nodes/{node['id']}/heartbeat", json={"cpu_load": 0.1, "memory_load": 0.1}
                    )
                    if reply.status_code == 200:
                        beats.append(reply.json()["node_id"])
                except httpx.HTTPError:
                    if killed.is_set():
                        return

    threads = [threading.Thread(target=create, args=(w,)) for w in range(6)] + [threading.Thread(target=beat)]
    for t in threads:
        t.start()
    # Kill once both kinds of write were acknowledged (a loaded machine may take a while).
    wait_until(
        lambda: len(acknowledged) > 20 and beats, timeout=30, what="acknowledged writes and heartbeats"
    )
    time.sleep(0.5)  # and a moment later, in the middle of more of them
    process.kill()  # SIGKILL: no shutdown, no flush
    killed.set()
    process.wait()
    for t in threads:
        t.join(timeout=30)
    assert len(acknowledged) > 20, "too few writes before the kill to prove anything"
    assert beats

    process, url = start(tmp_path)
    try:
        instances = httpx.get(url + "/api/v1/instances", headers=ADMIN, timeout=30).json()
        stored = {i["name"] for i in instances}
        missing = set(acknowledged) - stored
        assert not missing, f"{len(missing)} acknowledged instances lost, e.g. {sorted(missing)[:3]}"
        restored = httpx.get(f"{url}/api/v1/nodes/{node['id']}", headers=ADMIN).json()
        assert restored["current_instances"] == len(stored)  # the slot count moved with every write
        assert restored["last_heartbeat_at"] is not None
    finally:
        stop(process)
