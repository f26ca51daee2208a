"""A test driver that acts as the agents of a pool: real HTTP heartbeats through the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

from takeover.control.loop import CycleOutcome
from takeover.main import Runtime
from takeover.testing import FakeClock


@dataclass
class NodeHandle:
    id: str
    name: str
    token: str
    running: dict[str, int] = field(default_factory=dict)  # instance id -> epoch it runs
    released: dict[str, int] = field(default_factory=dict)  # handed over: reported stopped
    gpus: list[dict[str, Any]] = field(default_factory=list)  # what its NVML would report
    gpu_indices: dict[str, list[int]] = field(default_factory=dict)  # instance id -> GPUs it holds


class Pool:
    def __init__(self, client: TestClient, runtime: Runtime, clock: FakeClock) -> None:
        self.client = client
        self.runtime = runtime
        self.clock = clock

    def node(self, name: str, region: str = "r1", max_instances: int = 10, **extra: Any) -> NodeHandle:
        body = {
            "name": name,
            "region": region,
            "base_url": f"http://127.0.0.1:9/{name}",
            "max_instances": max_instances,
            **extra,
        }
        response = self.client.post("/api/v1/nodes", json=body)
        assert response.status_code == 201, response.text
        data = response.json()
        return NodeHandle(data["id"], name, data["api_token"])

    def beat(
        self,
        node: NodeHandle,
        cpu: float = 0.1,
        memory: float = 0.1,
        latency: float = 5.0,
        **witnessing: Any,
    ) -> dict[str, Any]:
        """Heartbeat as ``node``'s agent would, then run exactly what the reply asks for."""
        reports = [{"id": i, "epoch": e, "state": "running"} for i, e in node.running.items()]
        reports += [{"id": i, "epoch": e, "state": "stopped"} for i, e in node.released.items()]
        response = self.client.post(
            f"/api/v1/nodes/{node.id}/heartbeat",
            json={
                "cpu_load": cpu,
                "memory_load": memory,
                "avg_latency_ms": latency,
                "instances": reports,
                "gpus": node.gpus,
                **witnessing,
            },
            headers={"Authorization": f"Bearer {node.token}"},
        )
        assert response.status_code == 200, response.text
        reply: dict[str, Any] = response.json()
        node.running = {d["id"]: d["epoch"] for d in reply["desired"]}
        node.gpu_indices = {d["id"]: d["gpu_indices"] for d in reply["desired"]}
        node.released = {r["id"]: r["epoch"] for r in reply["release"]}
        return reply

    def beat_twice(self, *nodes: NodeHandle) -> None:
        """Once to learn the desired state, once to report it running."""
        for _ in range(2):
            for n in nodes:
                self.beat(n)

    def two_nodes_running_web(self, **extra: Any) -> tuple[NodeHandle, NodeHandle, dict[str, Any]]:
        """n1 (the better score) runs the instance "web" at epoch 1; n2 is the spare."""
        n1, n2 = self.node("n1"), self.node("n2")
        self.beat(n1, cpu=0.0)
        self.beat(n2, cpu=0.5)
        web = self.instance("web", **extra)
        self.beat_twice(n1)
        return n1, n2, web

    def instance(self, name: str, **extra: Any) -> dict[str, Any]:
        body = {"name": name, "spec": {"command": ["sleep", "60"]}, **extra}
        response = self.client.post("/api/v1/instances", json=body)
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    def get(self, path: str) -> Any:
        response = self.client.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    def elapse(self, seconds: float) -> None:
        """``seconds`` pass while the leader watches: it cycles first (seeing every heartbeat so
        far), then time moves on. A node's silence counts only across time the leader watched."""
        self.cycle()
        self.clock.advance(seconds)

    def cycle(self) -> CycleOutcome:
        assert self.runtime.controllers is not None
        return self.runtime.controllers.run_cycle()
