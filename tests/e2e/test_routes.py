"""Clients follow their instance through a real HAProxy (deploy/routes/haproxy.cfg) that
`takeover routes follow haproxy` keeps at the current runner, with the workload's own evidence:
each answer names the epoch of the runner that gave it."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from takeover.localcluster import ADMIN_TOKEN, LocalCluster, wait_until
from tests.e2e import netns
from tests.e2e.balancer import ProxyClient, routed_nginx, routed_proxy
from tests.e2e.test_strategies import cli

pytestmark = pytest.mark.e2e
COUNTER = {"command": [sys.executable, "-m", "takeover.examples.counter"]}  # listens on $HOST


@pytest.mark.skipif(netns.available() is not None, reason=str(netns.available()))
def test_a_client_through_haproxy_in_tcp_mode_follows_its_instance_across_a_partition(tmp_path: Path) -> None:
    with netns.TestHost() as host, LocalCluster(tmp_path) as cluster:
        url = cluster.start_control_plane(host=host.host_ip)
        # Registered by an admin with another address than the agent's NODE_HOST: NODE_HOST wins.
        body = {"name": "inside", "region": "local", "base_url": "http://192.0.2.1", "max_instances": 10}
        node = cluster.api.post("/api/v1/nodes", json=body).json()
        credentials = {"NODE_ID": node["id"], "NODE_TOKEN": node["api_token"], "NODE_HOST": host.ip}
        cluster.start_agent("inside", wrapper=host.wrapper, **credentials)
        made = cluster.api.post("/api/v1/instances", json={"name": "db", "spec": COUNTER}).json()
        # Reached from this host at its endpoint: it listens on the namespace's address.
        first = wait_until(lambda: cluster.serving(made["id"]), 30, "the counter to serve")
        assert str(first["endpoint"]).startswith(f"{host.ip}:")
        cluster.start_agent("outside", NODE_HOST=host.host_ip)
        with routed_proxy(url, ADMIN_TOKEN, tmp_path) as proxy, ProxyClient(proxy.tcp) as client:
            wait_until(lambda: 1 in client.epochs(), 30, "the proxy to send the client to epoch 1")
            host.cut()
            cut = time.monotonic()
            moved = wait_until(lambda: cluster.serving(made["id"], epoch=2), 60, "the failover to epoch 2")
            wait_until(lambda: 2 in client.epochs(), 30, "the proxy to send the client to epoch 2")
            time.sleep(1)
            served = proxy.server("db")
            assert served.ready
            assert f"{served.host}:{served.port}" == moved["endpoint"]
            epochs = client.epochs()
            assert epochs == sorted(epochs), "a request was answered by an older runner after a newer one"
            after = [e for t, e in client.answers if t > cut and e is not None]
            assert after[-1] == 2
            [route] = json.loads(cli(cluster, "routes", "-o", "json"))
            assert (route["name"], route["epoch"], route["target"]) == ("db", 2, moved["endpoint"])
            # Without the control plane the follower keeps the last routes: the proxy still
            # sends the client to epoch 2 after several of the follower's one-second watches.
            cluster.kill_control_plane()
            time.sleep(4)
            assert proxy.server("db") == served
            assert client.epochs()[-1] == 2
        host.heal()


def test_a_client_through_nginx_follows_its_instance_when_its_node_dies(tmp_path: Path) -> None:
    """The second target: the same routes, rendered into nginx's upstreams and reloaded."""
    with LocalCluster(tmp_path) as cluster:
        url = cluster.start_control_plane()
        cluster.start_agent("a")
        made = cluster.api.post("/api/v1/instances", json={"name": "web", "spec": COUNTER}).json()
        wait_until(lambda: cluster.serving(made["id"]), 30, "the counter to serve")
        cluster.start_agent("b")
        with routed_nginx(url, ADMIN_TOKEN, tmp_path) as nginx, ProxyClient(nginx, "web.apps.test") as client:
            wait_until(lambda: 1 in client.epochs(), 30, "nginx to send the client to epoch 1")
            cluster.kill_agent("a")
            wait_until(lambda: cluster.serving(made["id"], epoch=2), 60, "the failover to epoch 2")
            wait_until(lambda: 2 in client.epochs(), 30, "nginx to send the client to epoch 2")
            epochs = client.epochs()
            assert epochs == sorted(epochs), "a request was answered by an older runner after a newer one"
