"""GPU nodes and GPU instances through the API: heartbeats carry NVML's readings, placement and
failover hand out GPUs as slots, document 002's answers name the GPU the placement gave."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi.testclient import TestClient

from tests.api.pool import NodeHandle, Pool


def gpu(index: int, name: str, used: int = 0, util: float = 0.1, temp: float = 45) -> dict[str, Any]:
    return {
        "index": index,
        "name": name,
        "memory_total_mb": 24_576,
        "memory_used_mb": used,
        "utilization": util,
        "temperature_c": temp,
    }


def gpu_node(pool: Pool, name: str, model: str, count: int, **beat: Any) -> NodeHandle:
    node = pool.node(name)
    node.gpus = [gpu(i, model) for i in range(count)]
    pool.beat(node, **beat)
    return node


def create(client: TestClient, name: str, gpus: dict[str, Any]) -> Any:
    return client.post(
        "/api/v1/instances", json={"name": name, "spec": {"command": ["sleep", "9"]}, "gpus": gpus}
    )


def test_a_node_reports_its_gpus_and_they_show_in_the_api_and_metrics(pool: Pool, client: TestClient) -> None:
    node = pool.node("g1")
    node.gpus = [gpu(0, "NVIDIA GeForce RTX 4090", used=12_288, util=0.5, temp=80)]
    pool.beat(node, cpu=0.0, memory=0.0, latency=0.0)
    shown = pool.get(f"/api/v1/nodes/{node.id}")
    assert shown["gpus"] == node.gpus
    # 50 of document 000's points, halved, + GPU: 20*0.5 + 15*0.5 + 15*(90-80)/20 = 25
    assert shown["health_score"] == 75.0
    metrics = client.get("/metrics").text
    assert (
        'takeover_node_gpu_utilization_ratio{gpu="0",model="NVIDIA GeForce RTX 4090",node="g1"} 0.5'
        in metrics
    )
    assert (
        'takeover_node_gpu_temperature_celsius{gpu="0",model="NVIDIA GeForce RTX 4090",node="g1"} 80.0'
        in metrics
    )
    assert 'takeover_node_gpus{node="g1",region="r1"} 1.0' in metrics


def test_gpus_are_slots_of_the_preferred_model_and_never_given_twice(pool: Pool, client: TestClient) -> None:
    gpu_node(pool, "a100", "NVIDIA A100-SXM4-80GB", 2, cpu=0.0)  # the better score
    h4090 = gpu_node(pool, "rtx", "NVIDIA GeForce RTX 4090", 1, cpu=0.5)
    first = create(client, "train-1", {"count": 1, "names": ["RTX_4090", "A100"]})
    assert first.status_code == 201, first.text
    assert (first.json()["node_id"], first.json()["gpu_indices"]) == (h4090.id, [0])  # preference beats score
    second = create(client, "train-2", {"count": 1, "names": ["RTX_4090", "A100"]}).json()
    third = create(client, "train-3", {"names": ["a100"]}).json()
    assert second["gpu_indices"] != third["gpu_indices"]  # both on the A100 node, one GPU each
    assert {second["node_id"], third["node_id"]} == {pool.get("/api/v1/nodes?region=r1")[0]["id"]}
    full = create(client, "train-4", {"names": ["A100"]})
    assert full.status_code == 503
    assert "no node has 1 GPU (A100) free" in full.text
    shared = [create(client, f"notebook-{n}", {"names": ["RTX 4090"], "shared": True}) for n in (1, 2)]
    assert shared[0].status_code == 503  # the RTX is held, not shared
    pool.beat_twice(h4090)
    assert h4090.gpu_indices == {first.json()["id"]: [0]}  # the desired state names its GPUs


def test_impossible_requests_are_refused_naming_why_and_create_nothing(
    pool: Pool, client: TestClient
) -> None:
    gpu_node(pool, "g", "NVIDIA A100-SXM4-80GB", 2)
    unknown = create(client, "x", {"names": ["H100"]})
    assert unknown.status_code == 503
    assert "no node has a GPU of model H100" in unknown.text
    assert "NVIDIA A100-SXM4-80GB" in unknown.text
    too_many = create(client, "y", {"count": 4})
    assert too_many.status_code == 422
    assert "the largest node has 2" in too_many.text
    assert pool.get("/api/v1/instances") == []


def test_a_gpu_instance_fails_over_only_to_a_node_with_a_free_gpu_of_its_model(pool: Pool) -> None:
    a = gpu_node(pool, "a", "NVIDIA L4", 1, cpu=0.0)
    cpu_only = pool.node("cpu-only")
    pool.beat(cpu_only, cpu=0.0)  # the best score, and no GPU
    b = gpu_node(pool, "b", "NVIDIA L4", 2, cpu=0.6)
    web = pool.instance("web", gpus={"count": 1, "names": ["L4"]})
    assert web["node_id"] == a.id
    pool.beat_twice(a)
    pool.elapse(6)
    pool.beat(cpu_only)
    pool.beat(b)
    pool.cycle()
    moved = pool.get(f"/api/v1/instances/{web['id']}")
    assert (moved["node_id"], moved["epoch"], moved["gpu_indices"]) == (b.id, 2, [0])
    pool.beat_twice(b)
    assert b.gpu_indices == {web["id"]: [0]}


def test_document_002_answers_name_the_gpu_given_and_search_counts_free_gpus(
    pool: Pool, client: TestClient
) -> None:
    a = gpu_node(pool, "a", "NVIDIA GeForce RTX 4090", 1, cpu=0.0)
    b = gpu_node(pool, "b", "NVIDIA GeForce RTX 4090", 2, cpu=0.3)
    volume = client.post(
        "/api/v1/failover/regional-volume/create", json={"region": "r1", "size_gb": 1}
    ).json()
    web = pool.instance(
        "web",
        volume_id=volume["volume_id"],
        failover_strategy="regional_volume",
        gpus={"names": ["RTX_4090"]},
    )
    assert web["node_id"] == a.id
    pool.beat_twice(a, b)
    offers = client.get("/api/v1/failover/regional-volume/search/r1", params={"gpu_name": "RTX 4090"}).json()
    assert offers["found"] is True
    none = client.get("/api/v1/failover/regional-volume/search/r1", params={"gpu_name": "H100"}).json()
    assert none["found"] is False
    started = client.post("/api/v1/failovers", json={"instance_id": web["id"]})
    assert started.status_code == 202, started.text
    for _ in range(3):
        pool.beat_twice(a, b)
        pool.cycle()
    [done] = pool.runtime.store.failovers.find(instance_id=UUID(web["id"]))
    assert done.status.value == "completed", done
    answer = pool.runtime.services.orchestrator.response(done)  # what /failover/execute answers
    moved = pool.get(f"/api/v1/instances/{web['id']}")
    assert moved["node_id"] == b.id
    assert answer["new_gpu_name"] == "NVIDIA GeForce RTX 4090"
    assert answer["new_gpu_id"] == f"b:{moved['gpu_indices'][0]}"


def test_a_warm_copy_of_a_gpu_instance_waits_on_a_node_that_could_run_it(pool: Pool) -> None:
    a = gpu_node(pool, "a", "NVIDIA L4", 1, cpu=0.0)
    cpu_only = pool.node("cpu-only")
    pool.beat(cpu_only, cpu=0.0)  # the best score, and no GPU
    b = gpu_node(pool, "b", "NVIDIA L4", 1, cpu=0.6)
    web = pool.instance("web", failover_strategy="warm_pool", gpus={"names": ["L4"]})
    assert web["node_id"] == a.id
    pool.beat_twice(a)
    pool.cycle()
    assert pool.get(f"/api/v1/instances/{web['id']}")["standby_node_id"] == b.id
