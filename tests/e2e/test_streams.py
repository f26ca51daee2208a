"""Agent streams against real processes: a real `takeover serve`, real agents, and the shipped
HAProxy and nginx configs in front of it."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from takeover.localcluster import LocalCluster, free_port, wait_until
from tests.e2e.balancer import haproxy
from tests.e2e.process import serve
from tests.integration.test_deploy import DEPLOY, NGINX

ADMIN = {"Authorization": "Bearer admin-secret"}


def metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def register(url: str, name: str) -> dict[str, Any]:
    body = {"name": name, "region": "r1", "base_url": "http://127.0.0.1:9", "max_instances": 5}
    made = httpx.post(url + "/api/v1/nodes", json=body, headers=ADMIN)
    assert made.status_code == 201, made.text
    node: dict[str, Any] = made.json()
    return node


@contextmanager
def stream(url: str, node: dict[str, Any], trust: ssl.SSLContext | None = None) -> Iterator[ClientConnection]:
    address = (
        url.replace("https://", "wss://").replace("http://", "ws://") + f"/api/v1/nodes/{node['id']}/stream"
    )
    headers = {"Authorization": f"Bearer {node['api_token']}"}
    with connect(address, additional_headers=headers, ssl=trust) as ws:
        yield ws


def beat(ws: ClientConnection, node: dict[str, Any], seq: int, **extra: Any) -> dict[str, Any]:
    body = {"type": "heartbeat", "seq": seq, "node_id": node["id"], "cpu_load": 0.2, "memory_load": 0.3}
    ws.send(json.dumps({**body, **extra}))
    message: dict[str, Any] = json.loads(ws.recv(timeout=10))
    return message


def test_stream_and_http_agents_share_a_pool_and_a_placement_is_pushed(tmp_path: Path) -> None:
    with LocalCluster(tmp_path) as cluster:
        cluster.start_control_plane()
        cluster.start_agent("a")  # NODE_TRANSPORT=stream, the default
        wait_until(lambda: metric(cluster.url, "takeover_agent_streams") == 1, 10, "a's stream")
        web = cluster.create_counter("web")
        first = wait_until(lambda: cluster.serving(web["id"]), 20, "web to serve on a")
        assert cluster.node_name(first["node_id"]) == "a"
        assert metric(cluster.url, "takeover_desired_pushes_total") >= 1  # a learnt it by push
        cluster.start_agent("b", NODE_TRANSPORT="http")
        assert metric(cluster.url, "takeover_agent_streams") == 1
        cluster.snapshot_after(web["id"], 0)
        cluster.kill_agent("a")
        moved = wait_until(lambda: cluster.serving(web["id"], epoch=2), 30, "web to serve on b")
        assert cluster.node_name(moved["node_id"]) == "b"  # b heard of it in a heartbeat's reply
        assert cluster.hit(web["id"]) >= 1


def test_an_oversized_frame_closes_the_stream_with_1009_and_writes_nothing(tmp_path: Path) -> None:
    with serve(tmp_path, TAKEOVER_MAX_BODY_BYTES="65536") as url:
        node = register(url, "n1")
        with stream(url, node) as ws:
            assert beat(ws, node, 1)["type"] == "ack"
            with pytest.raises(ConnectionClosed) as closed:
                beat(ws, node, 2, cpu_load=0.9, padding="x" * 70_000)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        got = httpx.get(url + f"/api/v1/nodes/{node['id']}", headers=ADMIN).json()
        assert got["cpu_load"] == 0.2


def test_streams_pass_through_the_shipped_haproxy_and_nginx_configs(tmp_path: Path) -> None:
    with serve(tmp_path) as url:
        node = register(url, "n1")
        with haproxy([url] * 3, tmp_path) as lb, stream(lb, node) as ws:
            assert beat(ws, node, 1)["seq"] == 1
        ca = trustme.CA()
        trust = trusting(ca)
        with nginx(url, tmp_path, ca) as proxy, stream(proxy, node, trust) as ws:  # wss through TLS
            assert beat(ws, node, 1)["seq"] == 1
            # and an ordinary request still passes beside it
            assert httpx.get(proxy + "/healthz", verify=trust).status_code == 200


@contextmanager
def nginx(replica: str, root: Path, ca: trustme.CA) -> Iterator[str]:
    """The shipped config, its three upstreams all this one replica, listening with TLS (a
    certificate of ``ca``) on a free port."""
    port = free_port()
    issued = ca.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(str(root / "balancer.crt"))
    issued.private_key_pem.write_to_path(str(root / "balancer.key"))
    text = (DEPLOY / "nginx.conf").read_text()
    text = re.sub(r"server takeover-\d:8080", "server " + replica.removeprefix("http://"), text)
    text = text.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl;")
    text = text.replace("/etc/takeover/tls/", f"{root}/")
    text = text.replace("pid /run/takeover-nginx.pid;", f"pid {root / 'nginx.pid'};")
    config = root / "nginx.conf"
    config.write_text(text)
    process = subprocess.Popen(
        [NGINX, "-p", str(root), "-c", str(config), "-g", "daemon off;"], stderr=subprocess.DEVNULL
    )
    url = f"https://127.0.0.1:{port}"
    trust = trusting(ca)
    try:
        wait_until(lambda: _up(url, trust), 10, "nginx")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts ``ca`` too."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def _up(url: str, trust: ssl.SSLContext) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1, verify=trust).status_code == 200
    except httpx.HTTPError:
        return False
